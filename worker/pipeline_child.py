"""The pipeline child as the worker sees it: spawn it in its own process group, talk to it, kill it.

The worker never imports torch; the child (``python -m worker.pipeline.child``) does. This module is
the handle on that process: its channel, its stderr tail, why it died (``ChildDied``) and how to kill
its whole process group, so threads or helper processes the pipeline started die with it. It holds
no supervision loop: timing one attempt (deadline, cancel, shutdown) is worker/attempt.py, and when a
child is reused or replaced is worker/child_slot.py.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from jobs.states import ErrorKind
from worker.child_protocol import CHILD_FD_ENV, ChildMessage, JobRequest
from worker.parent_death import parent_env

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4000
POLL_S = 0.05


class ChildDied(Exception):
    """The child is gone. ``kind`` is how the attempt it was running fails."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.CRASH) -> None:
        super().__init__(message)
        self.kind = kind


class ChildUnavailable(ChildDied):
    """The child could not load its pipeline and said why (missing weights, a broken install)."""


class PipelineChild:
    """One child process. ``warm`` children serve many jobs; a fresh one serves one and exits."""

    def __init__(self, pipeline: str, *, max_jobs: int, env: dict[str, str], kill_grace_s: float) -> None:
        read_fd, write_fd = os.pipe()
        child_env = {**os.environ, **env, **parent_env(), CHILD_FD_ENV: str(write_fd)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.pipeline.child", "--pipeline", pipeline, "--max-jobs", str(max_jobs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=child_env,
            start_new_session=True,  # its own process group: killpg reaches everything it starts
        )
        os.close(write_fd)
        self.kill_grace_s = kill_grace_s
        self.jobs_served = 0
        self._killed = False  # set once the worker signals the group itself
        self._messages = os.fdopen(read_fd, "rb", buffering=0)
        self._buffer = b""
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True, name="child-stderr")
        self._stderr_thread.start()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._messages, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr_tail.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > STDERR_TAIL_BYTES and len(self._stderr_tail) > 1:
                self._stderr_size -= len(self._stderr_tail.popleft())
            log.debug("child %s: %s", self.proc.pid, line.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        self._stderr_thread.join(timeout=0.5)  # let the last lines of a dead child arrive
        return b"".join(self._stderr_tail).decode(errors="replace")[-STDERR_TAIL_BYTES:]

    def read_message(self, timeout: float) -> ChildMessage | None:
        """The next message, None on timeout; raises ChildDied when the channel closes."""
        while b"\n" not in self._buffer:
            if not self._selector.select(timeout):
                return None
            chunk = self._messages.read(65536)
            if not chunk:
                raise self.died()
            self._buffer += chunk
            timeout = 0
        line, self._buffer = self._buffer.split(b"\n", 1)
        return ChildMessage.decode(line)

    def wait_ready(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if should_stop():
                raise ChildDied("stopped while the pipeline was loading")
            try:
                msg = self.read_message(POLL_S)
            except ChildUnavailable:
                raise
            except ChildDied as exc:  # died before it could say why: its last words are on stderr
                last = self.stderr_tail().strip().splitlines()[-1:]
                raise ChildDied(f"{exc}: {last[0]}" if last else str(exc), exc.kind) from None
            if msg is not None and msg.type == "ready":
                return
            if msg is not None and msg.type == "unavailable":
                raise ChildUnavailable(msg.message or "the pipeline could not load")
        raise TimeoutError(f"pipeline child did not load within {timeout:.0f}s")

    def send(self, request: JobRequest) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self.died() from None

    def died(self) -> ChildDied:
        """Why the child is gone, and how that fails its attempt. A SIGKILL that the worker did not
        send is, in practice, the kernel's OOM killer: resource exhaustion, retried."""
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return ChildDied("pipeline child closed its channel but is still running")
        if code < 0:
            sig = signal.Signals(-code)
            if sig == signal.SIGKILL and not self._killed:
                return ChildDied("pipeline child killed by SIGKILL (the kernel's OOM killer sends this)",
                                 ErrorKind.RESOURCE_EXHAUSTED)
            return ChildDied(f"pipeline child killed by {sig.name}")
        return ChildDied(f"pipeline child exited with status {code}")

    def death_reason(self) -> str:
        return str(self.died())

    def kill(self, grace_s: float | None = None) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
        grace = self.kill_grace_s if grace_s is None else grace_s
        self._killed = True
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("child %s ignored SIGTERM for %.1fs; sending SIGKILL", self.proc.pid, grace)
        _signal_group(self.proc.pid, signal.SIGKILL)  # also reaps grandchildren of an exited child
        self.proc.wait()
        self.close()

    def stop(self) -> None:
        """Ask a healthy child to exit (end of its input), killing it if it does not."""
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.kill_grace_s)
        self.kill()

    def close(self) -> None:
        self._selector.close()
        self._messages.close()
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
