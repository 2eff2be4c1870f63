"""Finding every athlete (issue 12): small and distant people, several at once, crossings, occlusions.

All footage is the shared runner composited with OpenCV (tests/pipeline/footage.py), so every test
knows where each person is. Sizes are the body's height as a fraction of the frame's height.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.pipeline.footage import Placement, found, write_video
from worker.pipeline import pose

#: Another person's clothes: the runner's black kit turned dark red (BGR gains).
RED = (0.55, 0.55, 1.7)


def ids_per_frame(doc: dict, boxes: list[list[np.ndarray]]) -> list[list[int | None]]:
    """For each frame and each composited runner, the track id of the person found on her (or None);
    a person counts for one runner at most (the one whose body box overlaps best), so the runner in
    front is not also taken for the one she hides."""
    out = []
    for frame, bodies in zip(doc["frames"], boxes, strict=True):
        pairs = []
        for k, body in enumerate(bodies):
            for person in frame["people"]:
                if found([person], body) is not None:
                    pairs.append((-iou(person["bbox"], body), k, person["track_id"]))
        ids: list[int | None] = [None] * len(bodies)
        for _, k, track in sorted(pairs):
            if ids[k] is None and track not in ids:
                ids[k] = track
        out.append(ids)
    return out


def iou(a: list[float], b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


# -- small and distant ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0.25, 0.15, 0.10, 0.055])
def test_small_runner_in_a_4k_frame_is_found(pipeline: pose.PosePipeline, tmp_path: Path, size: float) -> None:
    """Static mode (every frame searched whole): the runner at 25 % down to 5.5 % of a 4K frame's height
    (540 px down to 119 px tall) is found in every frame; MediaPipe's single letterbox finds her only
    from about 30 %."""
    path = tmp_path / "small.mp4"
    boxes = write_video(path, 3840, 2160, 3, lambda t: [Placement(40 * t, 1300 + 900 * t, 1200, size * 2160)])
    doc = pipeline(str(path), {"mode": "static"})
    assert [i[0] is not None for i in ids_per_frame(doc, boxes)] == [True] * 3
    assert all(len(f["people"]) == 1 for f in doc["frames"])  # and nobody else


def test_the_whole_frame_alone_misses_her_at_15_percent(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    path = tmp_path / "small.mp4"
    write_video(path, 3840, 2160, 2, lambda t: [Placement(40 * t, 1900, 1200, 0.15 * 2160)])
    doc = pipeline(str(path), {"mode": "static", "detect_scales": 0})
    assert all(f["people"] == [] for f in doc["frames"])


def test_small_runner_tracked_in_video_mode(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    """Video mode, 15 % of a 4K frame, running across it: found in at least 95 % of frames, one id."""
    path = tmp_path / "small_video.mp4"
    frames = 24
    boxes = write_video(path, 3840, 2160, frames, lambda t: [Placement(t, 900 + 25 * t, 1400, 0.15 * 2160)])
    doc = pipeline(str(path), {})
    ids = [i[0] for i in ids_per_frame(doc, boxes)]
    assert sum(i is not None for i in ids) >= 0.95 * frames, ids
    assert len({i for i in ids if i is not None}) == 1


# -- groups -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "heights",
    [
        pytest.param((0.30, 0.30), id="two-side-by-side"),
        pytest.param((0.45, 0.30, 0.20, 0.14), id="four-at-different-scales"),
    ],
)
def test_runners_side_by_side_are_all_found_with_stable_ids(
    pipeline: pose.PosePipeline, tmp_path: Path, heights: tuple[float, ...]
) -> None:
    width, height, frames = 1920, 1088, 30
    n = len(heights)

    def scene(t: int) -> list[Placement]:
        return [Placement(t + 37 * k, width * (k + 0.5) / n, height * 0.6, h * height) for k, h in enumerate(heights)]

    path = tmp_path / "group.mp4"
    boxes = write_video(path, width, height, frames, scene)
    doc = pipeline(str(path), {})
    ids = ids_per_frame(doc, boxes)
    assert all(None not in row for row in ids), ids
    assert all(row == ids[0] for row in ids), "each runner keeps her id"
    assert len(set(ids[0])) == n
    assert all(len(f["people"]) == n for f in doc["frames"])


def test_a_still_of_many_people_finds_each(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    """A one-frame video (what /pose/hybrid makes of a still) of ten runner crops in two rows, some
    overlapping, at different sizes: each found (static mode, max_people 12). Known flaw: the whole
    frame's detector also reports a "person" upside down between the feet of one runner and the head
    of the one below her, which the landmark model accepts (score 0.88); it is the eleventh."""
    width, height = 1920, 1080
    placements = []
    for k in range(10):
        row, col = divmod(k, 5)
        size = (0.26, 0.2, 0.32, 0.17, 0.24)[col] * height
        placements.append(Placement(23 * k, 200 + 380 * col + 60 * row, 300 + 480 * row, size))
    path = tmp_path / "still.mp4"
    boxes = write_video(path, width, height, 1, lambda t: placements)
    doc = pipeline(str(path), {"mode": "static", "max_people": 12})
    ids = ids_per_frame(doc, boxes)[0]
    assert None not in ids and len(set(ids)) == 10, ids
    assert len(doc["frames"][0]["people"]) <= 11


# -- tracks that survive --------------------------------------------------------------------------------


def crossing(t: int, tint: tuple[float, float, float] | None) -> list[Placement]:
    """Two runners on paths that cross: the black one behind, left to right; the other in front."""
    return [Placement(t, 200 + 14 * t, 400, 300), Placement(t + 40, 1080 - 14 * t, 410, 320, tint)]


@pytest.mark.parametrize("tint", [RED, None], ids=["different-clothes", "same-clothes"])
def test_ids_survive_a_crossing(pipeline: pose.PosePipeline, tmp_path: Path, tint: tuple | None) -> None:
    path = tmp_path / "crossing.mp4"
    frames = 60
    boxes = write_video(path, 1280, 720, frames, lambda t: crossing(t, tint))
    doc = pipeline(str(path), {})
    ids = ids_per_frame(doc, boxes)
    back = [row[0] for row in ids]
    front = [row[1] for row in ids]
    assert len({i for i in front}) == 1 and None not in front, front
    assert back[0] is not None and back[-1] == back[0] and back[0] != front[0], back
    assert {i for i in back if i is not None} == {back[0]}, "no other id on the hidden runner"
    hidden = sum(i is None for i in back)
    assert 0 < hidden <= 10  # she is behind the other for a few frames, and found again after
    summary = {t["track_id"]: t for t in doc["tracks"]}
    assert set(summary) == {back[0], front[0]}
    assert summary[back[0]]["frames_predicted"] == hidden
    assert summary[back[0]]["frames_seen"] == frames - hidden


def test_ids_without_grace_change_at_the_crossing(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    """The same footage with ``track_grace: 0`` (the old tracker): the hidden runner comes back as a new id."""
    path = tmp_path / "crossing.mp4"
    boxes = write_video(path, 1280, 720, 60, lambda t: crossing(t, RED))
    doc = pipeline(str(path), {"track_grace": 0})
    back = [row[0] for row in ids_per_frame(doc, boxes)]
    assert back[-1] is not None and back[-1] != back[0]


def test_same_id_after_an_occluder(pipeline: pose.PosePipeline, tmp_path: Path) -> None:
    """A runner passes behind a drawn grey panel, hidden for about 10 frames, and keeps her id."""
    path = tmp_path / "occluder.mp4"
    frames = 40

    def panel(t: int, image: np.ndarray) -> None:
        cv2.rectangle(image, (560, 120), (700, 680), (80, 80, 80), -1)

    boxes = write_video(path, 1280, 720, frames, lambda t: [Placement(t, 300 + 16 * t, 400, 320)], draw=panel)
    doc = pipeline(str(path), {})
    ids = [row[0] for row in ids_per_frame(doc, boxes)]
    hidden = sum(i is None for i in ids)
    assert 5 <= hidden <= 14, ids
    assert ids[0] is not None and ids[-1] == ids[0]
    assert {i for i in ids if i is not None} == {ids[0]}
    assert [t["track_id"] for t in doc["tracks"]] == [ids[0]]


# -- the athlete of interest ----------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["largest", "center"])
def test_subject_keeps_one_athlete(pipeline: pose.PosePipeline, tmp_path: Path, subject: str) -> None:
    """Two runners: a small one in the middle and a large one at the side."""
    path = tmp_path / "two.mp4"
    frames = 36
    boxes = write_video(path, 1280, 720, frames,
                        lambda t: [Placement(t, 640, 420, 200), Placement(t + 50, 1080, 380, 420)])
    everyone = pipeline(str(path), {})
    chosen = pipeline(str(path), {"subject": subject})
    ids = ids_per_frame(everyone, boxes)[0]
    want = ids[1] if subject == "largest" else ids[0]
    assert all([p["track_id"] for p in f["people"]] == [want] for f in chosen["frames"])
    assert len(chosen["frames"]) == frames
    marked = [t["track_id"] for t in chosen["tracks"] if t["subject"]]
    assert marked == [want] and len(chosen["tracks"]) == 2
