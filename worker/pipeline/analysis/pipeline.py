"""The analysis as a pipeline the worker's timed child runs (``worker.pipeline.analysis.pipeline:create``):
the same child process, protocol, deadlines and kills as the pose pipeline, but nothing is loaded at
start (no torch, no model), so an analysis job costs a child of numpy and scipy.

The worker sends (worker/analysis_job.py) the input's path and, as ``params``, its own request:

- ``analysis``: the analysis params (checked again here against :data:`PARAMS`);
- ``input``: ``tracks`` (a track file the worker wrote from a stored pose job, track_file.py) or
  ``upload`` (an uploaded result@1 JSON or TRC file, keypoint_files.py);
- ``output``: where to write the tracks (track_output.py: a line of facts per track, its series as
  float32 arrays beside), each written as soon as its track is analysed;
- ``source``: the provenance's ``source``.

It returns the document without its tracks (``schema``, ``provenance``, ``angle_names``, and
``track_count``), which the child writes as the job's result file. Progress counts person-frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worker.pipeline.analysis.document import TrackInput, analyze_track, build_document
from worker.pipeline.analysis.keypoint_files import BadKeypoints, read_keypoints
from worker.pipeline.analysis.params import PARAMS
from worker.pipeline.analysis.track_file import TrackFile
from worker.pipeline.analysis.track_output import TrackOutputWriter
from worker.pipeline.contract import BadInput, ProgressFn

INPUTS = ("tracks", "upload")


class AnalysisPipeline:
    """Analyses one input per call; holds nothing between calls."""

    def __call__(self, input_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
        if params.get("input") not in INPUTS or not params.get("output"):
            raise ValueError(f"an analysis request needs input ({' or '.join(INPUTS)}) and output, "
                             f"got {sorted(params)}")
        checked = PARAMS.validate(params.get("analysis"))
        fps: float | None
        tracks: Iterable[TrackInput]
        if params["input"] == "upload":
            try:
                keypoints = read_keypoints(Path(input_path).read_bytes())
            except BadKeypoints as exc:
                raise BadInput(str(exc)) from None
            fps, model, tracks, total = keypoints.fps, keypoints.model, keypoints.tracks, keypoints.person_frames
        else:
            track_file = TrackFile.open(input_path)
            fps = track_file.fps or track_file.fps_from_times()
            model, tracks, total = track_file.model, track_file.iter_tracks(), track_file.person_frames
        if not fps and total:
            raise BadInput("the source has no frame rate (its result names none and its frames' times do not "
                           "tell it)")
        progress(0, total)
        done, count = 0, 0
        with TrackOutputWriter(Path(params["output"])) as output:
            for track in tracks:
                assert fps  # tracks were read only once it was known
                output.write(analyze_track(track, fps, checked), checked["stance"])
                done += int(track.frames.size)
                count += 1
                progress(done, total)
        header = build_document((), params=checked, fps=fps or 0.0, source=params.get("source"), model=model)
        del header["tracks"]
        header["track_count"] = count
        return header


def create() -> AnalysisPipeline:
    """The factory the child loads: nothing to load."""
    return AnalysisPipeline()

