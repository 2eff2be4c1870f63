"""Who is who across frames: tracking in video mode, id matching in static mode.

Video mode works like MediaPipe's pose tracking, extended to several people and to people who are
briefly not seen. Each track carries the region where its person should be in the next frame, derived
from this frame's (smoothed) auxiliary landmarks, so the detector is not needed while tracking holds.
The detector runs when nobody is tracked, on the frame after a track was lost, and, while fewer than
``max_people`` are tracked, every ``redetect_every`` frames to pick up people who walk in (the
pipeline adds its tiled search, blazepose/tiling.py). Detections that land on someone already tracked
(hip centres closer than a fraction of the region size) are ignored before any landmark inference;
after inference, a newcomer whose landmark box overlaps a track's (IoU) is a duplicate.

A track whose pose flag drops below 0.5 is not ended at once: for ``grace`` frames it is *lost*, its
region predicted by a constant-velocity model (tracking/motion.py) and the landmark model run there
again each frame, and a detection near the prediction is looked at instead. It comes back with its id
when the landmark model finds a person there who looks like it (torso colours,
tracking/appearance.py), or when a newcomer matches it by position, size and looks. Lost tracks are
not in the frame's people. When two tracks land on one person (a crossing: the hidden one's region
slides onto the one in front), the person goes to the track whose motion and looks fit better and the
other becomes lost, instead of the younger one simply ending. ``grace=0`` is the old behaviour: a
track ends on its first frame below the flag threshold and nobody is re-identified.

Static mode has no regions to carry; ids are matched greedily by IoU of the landmark boxes between
consecutive frames, and unmatched people get new ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worker.pipeline.blazepose.detector import Detections
from worker.pipeline.blazepose.landmarks import POSE_THRESHOLD, PoseLandmarks
from worker.pipeline.blazepose.regions import (
    ANGLE,
    CX,
    CY,
    SIZE,
    bounding_boxes,
    box_iou,
    regions_from_points,
)
from worker.pipeline.tracking import appearance
from worker.pipeline.tracking.motion import RegionMotion
from worker.pipeline.tracking.smoothing import PoseSmoother

#: A detection whose hip centre is within this fraction of a track's region size is that person.
SAME_PERSON_CENTRE = 0.15
#: Landmark boxes overlapping more than this are the same person.
DUPLICATE_IOU = 0.5
#: Static mode: minimum IoU to carry an id over from the previous frame.
MATCH_IOU = 0.3
#: Frames between re-detections while fewer than max_people are tracked (0.5 s at 30 fps).
DEFAULT_REDETECT_EVERY = 15
#: Frames a track stays alive without being seen (1 s at 30 fps).
DEFAULT_GRACE = 30
#: A detection within this fraction of a lost track's predicted region size replaces the prediction.
REACQUIRE_CENTRE = 0.5
#: Re-identification gate: a newcomer's hip centre within this fraction of the lost track's predicted
#: region size (growing by REID_GROWTH per frame lost), its size within a factor REID_SIZE.
REID_CENTRE = 0.75
REID_GROWTH = 0.05
REID_SIZE = 1.6
#: Appearance distance (0: same colours, 1: none in common) above which two looks are two people.
SAME_LOOK = 0.5
#: How fast a track's look follows new samples; samples are only taken while nobody overlaps it.
LOOK_RATE = 0.1
LOOK_CLEAR_IOU = 0.05


@dataclass(frozen=True)
class Person:
    """One person in one frame, ready for the result document (pixels, metres)."""

    track_id: int
    bbox: np.ndarray  # (4,) x0, y0, x1, y1 clipped to the frame
    score: float
    keypoints: np.ndarray  # (33, 5)
    world: np.ndarray  # (33, 3)


@dataclass
class _Track:
    track_id: int
    region: np.ndarray  # where to look in the next frame (when seen in this one)
    smoother: PoseSmoother
    bbox: np.ndarray
    motion: RegionMotion = field(default_factory=RegionMotion)
    look: np.ndarray | None = None
    missed: int = 0  # consecutive frames not seen

    def expected(self, frame_index: int) -> np.ndarray:
        """Where the person should be in ``frame_index``: the tracked region, or the prediction."""
        if self.missed == 0 or self.motion.last_frame < 0:
            return self.region
        predicted = self.motion.predict(frame_index)
        predicted[ANGLE] = self.region[ANGLE]
        return predicted


class VideoTracker:
    """Per-video tracking state; call :meth:`plan` then :meth:`update` once per frame, in order."""

    def __init__(
        self,
        width: int,
        height: int,
        max_people: int,
        smoothing: bool = True,
        redetect_every: int = DEFAULT_REDETECT_EVERY,
        grace: int = DEFAULT_GRACE,
    ) -> None:
        self.width, self.height = width, height
        self.max_people = max_people
        self.smoothing = smoothing
        self.redetect_every = redetect_every
        self.grace = grace
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._lost_last_frame = False
        self._frame = -1
        self._runs: list[_Track] = []  # the tracks whose regions lead this frame's plan, in order
        self._candidates = np.zeros((0, 4))
        #: Whether the last update started a track or lost one (the pipeline's search restarts then).
        self.changed = False

    def __len__(self) -> int:
        """Tracks alive: seen on the last frame, or lost within their grace."""
        return len(self._tracks)

    @property
    def active(self) -> int:
        """Tracks seen on the last frame."""
        return sum(1 for t in self._tracks if t.missed == 0)

    def on_cadence(self, frame_index: int) -> bool:
        """Re-detection frames (when people are missing); fixed in advance so they can be batched."""
        return frame_index % self.redetect_every == 0

    def wants_detection(self, frame_index: int) -> bool:
        """Whether this frame's whole-frame detections would be used (so they are worth computing)."""
        if self.active == 0 or self._lost_last_frame:
            return True
        return self.active < self.max_people and self.on_cadence(frame_index)

    def lost_regions(self, frame_index: int) -> np.ndarray:
        """``(N, 4)`` predicted regions of the lost tracks whose person should be in the frame."""
        regions = [t.expected(frame_index) for t in self._tracks if t.missed > 0]
        return np.array([r for r in regions if self._inside(r)]).reshape(-1, 4)

    def _inside(self, region: np.ndarray) -> bool:
        return bool(0 <= region[CX] < self.width and 0 <= region[CY] < self.height and region[SIZE] > 0)

    def plan(self, frame_index: int, detections: Detections | None) -> np.ndarray:
        """Regions to run the landmark model on: tracked people first (lost ones where they should
        be), then new candidates."""
        self._frame = frame_index
        self._runs, regions = [], []
        for track in self._tracks:
            region = track.expected(frame_index)
            if track.missed == 0 or self._inside(region):
                self._runs.append(track)
                regions.append(region.copy())
        tracked = np.array(regions).reshape(-1, 4)
        candidates = np.zeros((0, 4))
        if detections is not None and len(detections):
            candidates = detections.regions()
            seen = np.array([t.missed == 0 for t in self._runs], dtype=bool)
            if seen.any():
                known = _near(candidates, tracked[seen], SAME_PERSON_CENTRE).any(axis=1)
                candidates = candidates[~known]
            for j in np.flatnonzero(~seen):  # a detection where a lost person should be: look there
                if len(candidates) == 0:
                    break
                near = _near(candidates, tracked[j : j + 1], REACQUIRE_CENTRE)[:, 0]
                if near.any():
                    dist = np.hypot(candidates[:, CX] - tracked[j, CX], candidates[:, CY] - tracked[j, CY])
                    best = int(np.argmin(np.where(near, dist, np.inf)))
                    tracked[j] = candidates[best]
                    candidates = np.delete(candidates, best, axis=0)
            candidates = candidates[: max(0, self.max_people - int(seen.sum()))]
        self._candidates = candidates
        return np.concatenate([tracked, candidates])

    def update(self, time_s: float, landmarks: PoseLandmarks, image: np.ndarray | None = None) -> list[Person]:
        """Take the landmarks for the regions :meth:`plan` returned (``image``: the frame, BGR, for the
        appearance cue); returns this frame's people."""
        runs, n = self._runs, len(self._runs)
        boxes = bounding_boxes(landmarks.image, self.width, self.height).reshape(-1, 4)
        ok = landmarks.flag >= POSE_THRESHOLD
        looks: dict[int, np.ndarray | None] = {}

        def look(i: int) -> np.ndarray | None:
            if i not in looks:
                looks[i] = None if image is None else appearance.torso_histogram(image, landmarks.image[i])
            return looks[i]

        # A lost track's region found someone: it is that person only if they look alike.
        for j, track in enumerate(runs):
            if ok[j] and track.missed > 0:
                d = appearance.distance(track.look, look(j))
                ok[j] = d is None or d <= SAME_LOOK
        # Two tracks on one person: the person goes to the better fit, the other track is lost.
        accepted: list[int] = []
        for j in sorted((int(x) for x in np.flatnonzero(ok[:n])), key=lambda x: (runs[x].missed > 0, runs[x].track_id)):
            clash = [k for k in accepted if box_iou(boxes[j], boxes[k])[0, 0] > DUPLICATE_IOU]
            if not clash:
                accepted.append(int(j))
                continue
            k = clash[0]
            if self._fit(runs[j], landmarks, j, look(j)) < self._fit(runs[k], landmarks, k, look(k)):
                accepted[accepted.index(k)] = int(j)
        # Newcomers: not on anyone already here.
        newcomers: list[int] = []
        for i in range(n, n + len(self._candidates)):
            taken = [boxes[k] for k in accepted + newcomers]
            if ok[i] and not (taken and (box_iou(boxes[i], np.array(taken)) > DUPLICATE_IOU).any()):
                newcomers.append(i)
        seen: dict[int, int] = {runs[j].track_id: j for j in accepted}
        # Lost tracks take back the newcomers that fit them best.
        lost = [t for t in self._tracks if t.track_id not in seen and self.grace > 0]
        pairs = []
        for t in lost:
            for i in newcomers:
                cost = self._reid_cost(t, landmarks, i, look(i))
                if cost is not None:
                    pairs.append((cost, t.track_id, i))
        taken_tracks: set[int] = set()
        for _cost, track_id, newcomer in sorted(pairs):
            if track_id not in taken_tracks and newcomer in newcomers:
                seen[track_id] = newcomer
                taken_tracks.add(track_id)
                newcomers.remove(newcomer)
        people: dict[int, Person] = {}
        survivors: list[_Track] = []
        lost_now = False
        for track in self._tracks:
            index = seen.get(track.track_id)
            if index is None:
                track.missed += 1
                lost_now |= track.missed == 1
                if track.missed <= self.grace:
                    survivors.append(track)
                continue
            track.missed = 0
            people[track.track_id] = self._advance(track, time_s, landmarks, index)
            survivors.append(track)
        created = 0
        for i in newcomers:
            if len(survivors) >= self.max_people:
                break
            track = _Track(self._next_id, np.zeros(4), PoseSmoother(self.smoothing), boxes[i])
            self._next_id += 1
            people[track.track_id] = self._advance(track, time_s, landmarks, i)
            seen[track.track_id] = i
            survivors.append(track)
            created += 1
        # Learn looks only from people nobody overlaps (a crossing would blend two people).
        shown = [t for t in survivors if t.track_id in people]
        for track in shown:
            others = [o.bbox for o in shown if o is not track]
            if not others or (box_iou(track.bbox, np.array(others)) <= LOOK_CLEAR_IOU).all():
                track.look = appearance.blend(track.look, look(seen[track.track_id]), LOOK_RATE)
        self.changed = lost_now or created > 0
        self._tracks = survivors
        self._lost_last_frame = lost_now
        return [people[t.track_id] for t in sorted(shown, key=lambda t: t.track_id)]

    def _fit(self, track: _Track, landmarks: PoseLandmarks, i: int, look: np.ndarray | None) -> float:
        """How badly pose ``i`` fits the track: hip centre off the expected one, in region sizes, plus
        the appearance distance when both looks are known (lower is better)."""
        expected = track.expected(self._frame)
        hip = landmarks.aux[i, 0, :2]
        cost = float(np.hypot(*(hip - expected[[CX, CY]]))) / max(float(expected[SIZE]), 1.0)
        d = appearance.distance(track.look, look)
        return cost + (d if d is not None else 0.0)

    def _reid_cost(self, track: _Track, landmarks: PoseLandmarks, i: int, look: np.ndarray | None) -> float | None:
        """The cost of giving newcomer ``i`` the lost track's id, None when outside the gates."""
        expected = track.expected(self._frame)
        size = max(float(expected[SIZE]), 1.0)
        region = regions_from_points(landmarks.aux[i, 0, :2], landmarks.aux[i, 1, :2])[0]
        offset = float(np.hypot(*(region[[CX, CY]] - expected[[CX, CY]]))) / size
        if offset > REID_CENTRE + REID_GROWTH * track.missed:
            return None
        if not 1 / REID_SIZE <= region[SIZE] / size <= REID_SIZE:
            return None
        d = appearance.distance(track.look, look)
        if d is not None and d > SAME_LOOK:
            return None
        return offset + (d if d is not None else 0.0)

    def _advance(self, track: _Track, time_s: float, landmarks: PoseLandmarks, i: int) -> Person:
        smoothed = track.smoother(time_s, landmarks.image[i], landmarks.aux[i], landmarks.world[i])
        track.region = regions_from_points(smoothed.aux[0, :2], smoothed.aux[1, :2])[0]
        track.bbox = bounding_boxes(smoothed.image[None], self.width, self.height)[0]
        # the motion model follows the raw landmarks: the smoothed region lags behind a moving person
        track.motion.observe(self._frame, regions_from_points(landmarks.aux[i, 0, :2], landmarks.aux[i, 1, :2])[0])
        return Person(track.track_id, track.bbox, float(landmarks.flag[i]), smoothed.image, smoothed.world)


