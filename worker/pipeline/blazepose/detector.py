"""BlazePose person detector: letterboxed frames in, scored detections with alignment keypoints out.

Follows MediaPipe's ``pose_detection_cpu`` graph: the frame is letterboxed (black bars) into 224x224
RGB in [-1, 1]; each of the 2254 anchors predicts a face box and 4 keypoints (mid-hip, body scale
point, mid-shoulder, upper-body scale point) as offsets in input pixels, and a logit. Scores are
clipped logits through a sigmoid, thresholded at ``min_score``; overlapping survivors are merged by
*weighted* NMS (score-weighted average of every box that overlaps the best one by IoU > 0.3), which
noticeably stabilises the keypoints compared with plain NMS. Unlike MediaPipe's, our NMS also asks
the body keypoints to agree (:func:`same_body`): the face boxes of two people close together can
overlap by more than 0.3, and averaging their keypoints would put one "person" between them.

The same model also runs on other square regions of a frame than the letterbox (tiles of a finer
scale, blazepose/tiling.py): :meth:`PoseDetector.detect_regions` takes any regions, and the
detections come back in frame pixels either way.

Decoding and thresholding run batched on the model's device; only the few candidates above threshold
come back to the CPU for NMS, which is a short Python loop over at most a handful of boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from worker.pipeline.blazepose.anchors import ssd_anchors
from worker.pipeline.blazepose.crops import CropWarper, FrameLike, letterbox_region
from worker.pipeline.blazepose.regions import box_iou, regions_from_points

INPUT_SIZE = 224
NUM_KEYPOINTS = 4
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: Two detections are one person when their hip centres and shoulder centres are, on average, closer
#: than this fraction of the body scale (the hip to body-scale-point distance, about half the height).
#: Neighbours side by side are about 0.6 of it apart; one person's anchors agree within about 0.1.
SAME_BODY = 0.35

#: ``model(x)`` with ``x`` an NHWC float tensor returns the TFLite outputs (regressors, logits), batched.
Model = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class Detections:
    """Detections of one frame, best first, in pixels of the upright frame.

    ``boxes``: ``(N, 4)`` face boxes ``[x0, y0, x1, y1]``; ``keypoints``: ``(N, 4, 2)``; ``scores``: ``(N,)``.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    #: Per detection, the side in pixels of the square the detector looked at (the letterbox or a
    #: tile), and whether the face box lay clear of any tile edge that is not the frame's own edge
    #: (a person cut by a tile is described worse than one seen whole). None: the letterbox, clear.
    sides: np.ndarray | None = None
    clear: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def regions(self) -> np.ndarray:
        """Full-body regions ``(N, 4)`` from keypoint 0 (mid-hip) and 1 (body scale point)."""
        return regions_from_points(self.keypoints[:, 0], self.keypoints[:, 1])

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0))


