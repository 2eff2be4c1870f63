"""The job ``params`` the phalp backend (``worker.pipeline.phalp.pipeline:create``) accepts, read by the
pipeline and by the web's submit check (worker/pipeline/params.py ``schema_for_job``: a job naming
``"backend": "phalp"`` is checked against this schema).

How PHALP itself runs (detector, thresholds, device) is the operator's, through POSE_PHALP_OVERRIDES,
not a client's: a job can only ask for the mesh.
"""

from __future__ import annotations

from worker.pipeline.params import Param, ParamsSchema

PARAMS = ParamsSchema(
    {
        "mesh": Param(bool, False, doc="add each person's SMPL mesh (vertices and faces) when the worker has "
                                       "POSE_SMPL_MODEL; for single images (/pose/hybrid): large per frame"),
    }
)
