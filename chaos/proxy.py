"""A loopback TCP proxy that can black-hole, reset, or swallow one reply of a PostgreSQL connection.

Network faults that a restart of PostgreSQL cannot produce:

* ``freeze()``: nothing moves in either direction, but every socket stays open. To the client this is
  a half-open connection (a dead NAT entry, a pulled cable on the far side): its writes succeed into
  the kernel's buffer and no reply ever comes, and no error either until a timeout of its own fires.
  New connections are not accepted meanwhile (the kernel completes the handshake from the backlog and
  the startup packet then goes unanswered, as a black hole would). ``thaw()`` lets everything flow
  again.
* ``drop_next_reply(match)``: the next statement whose SQL matches reaches the server (which runs and
  commits it), its reply is thrown away, and after ``reset_after_s`` the connection is reset. The
  client is left not knowing whether its statement took effect — the "lost claim reply" case.
* ``close_all()``: every proxied connection is reset (RST) at once.

One selector thread moves all the bytes (stdlib only). The client's side of the PostgreSQL protocol is
followed just far enough to know which SQL each Query or Bind message runs, including statements that
psycopg prepared earlier under a generated name.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_BUFFER_CAP = 1 << 20  # stop reading a side whose peer is not draining (bounded memory)

Matcher = Callable[[str], bool]


class _FrontendParser:
    """Follows the client→server half of the PostgreSQL v3 protocol; yields the SQL each message runs."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.startup = True
        self.broken = False
        self.prepared: dict[bytes, str] = {}

    def feed(self, data: bytes) -> list[str]:
        if self.broken:
            return []
        self.buf += data
        executed: list[str] = []
        while True:
            if self.startup:  # untyped messages: SSLRequest / GSSENCRequest, then the StartupMessage
                if len(self.buf) < 8:
                    break
                length, code = struct.unpack("!II", self.buf[:8])
                if len(self.buf) < length:
                    break
                del self.buf[:length]
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    self.startup = False
                continue
            if len(self.buf) < 5:
                break
            kind = self.buf[0]
            (length,) = struct.unpack("!I", self.buf[1:5])
            if length < 4 or length > 1 << 30:
                self.broken = True  # not PostgreSQL (or TLS): stop interpreting, keep forwarding
                break
            if len(self.buf) < 1 + length:
                break
            body = bytes(self.buf[5 : 1 + length])
            del self.buf[: 1 + length]
            if kind == ord("Q"):
                executed.append(body.split(b"\0", 1)[0].decode(errors="replace"))
            elif kind == ord("P"):
                name, rest = body.split(b"\0", 1)
                self.prepared[name] = rest.split(b"\0", 1)[0].decode(errors="replace")
            elif kind == ord("B"):
                _portal, rest = body.split(b"\0", 1)
                statement = rest.split(b"\0", 1)[0]
                executed.append(self.prepared.get(statement, ""))
        return executed


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.parser = _FrontendParser()
        self.dropping_replies = False
        self.reset_at: float | None = None


