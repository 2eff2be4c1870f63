"""How the web process judges a request's bearer token: HTTP authentication policy.

The web process keeps a snapshot of the (small) token table (jobs/api_tokens.py stores it) and
refreshes it every few seconds, so authenticating a request costs no query; revocation therefore takes
effect within ``refresh_s``. Env tokens (POSE_API_TOKENS) are admin. Whether the API is open at all
is decided once, by the first successful load of the table (at startup), and never changes while the
process runs: revoking the last token must not open a server that was started closed (and bound to
0.0.0.0), and a token created later does not close an open one halfway (it is logged; restart to
close it). Nothing here imports Starlette: `pose-service web` takes the open-or-closed decision with
this module before the app exists (jobs/cli/web.py).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jobs.api_tokens import (
    ADMIN,
    DEFAULT_MAX_PRIORITY,
    DEFAULT_RATE_PER_MIN,
    MAX_CEILING,
    SCOPES,
    TokenRow,
    hash_token,
    token_snapshot,
)
from jobs.store import JobStore

log = logging.getLogger(__name__)


class Verdict(Enum):
    OPEN = "open"  # the API was started without any token: open (and bound to loopback)
    OK = "ok"
    MISSING = "missing"  # the API is closed and the request has no token
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: its scopes, the owner its jobs get, its ceiling and its rate."""

    name: str
    scopes: frozenset[str]
    token_id: int | None = None  # the database token; None for env tokens and the open API
    max_priority: int = DEFAULT_MAX_PRIORITY
    rate_per_min: int | None = None  # None: unlimited

    def __post_init__(self) -> None:
        # A non-admin is confined to its own jobs by its token id; without one it would see
        # everything (visible_to None), so such a principal must never exist.
        if not self.admin and self.token_id is None:
            raise ValueError("a non-admin principal needs a token id")

    @property
    def admin(self) -> bool:
        return ADMIN in self.scopes

    def allows(self, scope: str) -> bool:
        """Admin implies every scope."""
        return self.admin or scope in self.scopes

    @property
    def visible_to(self) -> int | None:
        """The owner filter for reads and control: None (every job) for admins, else the token id."""
        return None if self.admin else self.token_id


#: Every request of an API started open acts as this: all scopes, no owner, no rate limit.
OPEN_PRINCIPAL = Principal("open API", frozenset(SCOPES))
#: POSE_API_TOKENS are the operator's own: admin, no owner, no rate limit, the highest ceiling (still
#: below interactive jobs).
ENV_PRINCIPAL = Principal("POSE_API_TOKENS", frozenset(SCOPES), max_priority=MAX_CEILING)


def principal_from_row(row: TokenRow) -> Principal:
    """A database token as the web process applies it: the defaults filled in, the ceiling kept
    below the interactive priority even if a row was written by hand."""
    ceiling = DEFAULT_MAX_PRIORITY if row.max_priority is None else min(int(row.max_priority), MAX_CEILING)
    rate = DEFAULT_RATE_PER_MIN if row.rate_per_min is None else int(row.rate_per_min)
    return Principal(
        name=row.name,
        scopes=frozenset(row.scopes),
        token_id=row.id,
        max_priority=ceiling,
        rate_per_min=rate or None,
    )


class TokenAuthority:
    """Decides whether a presented token is valid, from the env tokens and a cached table snapshot.

    Env tokens are compared with hmac.compare_digest, every one of them, so the time taken does not
    reveal how much of a token matched. Database tokens are looked up by their sha256: the attacker
    controls the token, not its hash, so timing a dict lookup by hash leaks nothing useful about any
    stored token (the usual practice for hashed API keys).
    """

    def __init__(self, store: JobStore | None, env_tokens: tuple[str, ...], *, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._env_hashes = tuple(hash_token(t).encode() for t in env_tokens)
        self._db: dict[str, tuple[Principal, bool]] = {}
        self._any_active_db = False
        # Open or closed: decided by the first successful load and never again. Env tokens decide
        # it at once; until a load succeeds the API stays closed (fail closed).
        self._closed: bool | None = True if self._env_hashes else (None if store is not None else False)
        self._warned_late_tokens = False
        self._loaded_at = float("-inf")
        self._used: set[int] = set()
        self._lock = threading.Lock()

    # ---- snapshot ------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Reload the table if the snapshot is older than refresh_s; flush last-use stamps."""
        if self.store is None:
            return
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_s:
            return
        with self._lock:
            if not force and now - self._loaded_at < self.refresh_s:
                return
            used, self._used = self._used, set()
            rows = token_snapshot(self.store, sorted(used))
            self._db = {r.token_sha256: (principal_from_row(r), r.revoked) for r in rows}
            self._any_active_db = any(not revoked for _, revoked in self._db.values())
            self._loaded_at = time.monotonic()
            if self._closed is None:
                self._closed = self._any_active_db
                log.info("API tokens loaded: the API is %s for this process's lifetime",
                         "closed" if self._closed else "OPEN")
            elif not self._closed and self._any_active_db and not self._warned_late_tokens:
                self._warned_late_tokens = True
                log.warning("an API token was created while this process serves an open API; the API "
                            "stays open (decided at startup) until the server is restarted")

    def needs_refresh(self) -> bool:
        return self.store is not None and time.monotonic() - self._loaded_at >= self.refresh_s

    @property
    def closed(self) -> bool:
        """True when the API needs a token: decided by the first load (any env token, or any
        unrevoked row then), and fixed for the process's lifetime. Undecided counts as closed."""
        return self._closed is not False

    @property
    def configured(self) -> bool:
        """Whether any token exists now (env, or an unrevoked row as last loaded); for reports only:
        access is decided by ``closed``."""
        return bool(self._env_hashes) or self._any_active_db

    # ---- checking ------------------------------------------------------------------------------
    def check(self, token: str | None) -> tuple[Verdict, Principal | None]:
        """The verdict for a request's bearer token (None when it sent none) and whom it acts as.
        Call refresh() first.

        On an open API a request without a token, or with an unknown one, acts as OPEN_PRINCIPAL;
        a known token is still honoured as itself (so its jobs get their owner and it sees the same
        jobs whether or not this server happens to be open), and a revoked one is refused: whoever
        holds it was meant to lose access."""
        closed = self.closed
        if not token:
            return (Verdict.MISSING, None) if closed else (Verdict.OPEN, OPEN_PRINCIPAL)
        digest = hash_token(token)
        encoded = digest.encode()
        matched = False
        for candidate in self._env_hashes:  # no early exit: constant work whichever matches
            matched |= hmac.compare_digest(candidate, encoded)
        if matched:
            return Verdict.OK, ENV_PRINCIPAL
        entry = self._db.get(digest)
        if entry is None:
            return (Verdict.UNKNOWN, None) if closed else (Verdict.OPEN, OPEN_PRINCIPAL)
        principal, revoked = entry
        if revoked:
            return Verdict.REVOKED, None
        self._used.add(principal.token_id or 0)
        return Verdict.OK, principal

    def describe(self) -> dict[str, Any]:
        return {
            "api": "closed" if self.closed else "open",
            "env_tokens": len(self._env_hashes),
            "db_tokens_active": self._any_active_db,
        }
