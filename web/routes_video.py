"""GET /v1/jobs/{id}/video: a job's input video, with HTTP range requests, for the viewer (web/ui/).

A browser's ``<video>`` seeks by asking for byte ranges (RFC 9110 section 14); without 206 answers it
could only play from the start. Both kinds of input are served the same way:

- an upload is read from PostgreSQL chunk by chunk (JobStore.iter_upload_range finds the chunk that
  holds an offset directly), so a seek near the end of an hour of video reads one 1 MiB chunk;
- a server-side path is served only while it still lies inside POSE_MEDIA_ROOTS and is a video
  (web/media_paths.py): a job inserted by SQL may name any file, and this route must not turn that
  into a way of reading the server's disk.

One range per request (``bytes=A-B``, ``bytes=A-``, ``bytes=-N``); a request for several ranges gets
the whole video (200), which RFC 9110 allows and every browser handles. A range that starts past the
end is 416 with ``Content-Range: bytes */SIZE``.

A ``<video>`` element cannot send an ``Authorization`` header, so with tokens on the viewer also puts
its token in the ``pose_token`` cookie (path ``/v1/jobs/``, ``SameSite=Strict``), and
:class:`CookieBearer`, mounted on this route alone, turns that cookie into the bearer header when
none was sent. The token is checked exactly as a header's (scopes, owner); no other route reads the
cookie, so no state-changing route can be driven by it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from web.context import ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.submission import load_job

COOKIE = "pose_token"
READ_BYTES = 256 * 1024  # bytes read from a file at a time
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
                ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".ts": "video/mp2t", ".mpg": "video/mpeg"}


class CookieBearer:
    """ASGI middleware: a ``pose_token`` cookie becomes ``Authorization: Bearer`` when the request
    carries no Authorization header (see the module docstring for why only this route has it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = list(scope["headers"])
            names = {name for name, _ in headers}
            token = _cookie(headers, COOKIE)
            if token and b"authorization" not in names:
                headers.append((b"authorization", b"Bearer " + token.encode("latin-1", "replace")))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name and v:
                return unquote(v)
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single-range ``Range`` header, or None for the whole body (no header, a
    header this route does not honour: several ranges, another unit). ApiError 416 when the range
    cannot be satisfied."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size
    start = int(first)
    stop = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # invalid: RFC 9110 says ignore the header
    if start >= size:
        raise _unsatisfiable(size)
    return start, stop


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(416, ErrorCode.RANGE_NOT_SATISFIABLE, f"the video has {size} bytes",
                    headers={"Content-Range": f"bytes */{size}"})


async def job_video(request: Request) -> Response:
    """The job's input video, whole (200) or one byte range (206)."""
    job = await load_job(request)
    app = ctx(request)
    if job.kind != "pose":  # an analysis job's upload is a keypoints file, not a video
        raise ApiError(404, ErrorCode.VIDEO_NOT_FOUND,
                       f"job {job.id} is an analysis job: it has no video (its pose job has: source_job_id)")
    if job.upload_id is not None:
        upload_id = job.upload_id
        info = await db(app.store.upload_info, upload_id)
        if info is None or info["deleted_at"] is not None or not info["complete"]:
            raise ApiError(410, ErrorCode.UPLOAD_EXPIRED, f"job {job.id}'s upload was deleted by retention")
        size = int(info["size_bytes"])
        declared = info["content_type"] or ""
        media_type = declared if declared.startswith("video/") else _media_type(info["filename"] or "")
        pieces = functools.partial(app.store.iter_upload_range, upload_id)
    else:
        try:
            path = app.media.resolve(job.video_path or "")
        except ApiError as refused:
            if refused.status == 403:  # outside the roots now (or never inside: an SQL insert)
                raise ApiError(403, ErrorCode.PATH_FORBIDDEN,
                               f"job {job.id}'s video is not inside POSE_MEDIA_ROOTS; it is not served") from None
            raise ApiError(404, ErrorCode.VIDEO_NOT_FOUND, f"job {job.id}'s video is no longer readable") from None
        size = os.path.getsize(path)
        media_type = _media_type(path)
        pieces = functools.partial(_read_file, path)
    wanted = parse_range(request.headers.get("range"), size)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    if wanted is None:
        start, stop, status = 0, size, 200
    else:
        start, stop = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(_in_threads(pieces(start, stop)), status_code=status, headers=headers,
                             media_type=media_type)


def _media_type(name: str) -> str:
    return _MEDIA_TYPES.get(os.path.splitext(name)[1].lower(), "video/mp4")


def _read_file(path: str, start: int, stop: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = stop - start
        while left > 0:
            piece = fh.read(min(READ_BYTES, left))
            if not piece:
                return
            left -= len(piece)
            yield piece


async def _in_threads(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each read (a file block, an upload chunk from PostgreSQL) runs on the database threads."""
    while (piece := await db(next, pieces, None)) is not None:
        yield piece
