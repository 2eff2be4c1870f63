"""Where the shared sample media are found: POSE_SHARED_DIR, ../shared, or ../shared of the local
checkout this one was cloned from (CI's `git clone -q . /tmp/fresh`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.sample_media import shared_dir


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True)


def test_shared_beside_the_checkout_or_beside_the_one_it_was_cloned_from(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("POSE_SHARED_DIR", raising=False)
    (tmp_path / "work" / "shared").mkdir(parents=True)
    original = tmp_path / "work" / "main"
    _git("init", "-q", str(original))
    assert shared_dir(original) == tmp_path / "work" / "shared"
    clone = tmp_path / "elsewhere" / "fresh"
    clone.parent.mkdir()
    _git("clone", "-q", str(original), str(clone))
    assert shared_dir(clone) == (tmp_path / "work" / "shared").resolve()
    (tmp_path / "elsewhere" / "shared").mkdir()  # its own ../shared wins
    assert shared_dir(clone) == tmp_path / "elsewhere" / "shared"
    monkeypatch.setenv("POSE_SHARED_DIR", str(tmp_path / "declared"))  # and the setting over both
    assert shared_dir(clone) == tmp_path / "declared"


def test_no_guess_without_a_local_origin(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("POSE_SHARED_DIR", raising=False)
    lonely = tmp_path / "lonely"
    _git("init", "-q", str(lonely))
    assert shared_dir(lonely) == tmp_path / "shared"  # the path tried, reported when it is missing
