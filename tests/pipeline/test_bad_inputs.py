"""Unusable inputs fail with :class:`BadInput` and a message that says what is wrong; damage that
leaves decodable frames does not fail the job.

The worker never retries a BadInput (the same bytes fail the same way), so the distinction matters:
a truncated recording whose first seconds decode is processed, a file with no decodable frame is not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from worker.pipeline import pose
from worker.pipeline.contract import BadInput
from worker.pipeline.io.video_source import VideoSource


def write_video(
    path: Path, frames: int, size: tuple[int, int] = (160, 120), fourcc: str = "mp4v", noise: bool = True
) -> Path:
    """Numbered frames at 25 fps; noise makes every frame cost real bytes, flat frames are tiny."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (w, h))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc} {w}x{h}"
    rng = np.random.default_rng(0)
    for i in range(frames):
        flat = np.full((h, w, 3), (i * 5) % 255, np.uint8)
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) if noise else flat
        cv2.putText(img, str(i), (5, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(img)
    writer.release()
    return path


def run(pipeline: pose.PosePipeline, path: Path) -> dict:
    return pipeline(str(path), {}, lambda done, total: None)


def test_missing_file(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        run(pipeline, tmp_path / "nope.mp4")


def test_directory(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a regular file"):
        run(pipeline, tmp_path)


def test_empty_file(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(BadInput, match=r"empty \(0 bytes\)"):
        run(pipeline, empty)


def test_text_file_renamed_mp4(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 50)
    with pytest.raises(BadInput, match="cannot be opened as a video"):
        run(pipeline, text)


def test_zero_length_video(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    zero = write_video(tmp_path / "zero.mp4", frames=0)
    assert zero.stat().st_size > 0  # a real container, just without frames
    with pytest.raises(BadInput, match="no frames|no decodable video frames"):
        run(pipeline, zero)


def test_one_by_one_video(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    tiny = write_video(tmp_path / "tiny.avi", frames=3, size=(1, 1), fourcc="MJPG")
    with pytest.raises(BadInput, match="1x1 pixels"):
        run(pipeline, tiny)


def test_truncated_mp4_without_index_is_bad_input(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    # OpenCV writes the MP4 index (moov) at the end; cut it off and no frame can be located.
    full = write_video(tmp_path / "full.mp4", frames=20)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(BadInput, match="truncated"):
        run(pipeline, cut)


def test_truncated_video_keeps_the_frames_that_decode(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    full = write_video(tmp_path / "full.avi", frames=20, fourcc="MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    doc = run(pipeline, cut)
    frames = doc["video"]["frames"]
    assert 3 <= frames < 20
    assert [f["index"] for f in doc["frames"]] == list(range(frames))
    assert doc["video"]["skipped_frames"] == 20 - frames


def test_truncated_before_first_frame_is_bad_input(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    full = write_video(tmp_path / "full.avi", frames=20, fourcc="MJPG")
    data = full.read_bytes()
    first = data.find(b"00dc")  # the first video chunk of the AVI
    cut = tmp_path / "headers_only.avi"
    cut.write_bytes(data[: first + 8])
    with pytest.raises(BadInput):
        run(pipeline, cut)


def test_corrupt_frames_mid_video_are_skipped_and_counted(tmp_path: Path) -> None:
    # Small flat frames, so that wiping 4 kB destroys several whole frames, headers included (damage
    # inside one frame's data is concealed by the decoder and does not lose the frame).
    full = write_video(tmp_path / "full.mp4", frames=40, noise=False)
    data = bytearray(full.read_bytes())
    start = len(data) // 3
    data[start : start + 4000] = bytes(4000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with VideoSource(damaged) as source:
        frames = list(source)
        lost = source.frames_lost
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert indices[-1] >= 35  # decoding went on past the damage
    assert 0 < lost < 20 and len(frames) + lost == 40
    times = [f.time_s for f in frames]
    assert times == pytest.approx([i / 25.0 for i in indices], abs=1e-3)


def test_video_source_stops_cleanly_when_abandoned(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.mp4", frames=60)
    with VideoSource(video, queue_size=2) as source:
        first = next(iter(source))
        assert first.index == 0
    # leaving the block early must not hang on the full queue
