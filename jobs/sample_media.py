"""Where the sample videos and MediaPipe's reference landmarks live.

They are not part of the repository: `shared/` sits next to the checkout (../shared), or wherever
POSE_SHARED_DIR points; /work/shared is the fallback for a checkout cloned somewhere else on a
development machine. Used by `pose-service demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    declared = os.environ.get("POSE_SHARED_DIR")
    if declared:
        return Path(declared).expanduser()
    beside = REPO.parent / "shared"
    return beside if beside.is_dir() else Path("/work/shared")


def media_dir() -> Path:
    return shared_dir() / "media"


def reference_dir() -> Path:
    return shared_dir() / "reference"
