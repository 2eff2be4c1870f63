"""pose-service configuration: every setting declared once, read from the environment and from flags.

Each field of ``Settings`` is one setting: its type and bounds (validated by pydantic), its default,
its help text, its environment variable (``POSE_`` + the name in capitals) and the command-line
flag (``--`` + the name with dashes) of every command whose group it belongs to (``commands=`` on
the field: ``common`` for every command, ``web`` for web and serve, ``worker`` for worker and serve).
jobs/cli/common.py builds the flags from these declarations, so a new setting is a flag of the right
commands without another line anywhere; `serve` hands its effective settings to the workers it starts
through their environment, so nothing is re-serialised flag by flag.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "POSE_"
COMMON, WEB, WORKER = "common", "web", "worker"


def setting(default: Any, help: str, *, commands: tuple[str, ...], secret: bool = False,
            flags: tuple[str, ...] = (), **bounds: Any) -> Any:
    """Declare one setting: ``commands`` are the groups whose commands take it as a flag; ``flags``
    adds aliases to the generated ``--name``; ``bounds`` are pydantic constraints (gt=0, ...)."""
    return Field(default, description=help, json_schema_extra={"commands": list(commands), "secret": secret,
                                                               "flags": list(flags)}, **bounds)


PositiveSeconds = Annotated[float, Field(gt=0)]
TextList = Annotated[tuple[str, ...], NoDecode]  # "a,b" or "a:b" in the environment, not JSON


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", validate_default=True)

    database_url: str | None = setting(
        None, "PostgreSQL DSN (postgresql://user:pass@host/db); unset: an embedded PostgreSQL under POSE_HOME",
        commands=(COMMON,), secret=True)
    home: Path = setting(Path.home() / ".pose-service",
                         "embedded database, model cache, worker scratch files, demo results", commands=(COMMON,))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", "log level", commands=(COMMON,))
    log_format: Literal["text", "json"] = setting("text", "json: one JSON object per line", commands=(COMMON,))
    model_dir: Path | None = setting(None, "BlazePose weights (default $POSE_HOME/models)", commands=(WORKER,))
    api_tokens: TextList = setting((), "comma-separated bearer tokens (admin); none, and none in the database: "
                                       "an open API on 127.0.0.1", commands=(WEB,), secret=True)
    media_roots: TextList = setting((), "comma-separated directories whose videos may be submitted by path (the "
                                        "worker opens only files inside them)", commands=(WEB, WORKER))
    max_upload_mb: PositiveSeconds = setting(2048.0, "upload size cap in MiB", commands=(WEB,))
    body_idle_timeout_s: PositiveSeconds = setting(30.0, "408 when a request body stalls this long",
                                                   commands=(WEB,))
    body_timeout_s: PositiveSeconds = setting(3600.0, "408 when a request body takes longer than this in all",
                                              commands=(WEB,))
    retention_days: float | None = setting(
        None, "uploads and per-frame rows are deleted this many days after their jobs end (unset: kept for ever)",
        commands=(WEB, WORKER), gt=0)
    timeout_s: PositiveSeconds = setting(
        1800.0, "default per-job deadline, stretched to frames x timeout_per_frame_s for long videos (a job's "
                "timeout_s overrides both)", commands=(WORKER,))
    timeout_per_frame_s: float = setting(
        0.2, "the default deadline grows to this many seconds per frame of the video once the pipeline reports "
             "its frame count (0: a fixed deadline)", commands=(WORKER,), ge=0)
    stall_s: PositiveSeconds = setting(300.0, "a pipeline child that reports no progress for this long is killed "
                                              "(timeout)", commands=(WORKER,))
    segment_s: float = setting(
        600.0, "a video longer than this many seconds is split into segment jobs that any workers run at once "
               "(a job's params.segment_s overrides it; 0: never split)", commands=(WORKER,), ge=0)
    lease_s: PositiveSeconds = setting(15.0, "a running job's lease: a silent worker loses its job after it",
                                       commands=(WEB, WORKER))
    heartbeat_s: PositiveSeconds = setting(2.0, "how often a worker renews its lease", commands=(WORKER,))
    poll_s: PositiveSeconds = setting(2.0, "polling backstop behind LISTEN/NOTIFY", commands=(WORKER,))
    retry_base_s: PositiveSeconds = setting(10.0, "first retry delay; doubles per attempt", commands=(WORKER,))
    retry_cap_s: PositiveSeconds = setting(600.0, "longest retry delay", commands=(WORKER,))
    kill_grace_s: PositiveSeconds = setting(5.0, "SIGTERM to SIGKILL grace for a pipeline child",
                                            commands=(WORKER,))
    shutdown_grace_s: PositiveSeconds = setting(30.0, "how long a stopping worker waits for its running job",
                                                commands=(WORKER,))
    worker_mode: Literal["warm", "fresh"] = setting(
        "warm", "warm: one long-lived pipeline child; fresh: a new child per job", commands=(WORKER,),
        flags=("--mode",))
    recycle_after: int = setting(1000, "a warm child is replaced after this many jobs", commands=(WORKER,), gt=0)
    pipeline: str = setting("worker.pipeline.pose:create", "the pipeline factory the child loads (module:function)",
                            commands=(WEB, WORKER))
    # the backends (issue 15, docs/phalp.md): a job names one in params.backend or leaves it to its worker
    backend: Literal["blazepose", "phalp"] = setting(
        "blazepose", "the backend that runs jobs naming none (params.backend): blazepose (POSE_PIPELINE) or phalp "
                     "(4D-Humans/PHALP, POSE_PHALP_DIR)", commands=(WEB, WORKER))
    phalp_dir: Path | None = setting(None, "a 4D-Humans checkout (its track.py runs the phalp backend; unset: no "
                                           "phalp backend)", commands=(WORKER,))
    phalp_python: Path | None = setting(None, "the Python interpreter of that checkout's environment (torch, "
                                              "hmr2, phalp installed)", commands=(WORKER,))
    phalp_overrides: str = setting("", "extra Hydra overrides for track.py, space-separated with shell quoting "
                                       "(e.g. 'phalp.low_th_c=0.7 device=cuda:0')", commands=(WORKER,))
    smpl_model: Path | None = setting(None, "the SMPL model (.npz, or a .pkl of plain arrays) for mesh vertices "
                                            "and faces of phalp jobs (/pose/hybrid); unset: none",
                                      commands=(WORKER,))

    @field_validator("api_tokens", "media_roots", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.replace(os.pathsep, ",").split(",") if part.strip())
        return value

    @field_validator("media_roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(Path(p).expanduser()) for p in value)

    @field_validator("log_level", "log_format", "worker_mode", "backend", mode="before")
    @classmethod
    def _case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.upper() if value.lower() in ("debug", "info", "warning", "error", "critical") else value.lower()

    @field_validator("database_url", "model_dir", "retention_days", "phalp_dir", "phalp_python", "smpl_model",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        home = self.home.expanduser()
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "model_dir", self.model_dir.expanduser() if self.model_dir else home / "models")
        return self

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The environment, then ``overrides`` (flags that were given; None means not given).
        A bad value is a ValueError naming the variable and what it must be."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ValueError(describe_errors(exc, given)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with the non-None ``changes`` applied, validated like the rest."""
        given = {k: v for k, v in changes.items() if v is not None}
        try:
            return type(self).model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise ValueError(describe_errors(exc, given)) from None

    # ---- description ---------------------------------------------------------------------------
    @classmethod
    def declarations(cls) -> dict[str, FieldInfo]:
        return dict(cls.model_fields)

    @staticmethod
    def env_name(name: str) -> str:
        return ENV_PREFIX + name.upper()

    @staticmethod
    def commands_of(info: FieldInfo) -> tuple[str, ...]:
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        return tuple(extra.get("commands", ()))  # type: ignore[arg-type]

    @staticmethod
    def is_secret(info: FieldInfo) -> bool:
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        return bool(extra.get("secret"))

    def as_env(self) -> dict[str, str]:
        """These settings as POSE_* variables, for a process this one starts (serve's workers)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            env[self.env_name(name)] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env

    def masked(self) -> dict[str, Any]:
        """The effective configuration for the startup log: secrets replaced, paths as strings."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if name == "database_url" and value:
                value = mask_dsn(value)
            elif self.is_secret(info) and value:
                value = f"<{len(value)} tokens>" if isinstance(value, tuple) else "***"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


#: pydantic error types, as "NAME must be ...".
_RULES = {
    "float_parsing": "a number", "int_parsing": "an integer", "float_type": "a number", "int_type": "an integer",
    "greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}", "literal_error": "one of {expected}",
}


def describe_errors(exc: ValidationError, given: dict[str, Any]) -> str:
    """pydantic's errors as one line naming the variable or flag, never echoing a secret."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        where = f"--{name.replace('_', '-')}" if name in given else Settings.env_name(name)
        rule = _RULES.get(err["type"])
        parts.append(f"{where} must be {rule.format(**err.get('ctx', {}))}" if rule else f"{where}: {err['msg']}")
    return "; ".join(parts)


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
