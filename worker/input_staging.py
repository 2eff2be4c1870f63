"""Put a job's video where the pipeline child can open it.

A path job is used in place; with POSE_MEDIA_ROOTS set, the worker opens it itself, checks that the
opened file lies inside a root, and gives the child that open file. An uploaded video lives in
PostgreSQL (so workers need no shared disk) and is streamed chunk by chunk into a private temp file for
the attempt, deleted afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jobs.job import Job
from jobs.media_roots import inside_roots, resolve_roots
from jobs.store import JobStore

log = logging.getLogger(__name__)


class InputRefused(Exception):
    """The job's input cannot be used (outside the media roots, missing): a ``bad_input`` failure."""


@contextlib.contextmanager
def staged_video(store: JobStore, job: Job, work_dir: Path, media_roots: tuple[str, ...] = ()) -> Iterator[str]:
    if job.video_path is not None:
        if not media_roots:  # no roots configured: paths are trusted as the SQL contract allows
            yield job.video_path
            return
        with _opened_inside(job.video_path, resolve_roots(media_roots)) as path:
            yield path
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


@contextlib.contextmanager
def _opened_inside(video_path: str, roots: tuple[str, ...]) -> Iterator[str]:
    """Open the file first, then check where the opened file really is, and hand the child a path to
    that open file (``/proc/<worker>/fd/<n>``): whatever happens to the path after the check (a
    component swapped for a symlink), the child reads exactly the file that was checked."""
    try:
        fd = os.open(video_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputRefused(f"cannot open {video_path}: {exc.strerror}") from None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        if not inside_roots(real, roots):
            raise InputRefused(f"{video_path} resolves to a file outside the media roots (POSE_MEDIA_ROOTS)")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputRefused(f"{video_path} is not a regular file")
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)
