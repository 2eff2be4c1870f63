"""API bearer tokens as stored: sha256 hashes in ``pose_api_tokens``, created, listed and revoked by
`pose-service tokens`, and read in bulk by the web process (``token_snapshot``).

The token itself is shown once, when it is created; the database keeps only its hash, so a leaked
backup or a curious analyst with SELECT rights cannot call the API. Tenancy (DESIGN.md section 10):
a token has scopes (``submit``, ``read``, ``admin``), a priority ceiling and a submit rate; the
limits and defaults live here because both the CLI (which writes them) and the web process (which
applies them) need them. How a request's token is judged (open or closed API, env tokens, revoked
tokens) is HTTP policy and lives in web/tokens.py.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from jobs.store import JobStore

TOKEN_PREFIX = "pose_"

SUBMIT, READ, ADMIN = "submit", "read", "admin"
SCOPES = (SUBMIT, READ, ADMIN)
DEFAULT_SCOPES = (SUBMIT, READ)
#: The priority of interactive /pose/hybrid jobs: above every token's ceiling, so a client that is
#: waiting on one image is never queued behind ordinary submissions.
INTERACTIVE_PRIORITY = 1000
#: The highest ceiling a token may be given, and the ceiling of tokens that name none (env tokens
#: and the open API included).
MAX_CEILING = INTERACTIVE_PRIORITY - 1
DEFAULT_MAX_PRIORITY = 100
#: Submits per minute of a database token that names no rate (0 = unlimited). The bucket holds a
#: minute's worth, so a client may burst that many and then continues at the rate.
DEFAULT_RATE_PER_MIN = 120


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
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    max_priority: int | None = None  # None: DEFAULT_MAX_PRIORITY
    rate_per_min: int | None = None  # None: DEFAULT_RATE_PER_MIN; 0: unlimited


def check_token_limits(scopes: tuple[str, ...], max_priority: int | None, rate_per_min: int | None) -> None:
    """Refuse settings the API could not honour (ValueError): unknown or no scopes, a ceiling at or
    above the interactive priority, a negative rate."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("a token needs at least one scope")
    if max_priority is not None and not 0 <= max_priority <= MAX_CEILING:
        raise ValueError(
            f"the priority ceiling must be 0..{MAX_CEILING} (interactive jobs run at {INTERACTIVE_PRIORITY})"
        )
    if rate_per_min is not None and rate_per_min < 0:
        raise ValueError("the rate must be >= 0 submits per minute (0 = unlimited)")


def create_token(
    store: JobStore,
    name: str,
    *,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    max_priority: int | None = None,
    rate_per_min: int | None = None,
) -> tuple[TokenRecord, str]:
    """Store a new token's hash; returns the record and the token (the only time it is known)."""
    scopes = tuple(dict.fromkeys(scopes))  # ordered, without repeats
    check_token_limits(scopes, max_priority, rate_per_min)
    token = generate_token()
    params = {
        "name": name,
        "token_sha256": hash_token(token),
        "scopes": list(scopes),
        "max_priority": max_priority,
        "rate_per_min": rate_per_min,
    }
    with store.transaction() as tx:
        row = tx.one("create_api_token", **params)
    record = TokenRecord(
        row.id, row.name, row.created_at, None, None, tuple(row.scopes), row.max_priority, row.rate_per_min
    )
    return record, token


def list_tokens(store: JobStore) -> list[TokenRecord]:
    with store.transaction() as tx:
        rows = tx.all("list_api_tokens")
    return [
        TokenRecord(r.id, r.name, r.created_at, r.revoked_at, r.last_used_at, tuple(r.scopes), r.max_priority,
                    r.rate_per_min)
        for r in rows
    ]


def revoke_token(store: JobStore, token_id: int) -> bool:
    """Mark a token revoked (it then gets 403, not 401); False if there is no such token."""
    with store.transaction() as tx:
        return tx.one("revoke_api_token", id=token_id) is not None


@dataclass(frozen=True)
class TokenRow:
    """One row of the token table as the web process caches it: the hash, never the token."""

    id: int
    name: str
    token_sha256: str
    revoked: bool
    scopes: tuple[str, ...]
    max_priority: int | None
    rate_per_min: int | None


def token_snapshot(store: JobStore, used_ids: list[int]) -> list[TokenRow]:
    """Stamp ``used_ids`` as used now and read the whole (small) table, in one transaction: the web
    process's periodic refresh (web/tokens.py), batched so a request costs no write."""
    with store.transaction() as tx:
        if used_ids:
            tx.exec("touch_api_tokens", ids=sorted(used_ids))
        rows = tx.all("api_token_snapshot")
    return [
        TokenRow(int(r.id), r.name, r.token_sha256, bool(r.revoked), tuple(r.scopes or ()), r.max_priority,
                 r.rate_per_min)
        for r in rows
    ]
