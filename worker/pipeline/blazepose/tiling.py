"""Finding small people: the same detector on overlapping tiles of finer scales, merged by body.

The detector finds a person when they are at least about a quarter as tall as the square it looks at
(measured on the runner composited at known sizes: 30/30 frames at 25 %, 18/30 at 20 %, none at
17 % and below; fine up to the whole square, and with the legs cut off by the square's bottom edge,
but not with the face cut by a side edge). MediaPipe's input is the whole frame letterboxed into
one square as wide as the frame, so in a 16:9 frame nobody shorter than 44 % of the frame height
is found. Hence scales:

* level 0: the letterbox (MediaPipe's input, people from a quarter of the frame's long side up);
* level k >= 1: squares of side ``short side / 2**k`` overlapping by half both ways (a person's face
  is then well inside some tile whatever their position), people from a quarter of that up: level
  1 finds people an eighth of the frame's short side tall, level 2 a sixteenth.

:func:`auto_scales` picks the levels a frame needs from its size: level 1 whenever its people are at
least 40 px tall (frames with a short side of 320 px or more), and each finer level while its tiles
stay at least 512 px wide, i.e. while the people it adds are at least 128 px tall (the landmark model
is still accurate on them): 1 level up to 1440p (21 tiles on 16:9), 2 on 4K (98 more).

Every square of a frame runs through the detector in one batch; the detections are mapped back into
frame pixels and merged by body (hip and shoulder centres, :func:`detector.same_body`), not by the
face boxes. Of the detections of one person the most trustworthy level wins: one where the person is
tall enough for the detector to be reliable, the coarsest of those (a person seen whole), clear of
tile edges, then the best score; equally good ones from the same level are averaged by score. A frame
searched with the letterbox alone gives exactly the detector's own answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from worker.pipeline.blazepose.crops import FrameLike, letterbox_region
from worker.pipeline.blazepose.detector import NUM_KEYPOINTS, Detections, PoseDetector, body_scale, same_body

#: Most finer levels a frame may ask for (level 3 tiles of a 4K frame are 270 px).
MAX_SCALES = 3
#: Level 1 runs when the people it adds (an eighth of the short side) are at least this tall.
MIN_LEVEL1_PERSON_PX = 40
#: Finer levels run while their tiles are at least this wide (their people at least a quarter of it).
MIN_FINE_TILE_PX = 512
#: The detector is reliable from this person height / square side up (measured: see the docstring).
RELIABLE_FRACTION = 0.22
#: Tiles overlap by this fraction of their side.
OVERLAP = 0.5


def auto_scales(width: int, height: int) -> int:
    """How many finer levels a ``width x height`` frame needs (see the module docstring)."""
    short = min(width, height)
    if short / 8 < MIN_LEVEL1_PERSON_PX:
        return 0
    levels = 1
    while levels < MAX_SCALES and short / 2 ** (levels + 1) >= MIN_FINE_TILE_PX:
        levels += 1
    return levels


def _positions(extent: int, side: float) -> np.ndarray:
    """Centres of tiles of ``side`` covering ``[0, extent)`` with at least OVERLAP between neighbours."""
    if side >= extent:
        return np.array([extent / 2])
    count = math.ceil((extent - side) / (side * (1 - OVERLAP)) - 1e-9) + 1
    return np.linspace(side / 2, extent - side / 2, count)


def level_tiles(width: int, height: int, level: int) -> np.ndarray:
    """``(N, 4)`` regions ``[cx, cy, side, 0]`` of one level (level 0: the letterbox)."""
    if level == 0:
        return letterbox_region(width, height)
    side = min(width, height) / 2**level
    xs, ys = _positions(width, side), _positions(height, side)
    cx, cy = np.meshgrid(xs, ys)
    return np.stack([cx.ravel(), cy.ravel(), np.full(cx.size, side), np.zeros(cx.size)], axis=1)


@dataclass(frozen=True)
class TileGrid:
    """The squares searched in frames of one size: the letterbox and the tiles of ``scales`` levels."""

    width: int
    height: int
    scales: int

    @classmethod
    def for_frame(cls, width: int, height: int, scales: int | None = None) -> TileGrid:
        """``scales`` None: :func:`auto_scales`."""
        return cls(width, height, auto_scales(width, height) if scales is None else int(scales))

    @property
    def letterbox(self) -> np.ndarray:
        return level_tiles(self.width, self.height, 0)

    @property
    def tiles(self) -> np.ndarray:
        """Every tile of levels 1..scales, coarsest first."""
        levels = [level_tiles(self.width, self.height, k) for k in range(1, self.scales + 1)]
        return np.concatenate(levels) if levels else np.zeros((0, 4))

    def everything(self) -> np.ndarray:
        return np.concatenate([self.letterbox, self.tiles])

    def rolling(self, frame_index: int, period: int) -> np.ndarray:
        """The tiles whose turn it is on this frame when a whole sweep is spread over ``period`` frames
        (tile j on frames ``floor(j * period / n)`` modulo ``period``): a steady load instead of bursts,
        and known in advance, so that it can be computed ahead."""
        tiles = self.tiles
        if len(tiles) == 0 or period < 1:
            return tiles[:0]
        slots = (np.arange(len(tiles)) * period) // len(tiles)
        due: np.ndarray = tiles[slots == frame_index % period]
        return due

    def around(self, centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Squares twice the size of the given person regions, centred on them: where the detector
        sees a person of that size best (their height about 40 % of the square)."""
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        sides = 2.0 * np.asarray(sizes, dtype=np.float64).reshape(-1)
        return np.stack([centres[:, 0], centres[:, 1], sides, np.zeros(len(sides))], axis=1)


