"""What the phalp tests share: a fake 4D-Humans checkout holding the stand-in track.py, and small videos."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

STANDIN = Path(__file__).with_name("standin_track.py")


@dataclass(frozen=True)
class Checkout:
    """A directory that looks like a 4D-Humans checkout to the service, run by this interpreter."""

    path: Path
    record: Path  # one JSON line per track.py run
    mode_file: Path

    def set_mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def runs(self) -> list[dict]:
        import json

        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def env(self) -> dict[str, str]:
        """The worker's environment: the phalp settings and the stand-in's own."""
        return {"POSE_PHALP_DIR": str(self.path), "POSE_PHALP_PYTHON": sys.executable,
                "STANDIN_RECORD": str(self.record), "STANDIN_MODE_FILE": str(self.mode_file)}


def make_checkout(root: Path) -> Checkout:
    checkout = root / "4D-Humans"
    checkout.mkdir(parents=True)
    shutil.copyfile(STANDIN, checkout / "track.py")  # written by the test: same CLI, same pickle
    mode_file = root / "standin-mode"
    mode_file.write_text("ok")
    return Checkout(checkout, root / "standin-runs.jsonl", mode_file)


def make_video(path: Path, frames: int, width: int, height: int, fps: float, fourcc: str = "mp4v") -> Path:
    """A small video whose frames differ (a moving square), in the container the suffix names."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for t in range(frames):
        image = np.full((height, width, 3), 40, dtype=np.uint8)
        image[4:12, 2 + 2 * t:10 + 2 * t] = 255
        writer.write(image)
    writer.release()
    return path
