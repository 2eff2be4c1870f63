"""Who is who across frames: tracking in video mode, id matching in static mode.

Video mode works like MediaPipe's pose tracking, extended to several people. Each track carries the
region where its person should be in the next frame, derived from this frame's (smoothed) auxiliary
landmarks, so the detector is not needed while tracking holds. A track ends when the landmark model's
pose flag drops below 0.5. The detector runs when nobody is tracked, on the frame after a track was
lost, and, while fewer than ``max_people`` are tracked, every ``redetect_every`` frames to pick up people
who walk in. Detections that land on someone already tracked (hip centres closer than a fraction of
the region size) are ignored before any landmark inference; after inference, a newcomer whose
landmark box overlaps a track's (IoU) is a duplicate, and two tracks that converge on one person are
merged into the older. Identities therefore come from the regions themselves, frame to frame.

Static mode has no regions to carry; ids are matched greedily by IoU of the landmark boxes between
consecutive frames, and unmatched people get new ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worker.pipeline.blazepose.detector import Detections
from worker.pipeline.blazepose.landmarks import POSE_THRESHOLD, PoseLandmarks
from worker.pipeline.blazepose.regions import CX, CY, SIZE, bounding_boxes, box_iou, regions_from_points
from worker.pipeline.tracking.smoothing import PoseSmoother

#: A detection whose hip centre is within this fraction of a track's region size is that person.
SAME_PERSON_CENTRE = 0.15
#: Landmark boxes overlapping more than this are the same person.
DUPLICATE_IOU = 0.5
#: Static mode: minimum IoU to carry an id over from the previous frame.
MATCH_IOU = 0.3
#: Frames between re-detections while fewer than max_people are tracked (0.5 s at 30 fps).
DEFAULT_REDETECT_EVERY = 15


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
    region: np.ndarray  # where to look in the next frame
    smoother: PoseSmoother
    bbox: np.ndarray


class VideoTracker:
    """Per-video tracking state; call :meth:`plan` then :meth:`update` once per frame, in order."""

    def __init__(
        self,
        width: int,
        height: int,
        max_people: int,
        smoothing: bool = True,
        redetect_every: int = DEFAULT_REDETECT_EVERY,
    ) -> None:
        self.width, self.height = width, height
        self.max_people = max_people
        self.smoothing = smoothing
        self.redetect_every = redetect_every
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._lost_last_frame = False
        self._candidates = np.zeros((0, 4))

    def __len__(self) -> int:
        return len(self._tracks)

    def on_cadence(self, frame_index: int) -> bool:
        """Re-detection frames (when people are missing); fixed in advance so they can be batched."""
        return frame_index % self.redetect_every == 0

    def wants_detection(self, frame_index: int) -> bool:
        """Whether this frame's detections would be used (so they are worth computing)."""
        if not self._tracks or self._lost_last_frame:
            return True
        return len(self._tracks) < self.max_people and self.on_cadence(frame_index)

    def plan(self, frame_index: int, detections: Detections | None) -> np.ndarray:
        """Regions to run the landmark model on: tracked people first, then new candidates."""
        tracked = np.array([t.region for t in self._tracks]).reshape(-1, 4)
        self._candidates = np.zeros((0, 4))
        if detections is not None and self.wants_detection(frame_index):
            candidates = detections.regions()
            if len(tracked) and len(candidates):
                dist = np.hypot(
                    candidates[:, None, CX] - tracked[None, :, CX], candidates[:, None, CY] - tracked[None, :, CY]
                )
                known = (dist < SAME_PERSON_CENTRE * tracked[None, :, SIZE]).any(axis=1)
                candidates = candidates[~known]
            self._candidates = candidates[: max(0, self.max_people - len(tracked))]
        return np.concatenate([tracked, self._candidates])

    def update(self, time_s: float, landmarks: PoseLandmarks) -> list[Person]:
        """Take the landmarks for the regions :meth:`plan` returned; returns this frame's people."""
        n_tracked = len(self._tracks)
        people: dict[int, Person] = {}
        survivors: list[_Track] = []
        lost = False
        for i, track in enumerate(self._tracks):
            if landmarks.flag[i] < POSE_THRESHOLD:
                lost = True
                continue
            people[track.track_id] = self._advance(track, time_s, landmarks, i)
            survivors.append(track)
        for j in range(len(self._candidates)):
            i = n_tracked + j
            if landmarks.flag[i] < POSE_THRESHOLD:
                continue
            box = bounding_boxes(landmarks.image[i : i + 1], self.width, self.height)
            if survivors and (box_iou(box, np.array([t.bbox for t in survivors])) > DUPLICATE_IOU).any():
                continue
            track = _Track(self._next_id, np.zeros(4), PoseSmoother(self.smoothing), box[0])
            self._next_id += 1
            people[track.track_id] = self._advance(track, time_s, landmarks, i)
            survivors.append(track)
        self._tracks = self._merge_converged(survivors, people)
        self._lost_last_frame = lost
        return [people[t.track_id] for t in sorted(self._tracks, key=lambda t: t.track_id)]

    def _advance(self, track: _Track, time_s: float, landmarks: PoseLandmarks, i: int) -> Person:
        smoothed = track.smoother(time_s, landmarks.image[i], landmarks.aux[i], landmarks.world[i])
        track.region = regions_from_points(smoothed.aux[0, :2], smoothed.aux[1, :2])[0]
        track.bbox = bounding_boxes(smoothed.image[None], self.width, self.height)[0]
        return Person(track.track_id, track.bbox, float(landmarks.flag[i]), smoothed.image, smoothed.world)

    @staticmethod
    def _merge_converged(tracks: list[_Track], people: dict[int, Person]) -> list[_Track]:
        """Two tracks that drifted onto one person: keep the older id."""
        tracks = sorted(tracks, key=lambda t: t.track_id)
        kept: list[_Track] = []
        for track in tracks:
            if kept and (box_iou(track.bbox, np.array([k.bbox for k in kept])) > DUPLICATE_IOU).any():
                people.pop(track.track_id, None)
                continue
            kept.append(track)
        return kept


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
