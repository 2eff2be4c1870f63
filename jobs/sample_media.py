"""Where the sample videos and MediaPipe's reference landmarks live.

They are not part of the repository: POSE_SHARED_DIR says where they are, else `shared/` beside the
checkout (../shared), else `shared/` beside the checkout this one was cloned from, when that is a
local directory (a CI-style `git clone -q . /tmp/fresh` of a checkout that has ../shared). Nothing
else is guessed: a path that exists on one machine means nothing on another, and a wrong directory
should fail with the path that was tried, not find something stale. Used by `pose-service demo`, the
tests and the benchmarks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _origin_checkout(repo: Path) -> Path | None:
    """The local directory ``repo`` was cloned from (its ``origin`` remote), or None."""
    try:
        url = subprocess.run(["git", "-C", str(repo), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = url.removeprefix("file://")
    if not url or "://" in url:  # none, or a remote one
        return None
    path = Path(url)
    return path.resolve() if path.is_absolute() and path.is_dir() else None


def shared_dir(repo: Path = REPO) -> Path:
    declared = os.environ.get("POSE_SHARED_DIR")
    if declared:
        return Path(declared).expanduser()
    beside = repo.parent / "shared"
    if not beside.is_dir():
        origin = _origin_checkout(repo)
        if origin is not None and (origin.parent / "shared").is_dir():
            return origin.parent / "shared"
    return beside


def media_dir() -> Path:
    return shared_dir() / "media"
