"""API bearer tokens: stored as sha256 hashes in ``pose_api_tokens``, plus the ones from POSE_API_TOKENS.

The token itself is shown once, when it is created; the database keeps only its hash, so a leaked
backup or a curious analyst with SELECT rights cannot call the API. The web process keeps a snapshot
of the (small) table and refreshes it every few seconds, so authenticating a request costs no query;
revocation therefore takes effect within ``refresh_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Engine

from jobs.queries import query

log = logging.getLogger(__name__)

TOKEN_PREFIX = "pose_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> str:
    """A new random token (256 bits); the prefix makes leaked tokens easy to grep for."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def create_token(engine: Engine, name: str) -> tuple[TokenRecord, str]:
    """Store a new token's hash; returns the record and the token (the only time it is known)."""
    token = generate_token()
    with engine.begin() as conn:
        row = conn.execute(query("create_api_token"), {"name": name, "token_sha256": hash_token(token)}).one()
    return TokenRecord(row.id, row.name, row.created_at, None, None), token


def list_tokens(engine: Engine) -> list[TokenRecord]:
    with engine.begin() as conn:
        rows = conn.execute(query("list_api_tokens")).all()
    return [TokenRecord(r.id, r.name, r.created_at, r.revoked_at, r.last_used_at) for r in rows]


def revoke_token(engine: Engine, token_id: int) -> bool:
    """Mark a token revoked (it then gets 403, not 401); False if there is no such token."""
    with engine.begin() as conn:
        return conn.execute(query("revoke_api_token"), {"id": token_id}).first() is not None


class Verdict(Enum):
    OPEN = "open"  # no token configured anywhere: the API is open (and bound to loopback)
    OK = "ok"
    MISSING = "missing"  # tokens are configured and the request has none
    UNKNOWN = "unknown"
    REVOKED = "revoked"


class TokenAuthority:
    """Decides whether a presented token is valid, from the env tokens and a cached table snapshot.

    Env tokens are compared with hmac.compare_digest, every one of them, so the time taken does not
    reveal how much of a token matched. Database tokens are looked up by their sha256: the attacker
    controls the token, not its hash, so timing a dict lookup by hash leaks nothing useful about any
    stored token (the usual practice for hashed API keys).
    """

    def __init__(self, engine: Engine | None, env_tokens: tuple[str, ...], *, refresh_s: float = 2.0) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._env_hashes = tuple(hash_token(t).encode() for t in env_tokens)
        self._db: dict[str, tuple[int, bool]] = {}
        self._any_active_db = False
        self._loaded_at = float("-inf")
        self._used: set[int] = set()
        self._lock = threading.Lock()

    # ---- snapshot ------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Reload the table if the snapshot is older than refresh_s; flush last-use stamps."""
        if self.engine is None:
            return
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_s:
            return
        with self._lock:
            if not force and now - self._loaded_at < self.refresh_s:
                return
            used, self._used = self._used, set()
            with self.engine.begin() as conn:
                if used:
                    conn.execute(query("touch_api_tokens"), {"ids": sorted(used)})
                rows = conn.execute(query("api_token_snapshot")).all()
            self._db = {r.token_sha256: (int(r.id), bool(r.revoked)) for r in rows}
            self._any_active_db = any(not revoked for _, revoked in self._db.values())
            self._loaded_at = time.monotonic()

    def needs_refresh(self) -> bool:
        return self.engine is not None and time.monotonic() - self._loaded_at >= self.refresh_s

    @property
    def configured(self) -> bool:
        """True when any token exists: from the environment, or an unrevoked row (as last loaded)."""
        return bool(self._env_hashes) or self._any_active_db

    # ---- checking ------------------------------------------------------------------------------
    def check(self, token: str | None) -> Verdict:
        """The verdict for a request's bearer token (None when it sent none). Call refresh() first.
        A revoked token is refused even when no other token exists and the API is otherwise open:
        whoever holds it was meant to lose access."""
        if not token:
            return Verdict.MISSING if self.configured else Verdict.OPEN
        digest = hash_token(token)
        encoded = digest.encode()
        matched = False
        for candidate in self._env_hashes:  # no early exit: constant work whichever matches
            matched |= hmac.compare_digest(candidate, encoded)
        if matched:
            return Verdict.OK
        entry = self._db.get(digest)
        if entry is None:
            return Verdict.UNKNOWN if self.configured else Verdict.OPEN
        token_id, revoked = entry
        if revoked:
            return Verdict.REVOKED
        self._used.add(token_id)
        return Verdict.OK

    def describe(self) -> dict[str, Any]:
        return {"env_tokens": len(self._env_hashes), "db_tokens_active": self._any_active_db}
