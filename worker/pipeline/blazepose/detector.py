"""BlazePose person detector: letterboxed frames in, scored detections with alignment keypoints out.

Follows MediaPipe's ``pose_detection_cpu`` graph: the frame is letterboxed (black bars) into 224x224
RGB in [-1, 1]; each of the 2254 anchors predicts a face box and 4 keypoints (mid-hip, body scale
point, mid-shoulder, upper-body scale point) as offsets in input pixels, and a logit. Scores are
clipped logits through a sigmoid, thresholded at ``min_score``; overlapping survivors are merged by
*weighted* NMS (score-weighted average of every box that overlaps the best one by IoU > 0.3), which
noticeably stabilises the keypoints compared with plain NMS.

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

    @torch.inference_mode()
    def __call__(self, frames: Sequence[FrameLike]) -> list[Detections]:
        if not frames:
            return []
        regions = np.concatenate([letterbox_region(f.image.shape[1], f.image.shape[0]) for f in frames])
        batch = self.warper(frames, range(len(frames)), regions, INPUT_SIZE, border="zero").mul_(2.0).sub_(1.0)
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
            out.append(Detections(b, k, s))
        return out


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression.

    Repeatedly takes the best remaining box, averages it with every remaining box that overlaps it by
    more than ``iou_threshold`` (weights = scores; keypoints averaged alike) and keeps the best score.
    Boxes with negative or NaN extent are dropped first, as MediaPipe does when it decodes them.
    """
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    valid = (width >= 0) & (height >= 0)
    boxes, keypoints, scores = boxes[valid], keypoints[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        best = remaining[0]
        iou = box_iou(boxes[best], boxes[remaining])[0]
        group = remaining[iou > iou_threshold]
        if len(group) == 0:  # a box always overlaps itself unless it is degenerate
            group = remaining[:1]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[best])
        remaining = remaining[iou <= iou_threshold]
        if len(remaining) and remaining[0] == best:
            remaining = remaining[1:]
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0)
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s)
