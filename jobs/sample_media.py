"""Where the sample videos and MediaPipe's reference landmarks live.

They are not part of the repository: POSE_SHARED_DIR says where they are, else `shared/` beside the
checkout (../shared). There is deliberately no third guess: a path that exists on one machine means
nothing on another, and a wrong directory should fail with the path that was tried, not find
something stale. Used by `pose-service demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    declared = os.environ.get("POSE_SHARED_DIR")
    if declared:
        return Path(declared).expanduser()
    return REPO.parent / "shared"


def media_dir() -> Path:
    return shared_dir() / "media"
