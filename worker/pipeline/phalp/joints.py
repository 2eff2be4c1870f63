"""PHALP's 45 joints, and how they become the result document's 33 BlazePose keypoints.

4D-Humans' SMPL layer (phalp/utils/smpl_utils.py) returns, per person, 45 joints in this order:

- 0–24: the 25 OpenPose BODY_25 joints (regressed from SMPL's joints and a few of its vertices);
- 25–43: the 19 "J19" joints of SPIN/HMR's extra regressor (SMPL_to_J19.pkl): LSP, MPII and H36M
  landmarks such as the top of the head, the thorax and the jaw;
- 44: a row of zeros that get_3d_parameters appends (PHALP uses its 2D projection as the camera
  centre in its location embedding).

The result document keeps the standard 33 BlazePose keypoints (so the analysis, the exports and the
viewer work unchanged on PHALP results) and adds the 45 joints under each person. ``BLAZEPOSE_FROM``
maps every BlazePose keypoint that has a PHALP counterpart; the other twelve (inner and outer eye
corners, mouth corners, pinky, index and thumb of each hand: SMPL has no such joints) take the
position of a neighbour (``STAND_IN``) with visibility and presence 0, so they are drawn nowhere and
the analysis treats them as missing. The analysis reads only mapped keypoints (shoulders, elbows,
wrists, hips, knees, ankles, heels, feet): docs/phalp.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from worker.pipeline.io.keypoints import KEYPOINT_NAMES

OPENPOSE_25: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
J19: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck_lsp", "head_top_lsp",
    "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m",
)  # fmt: skip
#: The 45 names, as the result document's ``joints_3d`` / ``joints_2d_px`` rows are ordered.
PHALP_JOINT_NAMES: tuple[str, ...] = (
    tuple(f"op_{n}" for n in OPENPOSE_25) + tuple(f"j19_{n}" for n in J19) + ("zero",)
)
JOINTS = len(PHALP_JOINT_NAMES)  # 45
assert JOINTS == 45

_OP = {name: i for i, name in enumerate(OPENPOSE_25)}
#: BlazePose keypoint name → the OpenPose joint (of the 45) it is taken from.
BLAZEPOSE_FROM: Mapping[str, int] = {
    "nose": _OP["nose"], "left_eye": _OP["left_eye"], "right_eye": _OP["right_eye"],
    "left_ear": _OP["left_ear"], "right_ear": _OP["right_ear"],
    "left_shoulder": _OP["left_shoulder"], "right_shoulder": _OP["right_shoulder"],
    "left_elbow": _OP["left_elbow"], "right_elbow": _OP["right_elbow"],
    "left_wrist": _OP["left_wrist"], "right_wrist": _OP["right_wrist"],
    "left_hip": _OP["left_hip"], "right_hip": _OP["right_hip"],
    "left_knee": _OP["left_knee"], "right_knee": _OP["right_knee"],
    "left_ankle": _OP["left_ankle"], "right_ankle": _OP["right_ankle"],
    "left_heel": _OP["left_heel"], "right_heel": _OP["right_heel"],
    "left_foot_index": _OP["left_big_toe"], "right_foot_index": _OP["right_big_toe"],
}  # fmt: skip
#: BlazePose keypoints without a PHALP joint → the mapped keypoint whose position they take (visibility 0).
STAND_IN: Mapping[str, str] = {
    "left_eye_inner": "left_eye", "left_eye_outer": "left_eye", "right_eye_inner": "right_eye",
    "right_eye_outer": "right_eye", "mouth_left": "nose", "mouth_right": "nose",
    "left_pinky": "left_wrist", "left_index": "left_wrist", "left_thumb": "left_wrist",
    "right_pinky": "right_wrist", "right_index": "right_wrist", "right_thumb": "right_wrist",
}  # fmt: skip
assert set(BLAZEPOSE_FROM) | set(STAND_IN) == set(KEYPOINT_NAMES) and not set(BLAZEPOSE_FROM) & set(STAND_IN)

#: For each of the 33 keypoints, the PHALP joint its position comes from, and whether it is a real one.
SOURCE = np.array([BLAZEPOSE_FROM[STAND_IN.get(n, n)] for n in KEYPOINT_NAMES], dtype=np.intp)
MAPPED = np.array([n in BLAZEPOSE_FROM for n in KEYPOINT_NAMES])
#: The hip centre (BlazePose's world origin): the middle of OpenPose's two hips.
HIPS = (_OP["left_hip"], _OP["right_hip"])
#: 4D-Humans' focal length (EXTRA.FOCAL_LENGTH) in pixels of its 256-pixel crop space (render.res).
FOCAL_LENGTH = 5000.0
CROP_RES = 256.0


def joints_to_pixels(joints_2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """PHALP's ``2d_joints`` (90 values: x, y per joint, normalised to the frame padded to a square of
    side S = max(H, W), centred) as pixels of the frame: v·S − ((S−W)//2, (S−H)//2). Shape (45, 2)."""
    side = max(width, height)
    offset = np.array([(side - width) // 2, (side - height) // 2], dtype=np.float64)
    return np.asarray(joints_2d, dtype=np.float64).reshape(JOINTS, 2) * side - offset


def blazepose_points(
    joints_3d: np.ndarray, joints_px: np.ndarray, camera: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 33 BlazePose ``keypoints`` (x_px, y_px, z, visibility, presence) and ``world`` (x, y, z m)
    of one person from its 45 joints.

    ``world`` is the 3D joints (metres, camera axes: x right, y down, z away) moved so that the hip
    centre is the origin, as BlazePose's world landmarks are. ``z`` of ``keypoints`` is the same
    depth relative to the hips in pixels of x's scale at the hips' distance (4D-Humans' camera: focal
    length 5000 in its 256-pixel crop space, scaled to the padded frame), as the pose pipeline's z."""
    j3d = np.asarray(joints_3d, dtype=np.float64).reshape(JOINTS, 3)
    hips = j3d[list(HIPS)].mean(axis=0)
    world = j3d[SOURCE] - hips
    depth = float(camera[2]) + float(hips[2])
    px_per_m = FOCAL_LENGTH * max(width, height) / (CROP_RES * depth) if depth > 0 else 0.0
    keypoints = np.zeros((len(SOURCE), 5), dtype=np.float64)
    keypoints[:, :2] = joints_px[SOURCE]
    keypoints[:, 2] = world[:, 2] * px_per_m
    keypoints[:, 3] = keypoints[:, 4] = MAPPED.astype(np.float64)
    return keypoints, world
