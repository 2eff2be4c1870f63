"""Put a job's video where the pipeline child can open it.

A path job is used in place. An uploaded video lives in PostgreSQL (so workers need no shared disk)
and is streamed chunk by chunk into a private temp file for the attempt, deleted afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jobs.job import Job
from jobs.store import JobStore

log = logging.getLogger(__name__)


@contextlib.contextmanager
def staged_video(store: JobStore, job: Job, work_dir: Path) -> Iterator[str]:
    if job.video_path is not None:
        yield job.video_path
        return
    assert job.upload_id is not None
    work_dir.mkdir(parents=True, exist_ok=True)
    # No suffix, and never the client's: a name ending in .m3u8 or .ffconcat would steer FFmpeg to a
    # demuxer that reads the files the upload names. The content alone decides (media_checks.py).
    fd, path = tempfile.mkstemp(prefix=f"job{job.id}-", dir=work_dir)
    try:
        size = 0
        with os.fdopen(fd, "wb") as fh:
            for chunk in store.iter_upload(job.upload_id):
                fh.write(chunk)
                size += len(chunk)
        log.info("staged upload %s (%d bytes) at %s", job.upload_id, size, path)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