class PoseDetector:
    """Runs the detector on batches of frames (frames are independent, so any number at once)."""

    def __init__(
        self, model: Model, warper: CropWarper, min_score: float = MIN_SCORE, max_batch: int | None = None
    ) -> None:
        self.model = model
        self.warper = warper
        self.min_score = min_score
        # On the CPU, batches beyond a few frames fall out of cache and get slower per frame, not faster.
        self.max_batch = max_batch or (4 if warper.device.type == "cpu" else 64)
        self._min_logit = float(np.log(min_score / (1 - min_score)))
        anchors = torch.from_numpy(ssd_anchors())
        self._anchor_xy = anchors[:, :2].to(warper.device)
        self._anchor_wh = anchors[:, 2:].to(warper.device)

    def __call__(self, frames: Sequence[FrameLike]) -> list[Detections]:
        """Each whole frame, letterboxed (MediaPipe's way): one Detections per frame."""
        if not frames:
            return []
        regions = np.concatenate([letterbox_region(f.image.shape[1], f.image.shape[0]) for f in frames])
        return self.detect_regions(frames, range(len(frames)), regions)

    @torch.inference_mode()
    def detect_regions(
        self, frames: Sequence[FrameLike], sources: Sequence[int], regions: np.ndarray
    ) -> list[Detections]:
        """Detections in each axis-aligned square ``regions[i] = [cx, cy, side, 0]`` of ``frames[sources[i]]``
        (padded with black beyond the frame), in frame pixels: one Detections per region, in one batch."""
        regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
        if len(regions) == 0:
            return []
        batch = self.warper(frames, sources, regions, INPUT_SIZE, border="zero").mul_(2.0).sub_(1.0)
        parts = [self.model(batch[i : i + self.max_batch])[:2] for i in range(0, len(batch), self.max_batch)]
        raw_boxes = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        raw_scores = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        return self.decode(raw_boxes, raw_scores, regions)

    def decode(self, raw_boxes: torch.Tensor, raw_scores: torch.Tensor, regions: np.ndarray) -> list[Detections]:
        """Anchor-decode, threshold and NMS a batch of raw outputs; map them into each frame's pixels."""
        logits = raw_scores.reshape(raw_scores.shape[0], -1).clamp(-SCORE_CLIP, SCORE_CLIP)
        keep = logits >= self._min_logit  # same as sigmoid(logit) >= min_score, without the sigmoid
        frame_idx, anchor_idx = torch.nonzero(keep, as_tuple=True)
        raw = raw_boxes.reshape(raw_boxes.shape[0], -1, 4 + 2 * NUM_KEYPOINTS)[frame_idx, anchor_idx].float()
        # Outputs are x-first ("reverse_output_order") offsets in input pixels, relative to unit anchors.
        xy = self._anchor_xy[anchor_idx]
        wh = self._anchor_wh[anchor_idx]
        centre = raw[:, 0:2] / INPUT_SIZE * wh + xy
        size = raw[:, 2:4] / INPUT_SIZE * wh
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
        kps = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / INPUT_SIZE * wh[:, None] + xy[:, None]
        scores = torch.sigmoid(logits[frame_idx, anchor_idx])
        frame_np = frame_idx.cpu().numpy()
        boxes_np = boxes.cpu().numpy().astype(np.float64)
        kps_np = kps.cpu().numpy().astype(np.float64)
        scores_np = scores.cpu().numpy().astype(np.float64)
        out = []
        for i, region in enumerate(regions):
            sel = frame_np == i
            b, k, s = weighted_nms(boxes_np[sel], kps_np[sel], scores_np[sel])
            # Letterboxed-input units -> frame pixels: the input square is the frame's region.
            side = region[2]
            origin = region[:2] - side / 2
            b = b * side + np.tile(origin, 2)
            k = k * side + origin
            out.append(Detections(b, k, s, np.full(len(s), float(side))))
        return out


def body_scale(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``(N,)`` a detection's body scale in its own units: the hip to body-scale-point distance (about
    half the body's height). The face box says little (the model regresses about the same size for
    every face, a fifth of its input), so it only sets a floor (a twentieth of its side) for keypoints
    that coincide."""
    delta = keypoints[:, 1] - keypoints[:, 0]
    face = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    scale: np.ndarray = np.maximum(np.hypot(delta[:, 0], delta[:, 1]), 0.05 * face)
    return scale


def same_body(
    keypoints_a: np.ndarray,
    scale_a: np.ndarray,
    keypoints_b: np.ndarray,
    scale_b: np.ndarray,
    tolerance: float = SAME_BODY,
) -> np.ndarray:
    """``(N, M)``: whether detection a and detection b describe the same body, by their hip centres
    (keypoint 0) and shoulder centres (keypoint 2) relative to the larger body scale, and by sizes
    within a factor of two."""
    hips = np.linalg.norm(keypoints_a[:, None, 0] - keypoints_b[None, :, 0], axis=-1)
    shoulders = np.linalg.norm(keypoints_a[:, None, 2] - keypoints_b[None, :, 2], axis=-1)
    larger = np.maximum(scale_a[:, None], scale_b[None, :])
    smaller = np.minimum(scale_a[:, None], scale_b[None, :])
    same: np.ndarray = ((hips + shoulders) / 2 < tolerance * larger) & (2 * smaller >= larger)
    return same


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression, where the keypoints must agree too.

    Repeatedly takes the best remaining box, averages it with every remaining box that overlaps it by
    more than ``iou_threshold`` and describes the same body (:func:`same_body`; weights = scores,
    keypoints averaged alike) and keeps the best score. A box that overlaps but whose body is
    elsewhere stays for a later round: it is a neighbour, not a duplicate. Boxes with negative or NaN
    extent are dropped first, as MediaPipe does when it decodes them.
    """
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    valid = (width >= 0) & (height >= 0)
    boxes, keypoints, scores = boxes[valid], keypoints[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    scale = body_scale(boxes, keypoints)
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        best = remaining[0]
        iou = box_iou(boxes[best], boxes[remaining])[0]
        member = (iou > iou_threshold) & same_body(keypoints[best : best + 1], scale[best : best + 1],
                                                   keypoints[remaining], scale[remaining])[0]
        member[0] = True  # a box always belongs with itself (even a degenerate one)
        group = remaining[member]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[best])
        remaining = remaining[~member]
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0)
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s)
