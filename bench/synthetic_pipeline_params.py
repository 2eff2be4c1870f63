"""The job ``params`` of the synthetic pipeline (``bench.synthetic_pipeline:create``), found by the web
through worker.pipeline.params.schema_for like the pose pipeline's, so a bad job is refused at submit.

Standard library only (the web imports it).
"""

from __future__ import annotations

from worker.pipeline.params import Param, ParamsSchema

PARAMS = ParamsSchema(
    {
        "frames": Param(int, 300, lo=0, hi=10_000_000, doc="frames of the made-up video"),
        "people": Param(int, 1, lo=0, hi=32, doc="people in every frame, each one track"),
        "fps": Param(int, 30, lo=1, hi=1000, doc="frame rate of the made-up video"),
    }
)
