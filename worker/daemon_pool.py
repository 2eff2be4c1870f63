"""Keep a set of worker daemons alive: `serve` and `worker --gpus all` start them through this.

A worker daemon should outlive anything, but a bug, an exhausted host or an operator's kill -9 can
still end one; a launcher that never restarts it leaves jobs queued behind a service that looks up.
This restarts each daemon that exits while the pool runs, after a backoff that doubles with each
quick death (so a daemon that cannot start does not spin) and resets once it has run for a while,
and logs why it died. Stopping the pool sends SIGTERM to every daemon (they finish or release their
job within their own grace) and SIGKILL to any still running after ``stop_timeout_s``.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
#: A daemon that ran this long before dying starts the backoff from the beginning again.
STABLE_AFTER_S = 60.0
POLL_S = 0.2


def exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Slot:
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


class DaemonPool:
    def __init__(self, commands: Sequence[list[str]], *, env: dict[str, str], stop_timeout_s: float) -> None:
        self.env = env
        self.stop_timeout_s = stop_timeout_s
        self._slots = [_Slot(list(cmd)) for cmd in commands]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="daemon-pool", daemon=True)

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None]

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self._slots)

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: _Slot) -> None:
        slot.proc = subprocess.Popen(slot.command, env=self.env)
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def check_once(self) -> None:
        """Notice dead daemons and restart those whose backoff has passed."""
        now = time.monotonic()
        for i, slot in enumerate(self._slots):
            if self._stopping.is_set():
                return
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._spawn(slot)
                    slot.restarts += 1
                    log.info("worker daemon %d restarted: pid %s", i, slot.proc.pid if slot.proc else None)
                continue
            if slot.proc is None or (code := slot.proc.poll()) is None:
                continue
            ran_s = now - slot.started_at
            slot.failures = 1 if ran_s >= STABLE_AFTER_S else slot.failures + 1
            delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (slot.failures - 1))
            slot.restart_at = now + delay
            log.error("worker daemon %d (pid %s) %s after %.1fs; restarting it in %.1fs",
                      i, slot.proc.pid, exit_description(code), ran_s, delay)

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the watcher itself must not die (e.g. fork failing)
                log.exception("could not check or restart a worker daemon")

    def stop(self) -> int:
        """SIGTERM every daemon, wait, SIGKILL stragglers; returns the worst exit status."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        running = [s.proc for s in self._slots if s.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        worst = 0
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in running:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker daemon %s did not stop within %.0fs; killing it", proc.pid, self.stop_timeout_s)
                proc.kill()
                code = proc.wait()
            worst = max(worst, abs(code))
        return worst

    def stop_soon(self) -> None:
        """Stop restarting daemons and let ``wait()`` return (safe in a signal handler)."""
        self._stopping.set()

    def wait(self) -> None:
        """Block until ``stop_soon()`` or ``stop()`` is called."""
        while not self._stopping.wait(1.0):
            pass
