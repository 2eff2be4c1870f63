"""A PostgreSQL server of our own, on a free loopback port in a temporary directory, to stop at will.

The fault scenarios (and tests) restart, crash and black out the database under running workers. They
must never do that to a server anyone else uses — least of all the machine's own PostgreSQL on port
5432 — so this module only ever runs ``pg_ctl`` on a data directory it created itself with ``initdb``,
and the port is whatever the kernel hands out for 127.0.0.1:0 (never 5432).

The binaries are pgserver's (a dependency of the project, so they exist wherever pose-service is
installed); ``bin_dir=`` or ``CHAOS_PG_BIN`` may point at another installation such as Debian's
``/usr/lib/postgresql/16/bin``. PostgreSQL refuses to run as root, so as root the server runs as the
unprivileged ``pgserver`` user that pgserver itself uses.

Cleanup is not optional: the server is stopped and its directory removed on ``close()``, on leaving
the ``with`` block (exceptions and KeyboardInterrupt included) and at interpreter exit. ``pg_ctl``
starts the postmaster in its own session, so a Ctrl-C in the terminal would not stop it by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import TracebackType

import psycopg

#: the machine's own PostgreSQL; never stopped, restarted or even chosen as our port
RESERVED_PORT = 5432


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pgserver_bin_dir() -> Path:
    """The PostgreSQL binaries shipped in the pgserver wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class PrivatePostgres:
    """A throwaway PostgreSQL on 127.0.0.1:<free port>, migrated to the pose-service schema.

    ``with PrivatePostgres() as pg: ... pg.url ... pg.restart("immediate") ... pg.outage(5)``
    """

    def __init__(self, *, migrate: bool = True, bin_dir: str | Path | None = None,
                 parent_dir: str | Path | None = None, max_connections: int = 200) -> None:
        self.migrate = migrate
        self.bin_dir = Path(bin_dir or os.environ.get("CHAOS_PG_BIN") or pgserver_bin_dir())
        self.parent_dir = parent_dir
        self.max_connections = max_connections
        self.port = 0
        self.dir: Path | None = None
        self._user: str | None = None
        self._lock = threading.Lock()  # stop/start from a background outage thread and the main thread

    # ---------------------------------------------------------------- paths and URLs
    @property
    def pgdata(self) -> Path:
        assert self.dir is not None, "PrivatePostgres is not open"
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "PrivatePostgres is not open"
        return self.dir / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL for one database of this server (TCP on loopback, trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.dsn()

    def connect(self, **kwargs: object) -> psycopg.Connection:
        """An autocommit psycopg connection with a short connect timeout (the server may be down)."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5, **kwargs)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- life cycle
    def open(self) -> PrivatePostgres:
        """initdb, start, migrate. Idempotent; cleans up after itself if any step fails."""
        if self.dir is not None:
            return self
        atexit.register(self.close)
        try:
            self._create()
            self.start()
            if self.migrate:
                from jobs.database import upgrade

                upgrade(self.url)
        except BaseException:
            self.close()
            raise
        return self

    def _create(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-pg-", dir=self.parent_dir))
        self.pgdata.mkdir()
        if os.geteuid() == 0:
            self._run_as_unprivileged_user()
        self.port = free_port()
        assert self.port != RESERVED_PORT
        self._pg("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                 "--no-locale", "--no-sync", timeout=120)
        # Settings in the data directory, so every start (after any kind of stop) is the same server.
        # fsync=off: immediate stops and crashes of PostgreSQL keep the OS page cache, so no committed
        # transaction is lost; only a machine crash would, and then the directory is thrown away anyway.
        # synchronous_commit stays on: with it off an immediate stop *would* lose acknowledged commits.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.pgdata}'",
            "max_connections": str(self.max_connections),
            "shared_buffers": "'32MB'",
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# chaos.postgres.PrivatePostgres\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def _run_as_unprivileged_user(self) -> None:
        """As root: hand the directory to pgserver's system user, which PostgreSQL will run as."""
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
        import stat

        self._user = "pgserver"
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.bin_dir)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(self.bin_dir, read | execute)
        ensure_folder_permissions(self.bin_dir.parent / "lib", read)
        entry = pwd.getpwnam(self._user)
        assert self.dir is not None
        self.dir.chmod(0o755)
        for path in (self.dir, self.pgdata):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _pg(self, program: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        assert self.dir is not None
        return subprocess.run(
            [str(self.bin_dir / program), *args], cwd=self.dir, user=self._user, timeout=timeout, check=check,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            # never inherit a PGPORT/PGHOST/PGDATA that points at somebody else's server
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"},
        )

    def _pg_ctl(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return self._pg("pg_ctl", "-D", str(self.pgdata), *args, timeout=timeout, check=check)

    def is_running(self) -> bool:
        """pg_ctl status: 0 = running, 3 = not running."""
        if self.dir is None or not self.pgdata.exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start (after a stop of any mode; an immediate stop means crash recovery first) and wait."""
        with self._lock:
            if self.is_running():
                return
            try:
                self._pg_ctl("-w", "-t", "120", "-l", str(self.log_path), "start", timeout=150)
            except subprocess.CalledProcessError as err:
                raise RuntimeError(f"private PostgreSQL did not start:\n{err.stdout}\n{self._log_tail()}") from err

    def stop(self, mode: str = "fast") -> None:
        """Stop the server. ``fast``: clients are disconnected cleanly; ``immediate``: like a crash."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        with self._lock:
            if not self.is_running():
                return
            self._pg_ctl("-w", "-t", "60", "-m", mode, "stop", timeout=90)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def outage(self, seconds: float, mode: str = "fast") -> None:
        """Down for ``seconds`` (not counting the stop itself), then up again. Blocks."""
        self.stop(mode)
        try:
            time.sleep(seconds)
        finally:
            self.start()

    def outage_in_background(self, seconds: float, mode: str = "fast") -> threading.Thread:
        """The same outage in a thread, so the caller can watch workers while the server is down."""
        thread = threading.Thread(target=self.outage, args=(seconds, mode), name="chaos-pg-outage", daemon=True)
        thread.start()
        return thread

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete its directory. Idempotent."""
        if self.dir is None:
            return
        try:
            for mode in ("fast", "immediate"):
                try:
                    self._pg_ctl("-w", "-t", "20", "-m", mode, "stop", timeout=30, check=False)
                except subprocess.TimeoutExpired:
                    continue
                if not self.is_running():
                    break
            pid = self.postmaster_pid()
            if pid is not None and self.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            atexit.unregister(self.close)

    def __enter__(self) -> PrivatePostgres:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