def _near(candidates: np.ndarray, regions: np.ndarray, fraction: float) -> np.ndarray:
    """``(N, M)``: candidate hip centres within ``fraction`` of each region's size of its centre."""
    dist = np.hypot(candidates[:, None, CX] - regions[None, :, CX], candidates[:, None, CY] - regions[None, :, CY])
    near: np.ndarray = dist < fraction * regions[None, :, SIZE]
    return near


class StaticIdMatcher:
    """Static mode: per-frame people get ids carried over from the previous frame by landmark-box IoU."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._prev_boxes = np.zeros((0, 4))
        self._prev_ids: list[int] = []
        self._next_id = 0

    def __call__(self, landmarks: PoseLandmarks) -> list[Person]:
        keep = np.nonzero(landmarks.flag >= POSE_THRESHOLD)[0]
        lm = landmarks.take(keep)
        boxes = bounding_boxes(lm.image, self.width, self.height).reshape(-1, 4)
        # Duplicate detections of one person (rare after NMS): keep the more confident.
        order = np.argsort(-lm.flag, kind="stable")
        unique: list[int] = []
        for i in order:
            if unique and (box_iou(boxes[i], boxes[unique]) > DUPLICATE_IOU).any():
                continue
            unique.append(int(i))
        unique.sort()
        boxes = boxes[unique]
        ids: list[int | None] = [None] * len(unique)
        if len(unique) and self._prev_ids:
            iou = box_iou(boxes, self._prev_boxes)
            used: set[int] = set()
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                a, b = divmod(int(flat), iou.shape[1])
                if iou[a, b] <= MATCH_IOU:
                    break
                if ids[a] is None and b not in used:
                    ids[a] = self._prev_ids[b]
                    used.add(b)
        for k in range(len(ids)):
            if ids[k] is None:
                ids[k] = self._next_id
                self._next_id += 1
        self._prev_boxes = boxes
        self._prev_ids = [int(i) for i in ids if i is not None]
        people = [
            Person(int(pid), boxes[k], float(lm.flag[i]), lm.image[i], lm.world[i])
            for k, (i, pid) in enumerate(zip(unique, ids, strict=True))
            if pid is not None
        ]
        return sorted(people, key=lambda p: p.track_id)
