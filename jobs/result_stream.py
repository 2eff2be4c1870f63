"""A succeeded job's result, streamed out of PostgreSQL a page of frames at a time.

The one way results are read: ``GET /v1/jobs/{id}/result``, ``pose-service result`` and
``/pose/hybrid`` all iterate :func:`open_result`. The small part of the document (video, model,
names, skeleton, timings) is ``pose_results.document``; the frames are the attempt's
``pose_frame_rows``, read ``PAGE_FRAMES`` frame indexes per statement (short statements, no
transaction held open), so memory stays at a few pages whatever the video's length.

Formats:

- ``json``: result@1 (DESIGN.md section 5); PostgreSQL writes each person as JSON text
  (``pose_person_text``, each number its shortest exact text of the stored value), so Python only
  joins a frame's people and nothing is parsed or formatted here;
- ``ndjson``: one frame object per line (the frames alone);
- ``csv``: one row per frame × person × keypoint, with a header (``CSV_HEADER``).

A window (``FrameWindow``, ``?frames=A:B``) keeps frames whose index is in [A, B).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jobs.store import JobStore, ResultHead

#: Frame indexes per page: about 0.5 MB of JSON for two people (a page is sent while the next
#: ``READ_AHEAD`` are read, so three are held). CSV pages are a quarter of that (a row per keypoint).
PAGE_FRAMES = 128
CSV_PAGE_FRAMES = PAGE_FRAMES // 4
#: Frame indexes are PostgreSQL integers.
MAX_FRAME = 2**31 - 1
CSV_HEADER = ("frame_index,time_s,track_id,keypoint,name,x_px,y_px,z,visibility,presence,"
              "world_x_m,world_y_m,world_z_m\n")


class FramesDeleted(Exception):
    """The job succeeded, but retention (POSE_RETENTION_DAYS) has deleted its frames; the job and its
    result's small part (``pose_results``: document and per-track summary) remain."""

    def __init__(self, job_id: int, deleted_at: datetime) -> None:
        when = deleted_at.astimezone(UTC)
        super().__init__(f"job {job_id}'s frames were deleted by retention on {when:%Y-%m-%d %H:%M} UTC")
        self.job_id = job_id
        self.deleted_at = deleted_at


class ResultFormat(StrEnum):
    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        return {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv"}[self.value]


@dataclass(frozen=True)
class FrameWindow:
    """Frames whose index is in [first, stop); ``stop`` None: to the end."""

    first: int = 0
    stop: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> FrameWindow:
        """``A:B``, ``A:``, ``:B`` or ``A`` (that frame alone); raises ValueError otherwise."""
        if text is None or text.strip() in ("", ":"):
            return cls()
        first_text, colon, stop_text = text.partition(":")
        try:
            first = int(first_text) if first_text.strip() else 0
            stop = (int(stop_text) if stop_text.strip() else None) if colon else first + 1
        except ValueError:
            raise ValueError(f"frames must look like A:B (frame indexes), got {text!r}") from None
        if first < 0 or (stop is not None and stop < first) or max(first, stop or 0) > MAX_FRAME:
            raise ValueError(f"frames {text!r}: need 0 <= A <= B <= {MAX_FRAME}")
        return cls(first, stop)


def open_result(
    store: JobStore,
    job_id: int,
    *,
    visible_to: int | None = None,
    fmt: ResultFormat = ResultFormat.JSON,
    window: FrameWindow = FrameWindow(),
) -> Iterator[str] | None:
    """The result as pieces of text, or None when the job has no result (not succeeded, missing, or
    not ``visible_to`` the caller); FramesDeleted when retention deleted its frames. The head is read
    here, the frames as the iterator is consumed."""
    head = store.result_head(job_id, visible_to=visible_to)
    if head is None:
        return None
    if head.frames_deleted_at is not None:
        raise FramesDeleted(job_id, head.frames_deleted_at)
    if fmt is ResultFormat.NDJSON:
        return _ndjson(store, job_id, head, window)
    if fmt is ResultFormat.CSV:
        return _csv(store, job_id, head, window)
    return _json(store, job_id, head, window)


def _pages(
    store: JobStore, job_id: int, head: ResultHead, window: FrameWindow, page: int = PAGE_FRAMES
) -> Iterator[tuple[int, int]]:
    bounds = store.frame_bounds(job_id, head.attempt) if head.has_frames else None
    if bounds is None:
        return
    first = max(window.first, bounds[0])
    stop = min(MAX_FRAME if window.stop is None else window.stop, bounds[1] + 1)
    for start in range(first, stop, page):
        yield start, min(stop, start + page)


def _page_rows(
    store: JobStore, job_id: int, head: ResultHead, window: FrameWindow, page: int = PAGE_FRAMES,
    read: Callable[[JobStore, int, int, int, int], list[Any]] = JobStore.result_people,
) -> Iterator[list[Any]]:
    """The rows of each page (``read``: JobStore.result_people or result_rows), the next ``READ_AHEAD``
    pages read (each on a thread of ``_prefetcher()`` and a connection of its own) while this one is
    handed on: PostgreSQL writes the pages' text on as many cores, and Python only joins it. At most
    ``READ_AHEAD`` + 1 pages are held; a reader that stops early leaves the pages being read, which are
    then dropped."""
    pages = _pages(store, job_id, head, window, page)
    ahead: deque[Future[list[Any]]] = deque()

    def read_more() -> None:
        while len(ahead) < READ_AHEAD and (span := next(pages, None)) is not None:
            ahead.append(_prefetcher().submit(read, store, job_id, head.attempt, *span))

    read_more()
    while ahead:
        held = [ahead.popleft().result()]
        read_more()
        yield held.pop()  # the consumer holds the only reference: a page is freed as soon as it is used


#: Pages of one result read at once, ahead of the one being sent.
READ_AHEAD = 2
#: Reads the pages ahead of every result being streamed: a few threads (and connections) for the process.
PREFETCH_THREADS = 4
_prefetch: ThreadPoolExecutor | None = None
_prefetch_lock = threading.Lock()


def _prefetcher() -> ThreadPoolExecutor:
    global _prefetch
    with _prefetch_lock:
        if _prefetch is None:
            _prefetch = ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="pose-result-pages")
        return _prefetch


