"""pose-service configuration: environment variables, overridable by command-line flags.

One frozen dataclass so every part (web, worker, CLI) reads the same names, and so startup can log
the effective configuration with secrets masked.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_FIELDS = frozenset({"database_url", "api_tokens"})


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def _list(name: str) -> tuple[str, ...]:
    raw = _env(name, "") or ""
    return tuple(part.strip() for part in raw.replace(os.pathsep, ",").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    home: Path = field(default_factory=lambda: Path.home() / ".pose-service")
    model_dir: Path | None = None
    api_tokens: tuple[str, ...] = ()
    media_roots: tuple[str, ...] = ()
    timeout_s: float = 1800.0
    log_level: str = "INFO"
    log_format: str = "text"
    max_upload_mb: float = 2048.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 3600.0
    lease_s: float = 15.0
    heartbeat_s: float = 2.0
    poll_s: float = 2.0
    retry_base_s: float = 10.0
    retry_cap_s: float = 600.0
    kill_grace_s: float = 5.0
    shutdown_grace_s: float = 30.0
    worker_mode: str = "warm"
    recycle_after: int = 1000
    pipeline: str = "worker.pipeline.pose:create"
    retention_days: float | None = None  # uploads are deleted this long after their jobs end; None: kept

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("POSE_HOME") or Path.home() / ".pose-service").expanduser()
        model_dir = _env("POSE_MODEL_DIR")
        log_format = (_env("POSE_LOG_FORMAT", "text") or "text").lower()
        if log_format not in ("text", "json"):
            raise ValueError(f"POSE_LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        mode = (_env("POSE_WORKER_MODE", "warm") or "warm").lower()
        if mode not in ("warm", "fresh"):
            raise ValueError(f"POSE_WORKER_MODE must be 'warm' or 'fresh', got {mode!r}")
        return cls(
            database_url=_env("POSE_DATABASE_URL"),
            home=home,
            model_dir=Path(model_dir).expanduser() if model_dir else home / "models",
            api_tokens=_list("POSE_API_TOKENS"),
            media_roots=tuple(str(Path(p).expanduser()) for p in _list("POSE_MEDIA_ROOTS")),
            timeout_s=_float("POSE_TIMEOUT_S", cls.timeout_s),
            log_level=(_env("POSE_LOG_LEVEL", "INFO") or "INFO").upper(),
            log_format=log_format,
            max_upload_mb=_float("POSE_MAX_UPLOAD_MB", cls.max_upload_mb),
            body_idle_timeout_s=_float("POSE_BODY_IDLE_TIMEOUT_S", cls.body_idle_timeout_s),
            body_timeout_s=_float("POSE_BODY_TIMEOUT_S", cls.body_timeout_s),
            lease_s=_float("POSE_LEASE_S", cls.lease_s),
            heartbeat_s=_float("POSE_HEARTBEAT_S", cls.heartbeat_s),
            poll_s=_float("POSE_POLL_S", cls.poll_s),
            retry_base_s=_float("POSE_RETRY_BASE_S", cls.retry_base_s),
            retry_cap_s=_float("POSE_RETRY_CAP_S", cls.retry_cap_s),
            kill_grace_s=_float("POSE_KILL_GRACE_S", cls.kill_grace_s),
            shutdown_grace_s=_float("POSE_SHUTDOWN_GRACE_S", cls.shutdown_grace_s),
            worker_mode=mode,
            recycle_after=int(_float("POSE_RECYCLE_AFTER", cls.recycle_after)),
            pipeline=_env("POSE_PIPELINE", cls.pipeline) or cls.pipeline,
            retention_days=_float("POSE_RETENTION_DAYS", 0.0) or None,  # unset: keep for ever
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with the non-None ``changes`` applied (CLI flags that were given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def masked(self) -> dict[str, Any]:
        """The effective configuration for the startup log: secrets replaced, paths as strings."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url" and value:
                value = mask_dsn(value)
            elif f.name in SECRET_FIELDS and value:
                value = f"<{len(value)} tokens>" if isinstance(value, tuple) else "***"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


#: libpq parameters whose values are secrets, wherever a DSN carries them.
SECRET_DSN_KEYS = ("password", "sslpassword")
_KEYWORD_SECRET = re.compile(r"(\b(?:{})\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)".format("|".join(SECRET_DSN_KEYS)))


def mask_dsn(dsn: str) -> str:
    """The DSN with every secret replaced by ``***``, in any of libpq's spellings:
    ``postgresql://user:secret@host/db``, ``postgresql://user@host/db?password=secret`` and
    ``host=h user=u password=secret``."""
    scheme, sep, _ = dsn.partition("://")
    if not sep:
        return _KEYWORD_SECRET.sub(r"\1***", dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return f"{scheme}://***"  # unparsable: show nothing that might be a secret
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, hosts = netloc.rpartition("@")
        user, colon, password = creds.partition(":")
        netloc = f"{user}{':***' if colon and password else ''}@{hosts}"
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_DSN_KEYS else (f"{key}={value}" if sep_ else key)
        for key, sep_, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
