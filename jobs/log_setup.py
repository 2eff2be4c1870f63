"""Structured logging: text or JSON lines, every record about a job carrying job id, attempt, worker.

The context lives in contextvars, so code deep in the worker logs plainly (``log.info("claimed")``)
and the job's identity is attached by a filter rather than threaded through every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("pose_log_context", default=None)
CONTEXT_KEYS = ("worker_id", "job_id", "attempt")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` (e.g. job_id=…, attempt=…) to every log record made inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_context(**fields: Any) -> None:
    """Attach fields for the rest of this thread/context (e.g. a worker's id, set once at start)."""
    _context.set({**(_context.get() or {}), **fields})


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = (_context.get() or {})
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = getattr(record, "context", {}) or {}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = " ".join(f"{k}={ctx[k]}" for k in CONTEXT_KEYS if k in ctx)
        extra = " ".join(f"{k}={v}" for k, v in ctx.items() if k not in CONTEXT_KEYS)
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: {record.getMessage()}"
        tags = " ".join(t for t in (fields, extra) if t)
        if tags:
            line += f" [{tags}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "context", {}) or {})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic.runtime.migration", "httpx", "uvicorn.access", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
