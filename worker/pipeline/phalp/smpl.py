"""SMPL mesh vertices from PHALP's SMPL parameters, when the operator provides the SMPL model.

The SMPL model is licensed (smpl.is.tue.mpg.de); nothing of it ships with or is downloaded by the
service. POSE_SMPL_MODEL names the operator's copy in one of two forms:

- ``.npz`` with the arrays ``v_template`` (V, 3), ``shapedirs`` (V, 3, ≥10), ``posedirs`` (V, 3, 207),
  ``J_regressor`` (24, V), ``weights`` (V, 24), ``kintree_table`` (2, 24) and ``f`` (F, 3): the layout
  smplx reads (e.g. ``SMPL_NEUTRAL.npz``), or any SMPL ``.pkl`` re-saved with ``numpy.savez``;
- ``.pkl`` holding those arrays as plain numpy (or scipy sparse) objects. The original SMPL pickles
  hold chumpy objects, which need the unmaintained chumpy package to unpickle: convert those to .npz
  once, where chumpy is installed (docs/phalp.md).

The vertices are SMPL's linear blend skinning of PHALP's rotation matrices and shape, in the same
frame as ``joints_3d`` (metres, camera axes, before the camera translation). numpy only.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
JOINTS = 24


class SmplModelError(RuntimeError):
    """POSE_SMPL_MODEL is not a usable SMPL model; the message says why."""


@dataclass(frozen=True)
class SmplModel:
    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, B)
    posedirs: np.ndarray  # (V, 3, 207)
    j_regressor: np.ndarray  # (24, V)
    weights: np.ndarray  # (V, 24)
    parents: np.ndarray  # (24,), -1 for the root
    faces: np.ndarray  # (F, 3)

    @classmethod
    def load(cls, path: Path) -> SmplModel:
        """The model in ``path`` (.npz or .pkl); SmplModelError for anything else."""
        if not path.is_file():
            raise SmplModelError(f"POSE_SMPL_MODEL={path} is not a file")
        raw: Any
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as npz:
                    raw = {k: npz[k] for k in npz.files}
            elif path.suffix == ".pkl":
                with open(path, "rb") as fh:
                    raw = pickle.load(fh, encoding="latin1")  # the operator's own model file
            else:
                raise SmplModelError(f"POSE_SMPL_MODEL={path}: expected a .npz or .pkl SMPL model")
        except ModuleNotFoundError as exc:
            raise SmplModelError(f"POSE_SMPL_MODEL={path} needs the {exc.name} package to unpickle (the original "
                                 "SMPL pickles hold chumpy objects): convert it to .npz (docs/phalp.md)") from None
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise SmplModelError(f"POSE_SMPL_MODEL={path} cannot be read: {exc}") from None
        if not isinstance(raw, dict) or any(k not in raw for k in KEYS):
            have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise SmplModelError(f"POSE_SMPL_MODEL={path} is not an SMPL model: it needs {', '.join(KEYS)}; has {have}")
        arrays = {k: _dense(raw[k]) for k in KEYS}
        model = cls(
            v_template=arrays["v_template"].astype(np.float64),
            shapedirs=arrays["shapedirs"].astype(np.float64),
            posedirs=arrays["posedirs"].astype(np.float64),
            j_regressor=arrays["J_regressor"].astype(np.float64),
            weights=arrays["weights"].astype(np.float64),
            parents=arrays["kintree_table"][0].astype(np.int64),
            faces=arrays["f"].astype(np.int64),
        )
        model.check(path)
        return model

    def check(self, path: Path) -> None:
        vertices = self.v_template.shape[0]
        expected = {"v_template": (vertices, 3), "posedirs": (vertices, 3, (JOINTS - 1) * 9),
                    "J_regressor": (JOINTS, vertices), "weights": (vertices, JOINTS)}
        actual = {"v_template": self.v_template.shape, "posedirs": self.posedirs.shape,
                  "J_regressor": self.j_regressor.shape, "weights": self.weights.shape}
        wrong = [f"{k} {actual[k]} (expected {shape})" for k, shape in expected.items() if actual[k] != shape]
        if self.shapedirs.ndim != 3 or self.shapedirs.shape[:2] != (vertices, 3) or self.shapedirs.shape[2] < 10:
            wrong.append(f"shapedirs {self.shapedirs.shape} (expected ({vertices}, 3, >=10))")
        if self.parents.shape != (JOINTS,) or self.faces.ndim != 2 or self.faces.shape[1] != 3:
            wrong.append(f"kintree_table/f of shapes {self.parents.shape}/{self.faces.shape}")
        if wrong:
            raise SmplModelError(f"POSE_SMPL_MODEL={path} has arrays of the wrong shape: {'; '.join(wrong)}")

    def vertices(self, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """(V, 3) vertices for PHALP's ``smpl`` (rotation matrices (1, 3, 3) and (23, 3, 3), betas (10,))."""
        rotations = np.concatenate([np.reshape(global_orient, (1, 3, 3)), np.reshape(body_pose, (23, 3, 3))])
        shape = np.asarray(betas, dtype=np.float64).reshape(-1)
        v_shaped = self.v_template + self.shapedirs[:, :, : shape.size] @ shape
        joints = self.j_regressor @ v_shaped  # (24, 3), the rest pose's joints of this body shape
        pose_feature = (rotations[1:] - np.eye(3)).reshape(-1)
        v_posed = v_shaped + self.posedirs @ pose_feature
        world = np.zeros((JOINTS, 4, 4))
        for i in range(JOINTS):
            local = np.eye(4)
            local[:3, :3] = rotations[i]
            parent = self.parents[i]
            local[:3, 3] = joints[i] - (joints[parent] if i > 0 else 0.0)
            world[i] = local if i == 0 else world[parent] @ local
        skinning = world.copy()  # each joint's transform, relative to its rest position
        skinning[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)
        blended = np.einsum("vj,jab->vab", self.weights, skinning)  # (V, 4, 4)
        vertices: np.ndarray = np.einsum("vab,vb->va", blended[:, :3, :3], v_posed) + blended[:, :3, 3]
        return vertices


def _dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy sparse (the original J_regressor)
        value = value.toarray()
    dense: np.ndarray = np.asarray(value)
    return dense
