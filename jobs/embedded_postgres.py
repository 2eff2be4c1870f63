"""The private PostgreSQL that pose-service uses when no POSE_DATABASE_URL is set.

pgserver ships PostgreSQL binaries on PyPI, so a fresh machine needs nothing installed by hand. The
data directory lives under POSE_HOME; the first command to need it starts the server and every
later command (web, workers, CLI, psql via `pose-service db url`) reuses it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_dsn(home: Path) -> str:
    """Start (or find) the embedded server for ``home`` and return its libpq URI."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless hosts
        import pgserver

    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # cleanup_mode=None: the server outlives this process so the next command reuses it.
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    uri = server.get_uri()
    log.debug("embedded PostgreSQL at %s (data in %s)", uri, pgdata)
    return uri


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    pid: int | None  # the postmaster's, while it runs
    port: int | None
    socket_dir: str | None

    @property
    def running(self) -> bool:
        return self.pid is not None


def embedded_status(home: Path) -> EmbeddedStatus:
    """Whether the embedded server of ``home`` runs, read from its ``postmaster.pid`` (never starts it)."""
    pgdata = home / "pgdata"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return EmbeddedStatus(pgdata, None, None, None)
    if not _alive(pid):  # a stale file left by a crash
        return EmbeddedStatus(pgdata, None, None, None)
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    socket_dir = lines[4].strip() if len(lines) > 4 and lines[4].strip() else None
    return EmbeddedStatus(pgdata, pid, port, socket_dir)


def stop_embedded(home: Path, timeout_s: float = 30.0) -> bool:
    """Stop the embedded server of ``home`` (PostgreSQL's fast shutdown: SIGINT to the postmaster,
    which rolls back open transactions and checkpoints). False if it was not running."""
    status = embedded_status(home)
    if status.pid is None:
        return False
    os.kill(status.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while _alive(status.pid):
        if time.monotonic() > deadline:
            log.warning("embedded PostgreSQL %s ignored the fast shutdown; stopping it immediately", status.pid)
            os.kill(status.pid, signal.SIGQUIT)
            deadline = time.monotonic() + timeout_s
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not a server
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
