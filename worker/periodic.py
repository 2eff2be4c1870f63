"""The shape of every background duty of a worker: a thread that does one pass every ``period_s``
until the daemon's stop event is set.

The heartbeat and the job rescuer used to copy each other's constructor and loop. Here the loop is
written once, and its clock and its wait are parameters, so a unit test drives the passes itself
(``run()`` with a ``wait`` that advances a fake clock) instead of sleeping through real intervals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: ``wait(seconds)``: block for up to ``seconds``; True means "stop now" (like ``Event.wait``).
Wait = Callable[[float], bool]
#: A monotonic clock in seconds.
Clock = Callable[[], float]


class PeriodicTask(threading.Thread):
    """Calls :meth:`before_first` once, then :meth:`run_once` after every ``period_s`` until stopped.

    Subclasses decide in ``run_once`` which failures are an outage to wait out and which are worth a
    traceback, because they log them differently; anything that still escapes a pass is logged here
    and the next pass runs as usual, because a duty that dies silently (a heartbeat, say) leaves a
    live worker that everyone else takes for dead.
    """

    def __init__(
        self,
        name: str,
        *,
        period_s: float,
        stop: threading.Event,
        clock: Clock | None = None,
        wait: Wait | None = None,
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.period_s = period_s
        self.stop_event = stop
        self.clock: Clock = clock if clock is not None else time.monotonic
        self.wait: Wait = wait if wait is not None else stop.wait

    def before_first(self) -> None:
        """Work done once when the thread starts, before the first wait (nothing by default)."""

    def run_once(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        self._guarded(self.before_first)
        while not self.wait(self.period_s):
            self._guarded(self.run_once)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - see the class docstring
            log.exception("%s: a pass failed; the next one runs as usual", self.name)