class Sweep:
    """Video mode's search of the tiles for newcomers: one sweep over every tile is spread over
    ``period`` frames (a few tiles per frame, known in advance so that they can be detected ahead). A
    sweep in which nothing happens (nobody new, nobody lost) makes the next one twice as long, up to
    ``max_factor`` times the base; :meth:`restart` (somebody came or went) goes back to the base
    period at once. A static scene costs little after a while, a busy one is searched often."""

    def __init__(self, grid: TileGrid, period: int, max_factor: int = 16) -> None:
        self.tiles = grid.tiles
        self.base = max(1, period)
        self.max_period = self.base * max(1, max_factor)
        self._start, self._period = 0, self.base
        self._plan: dict[int, tuple[int, int]] = {}  # sweep start -> period (for frames planned ahead)

    def restart(self, frame_index: int, quiet: bool = False) -> None:
        """A new sweep from ``frame_index``; ``quiet``: as after a quiet sweep (twice the base period),
        e.g. right after every tile was searched at once."""
        self._start, self._period = frame_index, self.base * (2 if quiet else 1)

    def due(self, frame_index: int) -> np.ndarray:
        """The tiles to search in ``frame_index`` (frames asked in increasing order)."""
        n = len(self.tiles)
        if n == 0 or frame_index < self._start:
            return self.tiles[:0]
        while frame_index >= self._start + self._period:
            self._start += self._period
            self._period = min(2 * self._period, self.max_period)
        slots = (np.arange(n) * self._period) // n
        due: np.ndarray = self.tiles[slots == frame_index - self._start]
        return due


def _clear(det: Detections, region: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether each face box and hip centre lie inside the region, half a face away from any region
    edge that is not also the frame's edge."""
    half = region[2] / 2
    x0, y0, x1, y1 = region[0] - half, region[1] - half, region[0] + half, region[1] + half
    face = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1]) / 2
    lo_x = np.where(x0 <= 0, -np.inf, x0 + face)
    hi_x = np.where(x1 >= width, np.inf, x1 - face)
    lo_y = np.where(y0 <= 0, -np.inf, y0 + face)
    hi_y = np.where(y1 >= height, np.inf, y1 - face)
    xs = np.concatenate([det.boxes[:, [0, 2]], det.keypoints[:, :1, 0]], axis=1)
    ys = np.concatenate([det.boxes[:, [1, 3]], det.keypoints[:, :1, 1]], axis=1)
    inside = (xs >= lo_x[..., None]) & (xs <= hi_x[..., None]) & (ys >= lo_y[..., None]) & (ys <= hi_y[..., None])
    return np.asarray(inside.all(axis=1))


