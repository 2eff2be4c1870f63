"""The messages between a worker and its pipeline child, as JSON lines.

worker → child, on the child's stdin: one ``JobRequest`` per line.
child → worker, on a dedicated pipe (fd given in ``POSE_CHILD_FD``): ``ready`` once the pipeline is
loaded (or ``unavailable`` with the reason, then exit ``UNAVAILABLE_EXIT``, when it cannot load: missing
weights, say), then per job any number of ``progress`` and ``frames`` lines and exactly one ``done`` or
``error``.

Frames do not travel on the channel: the child appends them, one result@1 frame object per JSON line,
to the job's spool file (``JobRequest.frames_path``) as they are produced, and every
``FRAMES_PER_MESSAGE`` frames (or ``FRAMES_MAX_DELAY_S``) sends ``frames`` with ``end``, the spool's
size in bytes once those lines were flushed. The worker stores the lines up to ``end`` while the job
runs (worker/frame_writer.py); the result file (``result_path``) then holds the document without
its frames. So neither side holds more than a batch of frames, whatever the video's length, and a
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

    @property
    def spool_path(self) -> str:
        """Where the child writes the job's frames (JSON lines)."""
        return self.frames_path or self.result_path + ".frames"

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes | str) -> JobRequest:
        return cls(**json.loads(line))


@dataclass(frozen=True)
class ChildMessage:
    """type: ready | unavailable | progress | frames | done | error. ``kind`` is set on errors (bad_input,
    pipeline_error, resource_exhausted); ``end`` on ``frames``: the spool's complete bytes, ``done``
    then counting the frames written so far."""

    type: str
    job_id: int | None = None
    done: int = 0
    total: int | None = None
    kind: str | None = None
    message: str | None = None
    end: int | None = None

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes | str) -> ChildMessage:
        return cls(**json.loads(line))
