"""The README's configuration table names every setting there is (and no setting that is not)."""

from __future__ import annotations

import re

from jobs.settings import Settings
from tests.conftest import REPO


def test_the_configuration_table_lists_exactly_the_settings():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(POSE_[A-Z_]+)`", table))
    declared = {Settings.env_name(name) for name in Settings.declarations()}
    assert declared - documented == set(), "settings missing from the README"
    assert documented - declared == set(), "the README documents settings that do not exist"