def merge_detections(parts: Sequence[Detections]) -> Detections:
    """One person per body among detections from several squares of one frame (see the module
    docstring); detections from the same square are never merged again (NMS has decided there)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Detections.empty()
    if len(parts) == 1 and parts[0].sides is not None:
        return parts[0]
    boxes = np.concatenate([p.boxes for p in parts])
    kps = np.concatenate([p.keypoints for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    sides = np.concatenate([p.sides if p.sides is not None else np.full(len(p), np.inf) for p in parts])
    clear = np.concatenate([p.clear if p.clear is not None else np.ones(len(p), bool) for p in parts])
    origin = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    scale = body_scale(boxes, kps)
    reliable = 2 * scale >= RELIABLE_FRACTION * sides
    order = np.lexsort((-scores, ~clear, -sides, ~reliable))
    reps: list[int] = []
    members: list[list[int]] = []
    for i in order:
        match = -1
        if reps:
            same = same_body(kps[i : i + 1], scale[i : i + 1], kps[reps], scale[reps])[0]
            same &= origin[reps] != origin[i]
            if same.any():
                dist = np.linalg.norm(kps[reps][:, 0] - kps[i, 0], axis=-1)
                match = int(np.argmin(np.where(same, dist, np.inf)))
        if match < 0:
            reps.append(int(i))
            members.append([int(i)])
            continue
        rep = reps[match]
        if sides[i] == sides[rep] and clear[i] == clear[rep] and reliable[i] == reliable[rep]:
            members[match].append(int(i))
    out_b, out_k, out_s, out_side, out_clear = [], [], [], [], []
    for rep, group in zip(reps, members, strict=True):
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((kps[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[group].max())
        out_side.append(sides[rep])
        out_clear.append(clear[rep])
    rank = np.argsort(-np.asarray(out_s), kind="stable")
    return Detections(np.stack(out_b)[rank], np.stack(out_k).reshape(-1, NUM_KEYPOINTS, 2)[rank],
                      np.asarray(out_s)[rank], np.asarray(out_side)[rank], np.asarray(out_clear)[rank])


class MultiScaleDetector:
    """Runs the detector on any squares of any frames in one batch and merges each frame's answers."""

    def __init__(self, detector: PoseDetector) -> None:
        self.detector = detector

    def __call__(self, frames: Sequence[FrameLike], plans: Sequence[np.ndarray]) -> list[Detections]:
        """``plans[i]``: the ``(N, 4)`` squares to search in ``frames[i]``; one Detections per frame."""
        sources = [i for i, plan in enumerate(plans) for _ in range(len(plan))]
        regions = [np.asarray(p, dtype=np.float64).reshape(-1, 4) for p in plans]
        everything = np.concatenate(regions) if regions else np.zeros((0, 4))
        per_region = self.detector.detect_regions(frames, sources, everything)
        out: list[Detections] = []
        k = 0
        for frame, plan in zip(frames, regions, strict=True):
            height, width = frame.image.shape[:2]
            parts = []
            for region in plan:
                det = per_region[k]
                k += 1
                clear = _clear(det, region, width, height)
                # A face at a tile's inner edge is seen whole by the overlapping tile; what is cut there
                # is mostly a pair of legs taken for a body.
                parts.append(Detections(det.boxes[clear], det.keypoints[clear], det.scores[clear],
                                        None if det.sides is None else det.sides[clear], clear[clear]))
            out.append(merge_detections(parts))
        return out
