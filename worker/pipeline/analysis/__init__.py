"""Sport analysis of pose keypoints (issue 13's core): per track, cleaned series (gaps, outliers,
low-pass), joint and segment angles in 3D and 2D, angular velocities, the body's yaw and its spins.

numpy and scipy only: no torch, no model, nothing of jobs/ or web/. :func:`analyze` turns a result@1
document into an analysis@1 one; the pieces (series.py, angles.py, rotation.py, document.py) are pure
functions over arrays for callers that have them already. Conventions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.pipeline.analysis.document import SCHEMA, VERSION, analyze_track, build_document, fps_of, tracks_from_result
from worker.pipeline.analysis.params import PARAMS

__all__ = ["PARAMS", "SCHEMA", "VERSION", "analyze"]


def analyze(result_document: Mapping[str, Any], params: Mapping[str, Any] | None = None, *,
            source: Any = None) -> dict[str, Any]:
    """The analysis@1 document of a result@1 document (with its ``frames``). ``params`` are checked
    against :data:`PARAMS` (InvalidParams for a wrong one); ``source`` goes into the provenance."""
    checked = PARAMS.validate(params)
    fps = fps_of(result_document)
    tracks = [analyze_track(track, fps, checked) for track in tracks_from_result(result_document)]
    return build_document(tracks, params=checked, fps=fps, source=source, model=result_document.get("model"))
