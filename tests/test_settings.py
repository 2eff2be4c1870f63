"""Every setting is declared once (jobs/settings.py) and reaches every command that uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.cli import build_parser
from jobs.cli.common import settings_from
from jobs.settings import COMMON, WEB, WORKER, Settings

#: Which commands take the settings of each group as flags.
COMMANDS_OF_GROUP = {
    COMMON: (["serve"], ["web"], ["worker"], ["db", "url"], ["tokens", "list"], ["jobs"], ["demo"]),
    WEB: (["serve"], ["web"]),
    WORKER: (["serve"], ["worker"]),
}
#: A valid non-default value per type, as typed on a command line.
SAMPLE = {"database_url": "postgresql://u:pw@db.example/pose", "home": "/srv/pose", "log_level": "debug",
          "log_format": "json", "model_dir": "/srv/models", "api_tokens": "tok-a,tok-b", "media_roots": "/a,/b",
          "worker_mode": "fresh", "pipeline": "tests.fake_pipelines:create", "recycle_after": "7",
          "backend": "phalp", "phalp_overrides": "phalp.low_th_c=0.7 device=cuda:1"}


def sample(name: str) -> str:
    return SAMPLE.get(name, "12.5")


def expected(name: str) -> Any:
    value = Settings.from_env(**{name: sample(name)})
    return getattr(value, name)


@pytest.mark.parametrize("name", sorted(Settings.declarations()))
def test_every_setting_is_a_flag_of_every_command_that_uses_it(name: str, monkeypatch):
    info = Settings.declarations()[name]
    groups = Settings.commands_of(info)
    assert groups, f"{name} belongs to no command"
    assert info.description, f"{name} has no help"
    monkeypatch.delenv(Settings.env_name(name), raising=False)
    parser = build_parser()
    for group in groups:
        for command in COMMANDS_OF_GROUP[group]:
            args = parser.parse_args([*command, f"--{name.replace('_', '-')}", sample(name)])
            assert getattr(settings_from(args), name) == expected(name), (name, command)


@pytest.mark.parametrize("name", sorted(Settings.declarations()))
def test_every_setting_is_an_environment_variable(name: str, monkeypatch):
    monkeypatch.setenv(Settings.env_name(name), sample(name))
    assert getattr(Settings.from_env(), name) == expected(name)
    assert getattr(Settings.from_env(), name) != getattr(Settings.model_construct(), name) or name == "model_dir"


def test_flags_override_the_environment_and_bad_values_name_their_source(monkeypatch):
    monkeypatch.setenv("POSE_LEASE_S", "9")
    args = build_parser().parse_args(["worker", "--lease-s", "4", "--mode", "fresh"])
    settings = settings_from(args)
    assert settings.lease_s == 4.0 and settings.worker_mode == "fresh"
    with pytest.raises(SystemExit, match="--lease-s"):
        settings_from(build_parser().parse_args(["worker", "--lease-s", "-1"]))
    monkeypatch.setenv("POSE_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="POSE_TIMEOUT_S"):
        Settings.from_env()


def test_serve_hands_its_settings_to_its_workers_through_the_environment(monkeypatch):
    settings = Settings.from_env(lease_s="3", media_roots="/a,/b", home="/srv/pose")
    env = settings.as_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == settings
    assert env["POSE_MODEL_DIR"] == str(Path("/srv/pose/models"))
