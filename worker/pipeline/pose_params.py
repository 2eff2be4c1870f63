"""The job ``params`` the pose pipeline (``worker.pipeline.pose:create``) accepts: the one declaration
that both the pipeline (worker/pipeline/pose.py) and the web's submit check read.

``overlay`` is deliberately absent: it writes a file on the worker's host, so only the standalone
``pose-service run --overlay`` may ask for one (pose.RunOptions handles it outside this schema).
"""

from __future__ import annotations

from worker.pipeline.params import Param, ParamsSchema

DEFAULT_MAX_PEOPLE = 4
MAX_MAX_PEOPLE = 32
#: Finer detection scales besides the whole frame (blazepose/tiling.py); None: from the frame size.
MAX_DETECT_SCALES = 3
SUBJECTS = ("all", "largest", "most_active", "center")

PARAMS = ParamsSchema(
    {
        "max_people": Param(int, DEFAULT_MAX_PEOPLE, lo=1, hi=MAX_MAX_PEOPLE, doc="people tracked per frame"),
        "device": Param(str, "auto", choices=("auto", "cpu", "cuda"), doc="where inference runs"),
        "smoothing": Param(bool, True, doc="one-euro smoothing of landmarks (video mode)"),
        "mode": Param(str, "video", choices=("video", "static"), doc="tracking between frames, or none"),
        "detect_scales": Param(int, None, lo=0, hi=MAX_DETECT_SCALES,
                               doc="finer scales of overlapping tiles searched for small people besides the whole "
                                   "frame (0: the whole frame only; left out: chosen from the frame size)"),
        "search_every": Param(int, None, lo=1, hi=3600,
                              doc="video mode: frames over which one sweep of the tiles is spread while people "
                                  "may be missing (left out: from the number of tiles and the device)"),
        "track_grace": Param(int, 30, lo=0, hi=600,
                             doc="video mode: frames a track stays alive while its person is not seen "
                                 "(0: it ends at once and nobody is re-identified)"),
        "subject": Param(str, "all", choices=SUBJECTS,
                         doc="whose poses the result keeps: everyone, or the one athlete that is the largest, "
                             "the most active, or the closest to the centre (chosen after a warm-up)"),
    }
)
