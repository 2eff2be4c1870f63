"""One long video, many workers: where a video is cut into segment jobs, and how the segments' track
ids are joined into the parent's (DESIGN.md section 9, docs/state_machine.md).

Pure functions: the daemon plans with :func:`plan_segments` and worker/stitch.py joins with the rest.

Cuts overlap: every segment but the last runs ``OVERLAP_FRAMES`` past the next one's first frame. The
parent keeps each frame from the segment that owns it (a segment owns its frames up to the next one's
first), and in the overlap both segments saw the same people, so a track of the later segment whose
boxes lie on a track of the earlier one (mean IoU over the shared frames) continues that track: one
runner stays one track over the whole video.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Frames every segment but the last runs past the next one's first frame: long enough for the later
#: segment's tracker to have found everybody and for the boxes to be compared over many frames.
OVERLAP_FRAMES = 30
#: At most this many segments per video, however short ``segment_s`` is: each is a job, with its own
#: claim, decode start and stitch step.
MAX_SEGMENTS = 256
#: Mean IoU over the shared frames above which a later track continues an earlier one.
MATCH_IOU = 0.3

#: track id -> frame index -> [x0, y0, x1, y1]
TrackBoxes = Mapping[int, Mapping[int, Sequence[float]]]


@dataclass(frozen=True)
class Cut:
    """A segment's frames: ``[first, stop)``; ``stop`` None for the last (to the end of the video)."""

    first: int
    stop: int | None


def plan_segments(frames: int, fps: float, segment_s: float, overlap: int = OVERLAP_FRAMES) -> list[Cut]:
    """The segments of a video of ``frames`` at ``fps`` cut every ``segment_s`` seconds (evenly, at
    most MAX_SEGMENTS), or [] when it is not longer than that (or ``segment_s`` is 0: never split)."""
    if segment_s <= 0 or fps <= 0 or frames <= 0 or frames / fps <= segment_s:
        return []
    per_segment = max(1, math.floor(segment_s * fps), math.ceil(frames / MAX_SEGMENTS))
    count = min(frames, math.ceil(frames / per_segment))
    if count < 2:
        return []
    firsts = [k * frames // count for k in range(count)]
    return [Cut(first, None if k == count - 1 else min(frames, firsts[k + 1] + overlap))
            for k, first in enumerate(firsts)]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_tracks(earlier: TrackBoxes, later: TrackBoxes, min_iou: float = MATCH_IOU) -> dict[int, int]:
    """Which of ``later``'s tracks continue which of ``earlier``'s, from their boxes in the frames both
    segments made: {later track: earlier track}, one to one, best pairs first."""
    pairs: list[tuple[float, int, int]] = []
    for b, later_boxes in later.items():
        for a, earlier_boxes in earlier.items():
            shared = earlier_boxes.keys() & later_boxes.keys()
            if shared:
                score = sum(_iou(earlier_boxes[f], later_boxes[f]) for f in shared) / len(shared)
                if score >= min_iou:
                    pairs.append((score, a, b))
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for _, a, b in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if a not in taken and b not in matched:
            matched[b] = a
            taken.add(a)
    return matched


def parent_track_ids(tracks: Sequence[Sequence[int]], matches: Sequence[Mapping[int, int]]) -> list[dict[int, int]]:
    """For each segment, {its track id: the parent's}. The first segment keeps its ids; a later track
    that continues an earlier one (``matches[k - 1]``: segment k's tracks to segment k-1's) takes that
    track's parent id, any other a new one."""
    if not tracks:
        return []
    maps = [{t: t for t in tracks[0]}]
    next_id = max(tracks[0], default=-1) + 1
    for k in range(1, len(tracks)):
        mapping: dict[int, int] = {}
        for t in sorted(tracks[k]):
            earlier = matches[k - 1].get(t)
            if earlier is not None and earlier in maps[k - 1]:
                mapping[t] = maps[k - 1][earlier]
            else:
                mapping[t], next_id = next_id, next_id + 1
        maps.append(mapping)
    return maps


def merge_documents(documents: Sequence[Mapping[str, Any]], frames: int) -> dict[str, Any]:
    """The parent's result document (without frames) from its segments' (in order): the first one's
    video, model and names with the whole video's ``frames`` (decoded frames the parent holds) and
    duration, skipped frames and timings added up (the timings are work done, not wall time)."""
    head = dict(documents[0])
    video = dict(head["video"])
    video["frames"] = frames
    video["skipped_frames"] = sum(int(d["video"].get("skipped_frames", 0)) for d in documents)
    fps = video.get("fps")
    last = documents[-1]["video"]
    if fps:  # the span of the decoded frames plus one frame period, as one pipeline run reports it
        video["duration_s"] = round(max(frames / fps, float(last.get("duration_s", 0.0))), 6)
    head["video"] = video
    if all(isinstance(d.get("timings"), Mapping) for d in documents):
        keys = documents[0]["timings"].keys()
        head["timings"] = {k: round(sum(float(d["timings"].get(k, 0.0)) for d in documents), 6) for k in keys}
    return head