class FreezingProxy:
    """``with FreezingProxy("127.0.0.1", pg.port) as proxy: url = proxy.url_for(pg.url)``"""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((listen_host, 0), backlog=128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.RLock()  # the loop thread resets connections while holding it
        self._conns: list[_Connection] = []
        self._frozen = False
        self._reset_all = False
        self._drop_match: Matcher | None = None
        self._drop_count = 0
        self._drop_reset_after: float | None = 1.0
        self._stopping = False
        self._interest: dict[socket.socket, int] = {}
        #: counters for scenario reports: connections accepted, replies swallowed, connections reset
        self.accepted = 0
        self.dropped_replies = 0
        self.resets = 0
        self.dropped_sql: list[str] = []
        self._thread = threading.Thread(target=self._loop, name=f"chaos-proxy-{self.port}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- control (any thread)
    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        """Stop moving bytes both ways and stop accepting; sockets stay open (half-open as seen by clients)."""
        with self._lock:
            self._frozen = True
        self._wake()

    def thaw(self) -> None:
        with self._lock:
            self._frozen = False
        self._wake()

    def close_all(self, timeout: float = 5.0) -> None:
        """Reset every proxied connection now (clients see ECONNRESET / an unexpected EOF)."""
        with self._lock:
            self._reset_all = True
        self._wake()
        deadline = time.monotonic() + timeout
        while self._reset_all and time.monotonic() < deadline:
            time.sleep(0.005)

    def drop_next_reply(self, match: Matcher | str | None = None, count: int = 1,
                        reset_after_s: float | None = 1.0) -> None:
        """Swallow the reply to the next ``count`` statements matching ``match``, then reset their connections.

        ``match``: a substring of the SQL, a predicate on the SQL, or None for any statement. The statement
        itself is forwarded, so the server runs (and, in autocommit, commits) it. ``reset_after_s=None``
        leaves the connection hanging with no reply instead of resetting it.
        """
        if isinstance(match, str):
            needle = match
            matcher: Matcher = lambda sql: needle in sql  # noqa: E731 - a closure over the substring
        elif match is None:
            matcher = lambda sql: True  # noqa: E731
        else:
            matcher = match
        with self._lock:
            self._drop_match, self._drop_count, self._drop_reset_after = matcher, count, reset_after_s

    @property
    def drops_pending(self) -> int:
        return self._drop_count

    def url_for(self, dsn: str) -> str:
        """The same PostgreSQL URL with its host and port replaced by this proxy's."""
        parts = urlsplit(dsn)
        if not parts.scheme.startswith("postgres") or not parts.netloc:
            raise ValueError(f"not a postgresql:// URL with a host: {dsn!r}")
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def connection_count(self) -> int:
        with self._lock:
            return len(self._conns)

    def close(self) -> None:
        """Stop the proxy: reset every connection and close the listener."""
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout=5)
        for conn in list(self._conns):
            self._reset(conn)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()

    def __enter__(self) -> FreezingProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------- the selector thread
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _set_interest(self, sock: socket.socket, events: int, data: object) -> None:
        old = self._interest.get(sock, 0)
        if events == old:
            return
        if old and events:
            self._selector.modify(sock, events, data)
        elif events:
            self._selector.register(sock, events, data)
        else:
            self._selector.unregister(sock)
        if events:
            self._interest[sock] = events
        else:
            self._interest.pop(sock, None)

    def _forget(self, sock: socket.socket) -> None:
        if self._interest.pop(sock, 0):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)

    def _loop(self) -> None:
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        while not self._stopping:
            with self._lock:
                frozen = self._frozen
                if self._reset_all:
                    for conn in list(self._conns):
                        self._reset(conn)
                    self._reset_all = False
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.reset_at is not None and now >= conn.reset_at:
                    self._reset(conn)
            self._set_interest(self._listener, 0 if frozen else selectors.EVENT_READ, "accept")
            for conn in self._conns:
                for sock, inbox, outbox in ((conn.client, conn.to_upstream, conn.to_client),
                                            (conn.upstream, conn.to_client, conn.to_upstream)):
                    events = 0
                    if not frozen:
                        if len(inbox) < _BUFFER_CAP:
                            events |= selectors.EVENT_READ
                        if outbox:
                            events |= selectors.EVENT_WRITE
                    self._set_interest(sock, events, conn)
            for key, mask in self._selector.select(timeout=0.05):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif key.data == "accept":
                    self._accept()
                else:
                    self._pump(key.data, key.fileobj, mask)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._hard_close(client)  # the server is down: the client sees its connection refused/reset
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns.append(_Connection(client, upstream))
            self.accepted += 1

    def _pump(self, conn: _Connection, sock: socket.socket, mask: int) -> None:
        if conn not in self._conns:
            return
        from_client = sock is conn.client
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(65536)
                if not data:
                    self._close(conn)
                    return
                if from_client:
                    self._from_client(conn, data)
                elif not conn.dropping_replies:
                    conn.to_client += data
            if mask & selectors.EVENT_WRITE:
                outbox = conn.to_client if from_client else conn.to_upstream
                if outbox:
                    sent = sock.send(outbox)
                    del outbox[:sent]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._reset(conn)

    def _from_client(self, conn: _Connection, data: bytes) -> None:
        conn.to_upstream += data
        statements = conn.parser.feed(data)
        with self._lock:
            if not statements or self._drop_count <= 0 or self._drop_match is None:
                return
            for sql in statements:
                if self._drop_match(sql):
                    self._drop_count -= 1
                    self.dropped_replies += 1
                    self.dropped_sql.append(sql)
                    conn.dropping_replies = True
                    conn.to_client.clear()
                    if self._drop_reset_after is not None:
                        conn.reset_at = time.monotonic() + self._drop_reset_after
                    return

    def _close(self, conn: _Connection) -> None:
        """One side ended cleanly: end the other too."""
        self._remove(conn)
        for sock in (conn.client, conn.upstream):
            with contextlib.suppress(OSError):
                sock.close()

    def _reset(self, conn: _Connection) -> None:
        """Abort both sides with RST (SO_LINGER 0), as a middlebox that lost the connection would."""
        self._remove(conn)
        self.resets += 1
        for sock in (conn.client, conn.upstream):
            self._hard_close(sock)

    def _remove(self, conn: _Connection) -> None:
        for sock in (conn.client, conn.upstream):
            self._forget(sock)
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)

    @staticmethod
    def _hard_close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()
