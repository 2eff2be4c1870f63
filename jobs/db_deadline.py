"""A client-side deadline for one database call: past it, the connection's socket is shut down.

Why: a connection whose peer silently vanished (a frozen proxy, a NAT that dropped its state, a host
that lost power) never answers and never errors. TCP keepalives and ``tcp_user_timeout`` catch a
dead peer host, but not a middlebox that still acknowledges packets and forwards nothing; libpq has
no per-call timeout of its own, and a server-side ``statement_timeout`` cannot help when the server
never sees the statement. So every call registers its socket here with a deadline; one daemon thread
shuts the socket down when the deadline passes, which wakes the blocked call with a connection error
(the caller then treats it like any dropped connection). ``shutdown`` is used, not ``close``: the
file descriptor stays libpq's, so it can never be reused under it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int]] = []  # (expiry, token)
        self._armed: dict[int, tuple[int, float]] = {}  # token -> (fd, seconds)
        self._expired: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, seconds: float) -> int:
        with self._lock:
            token = next(self._tokens)
            self._armed[token] = (fd, seconds)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-deadline", daemon=True)
                self._thread.start()
            self._wake.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Forget ``token``; True if its deadline had already fired."""
        with self._lock:
            self._armed.pop(token, None)
            if token in self._expired:
                self._expired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][1] not in self._armed):
                    _, token = heapq.heappop(self._heap)
                    armed = self._armed.pop(token, None)
                    if armed is not None:  # still in its call: cut the connection under it
                        self._expired.add(token)
                        _shutdown(*armed)
                timeout = self._heap[0][0] - now if self._heap else None
                self._wake.wait(timeout)


def _shutdown(fd: int, seconds: float) -> None:
    log.warning("a database call got no reply within %.0fs; closing its connection", seconds)
    with contextlib.suppress(OSError):
        dup = socket.socket(fileno=socket.dup(fd))  # shutdown acts on the socket, not on this fd
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


_watchdog = _Watchdog()


class Cutoff:
    """Whether the guarded call was cut off by its deadline (read it after the ``with`` block)."""

    fired: bool = False


@contextlib.contextmanager
def deadline(fd: int, seconds: float | None) -> Iterator[Cutoff]:
    """Guard a blocking call on socket ``fd``: after ``seconds`` the socket is shut down, so the
    call fails with the driver's own connection error; ``Cutoff.fired`` tells the two apart."""
    cutoff = Cutoff()
    if seconds is None or fd < 0:
        yield cutoff
        return
    token = _watchdog.arm(fd, seconds)
    try:
        yield cutoff
    finally:
        cutoff.fired = _watchdog.disarm(token)
