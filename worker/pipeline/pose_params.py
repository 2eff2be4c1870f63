"""The job ``params`` the pose pipeline (``worker.pipeline.pose:create``) accepts: the one declaration
that both the pipeline (worker/pipeline/pose.py) and the web's submit check read.

``overlay`` is deliberately absent: it writes a file on the worker's host, so only the standalone
``pose-service run --overlay`` may ask for one (pose.RunOptions handles it outside this schema).
"""

from __future__ import annotations

from worker.pipeline.params import Param, ParamsSchema

DEFAULT_MAX_PEOPLE = 4
MAX_MAX_PEOPLE = 32

PARAMS = ParamsSchema(
    {
        "max_people": Param(int, DEFAULT_MAX_PEOPLE, lo=1, hi=MAX_MAX_PEOPLE, doc="people tracked per frame"),
        "device": Param(str, "auto", choices=("auto", "cpu", "cuda"), doc="where inference runs"),
        "smoothing": Param(bool, True, doc="one-euro smoothing of landmarks (video mode)"),
        "mode": Param(str, "video", choices=("video", "static"), doc="tracking between frames, or none"),
    }
)
