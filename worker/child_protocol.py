"""The messages between a worker and its pipeline child, as JSON lines.

worker → child, on the child's stdin: one ``JobRequest`` per line.
child → worker, on a dedicated pipe (fd given in ``POSE_CHILD_FD``): ``ready`` once the pipeline is
loaded (or ``unavailable`` with the reason, then exit ``UNAVAILABLE_EXIT``, when it cannot load: missing
weights, say), then per job any number of ``progress`` and ``frames`` lines and exactly one ``done``,
``split`` or ``error``.

Frames do not travel on the channel: the child appends them to the job's spool file
(``JobRequest.frames_path``) as they are produced, a block of at most ``FRAMES_PER_MESSAGE`` frames
(or what ``FRAMES_MAX_DELAY_S`` gathered) at a time, already as the rows COPY takes
(worker/frame_spool.py), and after each block sends ``frames`` with ``end``, the spool's size in bytes
once the block was flushed. The worker stores the blocks up to ``end`` while the job runs
(worker/frame_writer.py); the result file (``result_path``) then holds the document without its
frames. So neither side holds more than a few batches of frames, whatever the video's length, and a
database that is slow to take them costs disk, never the supervision loop's time.
A dedicated pipe keeps the channel clean of whatever libraries print to stdout; stderr stays free
for the child's logs, whose tail the worker keeps for crash reports.

This module is imported on both sides, so it imports nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

CHILD_FD_ENV = "POSE_CHILD_FD"
#: The child's exit status after an ``unavailable`` message.
UNAVAILABLE_EXIT = 3
#: The error kinds a child reports. They are values of jobs.states.ErrorKind (a test checks it), written
#: here because the child imports nothing from jobs/.
BAD_INPUT = "bad_input"
PIPELINE_ERROR = "pipeline_error"
RESOURCE_EXHAUSTED = "resource_exhausted"
CHILD_ERROR_KINDS = frozenset({BAD_INPUT, PIPELINE_ERROR, RESOURCE_EXHAUSTED})


#: Frames per ``frames`` message (one COPY batch on the worker's side) and the longest a produced frame
#: waits for one.
FRAMES_PER_MESSAGE = 64
FRAMES_MAX_DELAY_S = 0.5


@dataclass(frozen=True)
class JobRequest:
    job_id: int
    video_path: str
    params: dict[str, Any]
    result_path: str
    frames_path: str = ""
    #: a segment job: only frames [first, stop) of the video (stop None: to its end)
    frame_range: tuple[int, int | None] | None = None
    #: ask a splittable pipeline first whether the video is longer than this many seconds; if so, the
    #: child answers ``split`` (its frame count and fps) without processing, and the worker splits the job
    split_after_s: float | None = None
    #: the backend that runs the job (worker/pipeline/params.py BACKENDS), resolved by the worker from the
    #: job's params.backend or its POSE_BACKEND; None: the child's default (worker/pipeline/backends.py)
    backend: str | None = None

    @property
    def spool_path(self) -> str:
        """Where the child writes the job's frames (blocks of rows: worker/frame_spool.py)."""
        return self.frames_path or self.result_path + ".frames"

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes | str) -> JobRequest:
        data = json.loads(line)
        if data.get("frame_range") is not None:
            first, stop = data["frame_range"]
            data["frame_range"] = (first, stop)
        return cls(**data)


@dataclass(frozen=True)
class ChildMessage:
    """type: ready | unavailable | progress | frames | split | done | error. ``kind`` is set on errors
    (bad_input, pipeline_error, resource_exhausted); ``end`` on ``frames``: the spool's complete bytes,
    ``done`` then counting the frames written so far; ``split`` (instead of ``done``, when the request
    had ``split_after_s`` and the video is longer) carries the video's frame count in ``total`` and
    its ``fps``."""

    type: str
    job_id: int | None = None
    done: int = 0
    total: int | None = None
    kind: str | None = None
    message: str | None = None
    end: int | None = None
    fps: float | None = None

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes | str) -> ChildMessage:
        return cls(**json.loads(line))
