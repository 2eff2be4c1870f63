"""What every handler needs, built once per app and reached through ``request.app.state.ctx``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request

from jobs.settings import Settings
from jobs.store import JobStore
from web.media_paths import MediaRoots
from web.rate_limit import SubmitRateLimiter
from web.tokens import TokenAuthority

T = TypeVar("T")

#: Threads for blocking JobStore calls: as many as the web engine has connections (8 + 8 overflow),
#: so a thread never waits for a connection, and far fewer than anyio's default 40, which under load
#: only fight over the GIL. A plain executor is also a lighter hop than anyio's to_thread.
DB_THREADS = 16
_executor: ThreadPoolExecutor | None = None


@dataclass
class AppContext:
    settings: Settings
    store: JobStore
    tokens: TokenAuthority
    media: MediaRoots
    hybrid_timeout_s: float
    spool_dir: Path | None
    limiter: SubmitRateLimiter = field(default_factory=SubmitRateLimiter)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking JobStore call on the database threads, keeping the event loop free."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="pose-web-db")
    call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_executor, call)
