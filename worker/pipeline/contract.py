"""The contract between the worker's child process and any pipeline it runs.

The child process (``worker/pipeline/child.py``) imports a factory named ``module:function``, calls it
once, and then calls the returned pipeline once per job. Keeping this contract tiny is what lets the
worker supervise the real pose pipeline, the minimal decode pipeline and the test pipelines alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: ``progress(frames_done, frames_total_or_None)``; cheap to call, the child throttles what it sends.
ProgressFn = Callable[[int, int | None], None]
#: ``emit_frame(frame)``: one result@1 frame object (``{"index", "time_s", "people"}``), in order.
FrameSink = Callable[[dict[str, Any]], None]


class BadInput(Exception):
    """The input itself is unusable (unreadable, not a video, no frames).

    The worker fails such a job with kind ``bad_input`` and never retries it: another attempt would
    read the same bytes and fail the same way.
    """


@dataclass(frozen=True)
class VideoSpan:
    """How long a video is, as a splittable pipeline's ``probe`` finds it without processing it: the worker
    splits a job whose ``frames / fps`` exceeds its segment length into segment jobs."""

    frames: int
    fps: float


class Pipeline(Protocol):
    """Process one video and return the result document (DESIGN.md section 5).

    A pipeline whose ``emits_frames`` attribute is true is called with a keyword ``emit_frame``
    (a FrameSink) and hands each frame to it as soon as it is done, returning the document without
    ``frames``: then no process holds a long video's frames. Any other pipeline returns the whole
    document, and the child passes its frames on the same way.

    A pipeline that can process a stretch of a video on its own is *splittable*: it has a method
    ``probe(video_path, params) -> VideoSpan`` (cheap: it reads the container's header, raising BadInput
    as the call would), and its call takes a keyword ``frame_range=(first, stop)``: only frames
    ``first <= index < stop`` are processed, with their absolute indices and times, and progress counts
    within the range (``done``, ``stop - first``). A long video's job then becomes segment jobs that
    several workers run at once (DESIGN.md section 9); a pipeline without ``probe`` always gets whole
    videos.
    """

    def __call__(self, video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]: ...
