"""The one progress display of the command line: `submit --wait`, `demo` and `run` all follow frames,
and `submit --server` shows its upload's bytes first (:class:`UploadProgress`, the same two forms).

``run`` feeds :class:`FrameProgress` from the pipeline's progress callback; ``submit --wait`` and
``demo`` poll a job through :func:`follow_job`, from the database or over REST alike.

On a terminal it is a live rich bar on stderr (description, bar, frames done of total, percent,
frames/s, and a free-form detail such as the attempt); a total that is not known yet (the decoder
has not said) shows as a pulsing bar rather than a made-up percentage. Anywhere else (a pipe, a log
file, CI) a live bar would be carriage-return noise, so it prints one plain line each time the
description changes (a job going from queued to running to succeeded) and a last one at the end.
Writing to stderr keeps stdout for what a script may want to capture (job ids, paths, summaries).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from jobs.states import FINAL_STATES


class _FramesColumn(ProgressColumn):
    """``done/total frames``, with ``?`` for a total not known yet."""

    def render(self, task: Task) -> Text:
        total = f"{task.total:.0f}" if task.total is not None else "?"
        return Text(f"{task.completed:.0f}/{total} frames")


class _RateColumn(ProgressColumn):
    """Frames per second since the display started (the work's rate, not the set-up's)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:.1f} frames/s")


class FrameProgress:
    """A context manager; :meth:`update` as often as there is news, it redraws at most 10 times a second.

    ``enabled=False`` (``run --quiet``) shows nothing. ``live`` forces the terminal (True) or plain
    (False) form; by default it follows whether ``stream`` is a terminal.
    """

    def __init__(
        self, description: str = "", *, stream: IO[str] | None = None, enabled: bool = True, live: bool | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.live = self.stream.isatty() if live is None else live
        self.description = description
        self.done = 0
        self.total: int | None = None
        self.detail = ""
        self._printed: str | None = None  # the description of the last plain line
        self._last_line: str | None = None  # and that line
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> FrameProgress:
        if self.enabled and self.live:
            console = Console(file=self.stream, force_terminal=True)
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _FramesColumn(),
                TaskProgressColumn(),
                _RateColumn(),
                TextColumn("{task.fields[detail]}"),
                console=console,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=None, detail="")
        return self

    def update(self, done: int, total: int | None, *, description: str | None = None, detail: str = "") -> None:
        self.done, self.total, self.detail = done, total, detail
        if description is not None:
            self.description = description
        if not self.enabled:
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total, description=self.description,
                                  detail=detail)
        elif not self.live and self.description != self._printed:
            self._print_line()

    def line(self) -> str:
        """The plain form: what a non-terminal sees."""
        percent = f"{100.0 * self.done / self.total:5.1f}%" if self.total else "   - %"
        frames = f"{self.done}/{self.total if self.total is not None else '?'} frames"
        return " ".join(part for part in (self.description, frames, percent, self.detail) if part)

    def _print_line(self) -> None:
        self._last_line = self.line()
        print(self._last_line, file=self.stream, flush=True)
        self._printed = self.description

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()  # leaves the last frame of the bar on screen
            self._progress = None
        elif self.enabled and not self.live and self._last_line is not None and self.line() != self._last_line:
            self._print_line()  # where it ended, even when the description never changed (`run`)


class UploadProgress:
    """Bytes sent of an upload: a live rich bar (sent/total, speed) on a terminal; elsewhere one plain
    line when it starts and one when it ends. :meth:`reader` wraps the file so that what the HTTP
    client reads is what the bar counts."""

    def __init__(
        self, description: str, total: int, *, stream: IO[str] | None = None, live: bool | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.description, self.total, self.sent = description, total, 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> UploadProgress:
        if self.live:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TaskProgressColumn(), TransferSpeedColumn(),
                                      console=Console(file=self.stream, force_terminal=True))
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        else:
            print(f"{self.description} {self.total} bytes", file=self.stream, flush=True)
        return self

    def advance(self, n: int) -> None:
        self.sent += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.sent)

    def reader(self, fh: IO[bytes]) -> IO[bytes]:
        """``fh`` as the HTTP client should read it (duck-typed: read, seek, tell, fileno)."""
        return cast(IO[bytes], _CountingReader(fh, self))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        else:
            print(f"{self.description} sent {self.sent}/{self.total} bytes", file=self.stream, flush=True)


class _CountingReader:
    """A binary file whose reads advance an UploadProgress; seek/tell/fileno pass through, so an HTTP
    client still finds the length (and restarts at 0 when it seeks)."""

    def __init__(self, fh: IO[bytes], progress: UploadProgress) -> None:
        self._fh, self._progress = fh, progress

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._progress.advance(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._fh.seek(offset, whence)
        if position == 0:
            self._progress.sent = 0
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


def job_detail(job: dict[str, Any]) -> str:
    """The attempt and the job's own clock (queued: waiting time; then run time), from the server."""
    attempts, timings = job["attempts"], job["timings"]
    elapsed = timings["wait_s"] if job["state"] == "queued" else timings["run_s"]
    clock = f" {elapsed:.1f} s" if elapsed is not None else ""
    return f"attempt {attempts['attempt']}/{attempts['max_attempts']}{clock}"


def follow_job(
    fetch: Callable[[], dict[str, Any]],
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    progress: FrameProgress | None = None,
) -> dict[str, Any]:
    """Poll ``fetch()`` (a job as the REST API represents it) until the job is final or ``timeout_s``
    has passed, showing its progress; returns the last job seen."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with progress if progress is not None else FrameProgress() as shown:
        while True:
            job = fetch()
            frames = job["progress"]
            shown.update(frames["frames_done"], frames["frames_total"], description=f"job {job['id']} {job['state']}",
                         detail=job_detail(job))
            if job["state"] in FINAL_STATES or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(poll_s)