def _frames(store: JobStore, job_id: int, head: ResultHead, window: FrameWindow, sep: str) -> Iterator[str]:
    """The frames page by page, each page its result@1 frame objects as JSON text joined by ``sep``
    (nothing for a page without frames). Each page's rows and frames are let go before it is handed
    on, so memory holds a page of text and the page read ahead, whatever the video's length."""
    for rows in _page_rows(store, job_id, head, window):
        frames = list(_frame_objects(rows))
        del rows
        text = sep.join(frames)
        del frames
        yield text


def _frame_objects(rows: list[Any]) -> Iterator[str]:
    """Rows of result_people_page (ordered by frame, then track) as frame objects: each person is
    already result@1 JSON text made by PostgreSQL (pose_person_text), so nothing is parsed or
    formatted here."""
    index: int | None = None
    time_s, people = "", list[str]()
    for row in rows:
        if row.frame_index != index:
            if index is not None:
                yield f'{{"index":{index},"time_s":{time_s},"people":[{",".join(people)}]}}'
            index, time_s, people = row.frame_index, row.time_s, []
        if row.person is not None:
            people.append(row.person)
    if index is not None:
        yield f'{{"index":{index},"time_s":{time_s},"people":[{",".join(people)}]}}'


def _json(store: JobStore, job_id: int, head: ResultHead, window: FrameWindow) -> Iterator[str]:
    body = head.document.strip()
    if not head.has_frames:
        yield body
        return
    inner = body[1:-1].strip()
    yield "{" + inner + ("," if inner else "") + '"frames":['
    sep = False
    for frames in _frames(store, job_id, head, window, ","):
        if frames:
            if sep:
                yield ","  # a piece of its own: a page of text is never copied to prepend it
            yield frames
            sep = True
    yield "]}"


def _ndjson(store: JobStore, job_id: int, head: ResultHead, window: FrameWindow) -> Iterator[str]:
    for frames in _frames(store, job_id, head, window, "\n"):
        if frames:
            yield frames
            yield "\n"


def _csv(store: JobStore, job_id: int, head: ResultHead, window: FrameWindow) -> Iterator[str]:
    yield CSV_HEADER
    names = [_csv_field(str(n)) for n in json.loads(head.document).get("keypoint_names") or []]
    for rows in _page_rows(store, job_id, head, window, CSV_PAGE_FRAMES, JobStore.result_rows):
        lines: list[str] = []
        for row in rows:
            if row.track_id is None:
                continue
            prefix = f"{row.frame_index},{row.time_s},{row.track_id},"
            keypoints = row.keypoints.split(",") if row.keypoints else []
            world = row.world.split(",") if row.world else []
            for k in range(len(keypoints) // 5):
                point = world[3 * k:3 * k + 3] or ["", "", ""]
                lines.append(f"{prefix}{k},{names[k] if k < len(names) else ''},"
                             f"{','.join(keypoints[5 * k:5 * k + 5])},{','.join(point)}\n")
        if lines:
            yield "".join(lines)


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
