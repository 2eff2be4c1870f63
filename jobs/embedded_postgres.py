"""The private PostgreSQL that pose-service uses when no POSE_DATABASE_URL is set.

pgserver ships PostgreSQL binaries on PyPI, so a fresh machine needs nothing installed by hand. The
data directory lives under POSE_HOME; the first command to need it starts the server and every
later command (web, workers, CLI, psql via `pose-service db url`) reuses it.
"""

from __future__ import annotations

import logging
import warnings
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
        server = pgserver.get_server(pgdata, cleanup_mode=None)
    uri = server.get_uri()
    log.debug("embedded PostgreSQL at %s (data in %s)", uri, pgdata)
    return uri
