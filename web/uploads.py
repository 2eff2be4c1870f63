"""Video uploads: received into a temporary file, checked, and only then written to PostgreSQL.

The multipart body is fed, chunk by chunk as it arrives, through python-multipart; the bytes of the
``video`` part go to a spool file under fixed names (never the client's file name or suffix, which
would steer FFmpeg's choice of demuxer). Nothing touches the database while the client is sending:
a slow client costs a socket and a coroutine, not one of the web's few database connections. Once
the body is complete the spool file is checked, in this order, each refusal keeping nothing:

1. the container, from its magic bytes (worker/pipeline/io/media_checks.py): MP4/MOV, Matroska/WebM,
   AVI, MPEG-TS/PS only. Playlists, concat lists and anything else that names other files are
   refused with the same 415 whatever they name, so the answer says nothing about other files;
2. the frame size, from the stream header, before any frame is decoded (pixel limits: 422);
3. that OpenCV's FFmpeg backend decodes a first frame (415).

Only then is the file written into PostgreSQL, in one short transaction.

Limits on the body itself: every byte counts against POSE_MAX_UPLOAD_MB plus a small allowance for
the multipart framing, preamble and epilogue included (413); each read may wait at most
POSE_BODY_IDLE_TIMEOUT_S and the whole body POSE_BODY_TIMEOUT_S (408); a full disk is a 507.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from jobs.store import JobStore, UploadTooLarge
from web.context import db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.validation import body_chunks
from worker.pipeline.io.media_checks import (
    IMAGE_FORMATS,
    MIN_SIDE,
    SNIFF_BYTES,
    VIDEO_CONTAINERS,
    image_format,
    image_size,
    pixel_problem,
    video_container,
)

log = logging.getLogger(__name__)

VIDEO_FIELD = "video"
SEND_BYTES = 1 << 20  # bytes written to the spool file, and to the database, at a time
FIELD_LIMIT = 64 * 1024  # bytes of one ordinary form field (params JSON, keys)
HEADER_LIMIT = 8 * 1024  # bytes of one part header line
MAX_FIELDS = 16
MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1
MULTIPART_OVERHEAD = 1 << 20  # what framing, preamble, epilogue and the small fields may add to the video
DRAIN_LIMIT = 64 << 20  # after refusing, read at most this much more so the client sees the answer
#: Errors of a spool write that mean "no room", answered 507 rather than 500.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Frames decoded at once by this process (upload checks, /pose/hybrid images). A frame at the pixel
#: limit is 120 MB decoded; without a bound, concurrent requests would multiply that by the thread pool.
DECODE_SLOTS = threading.BoundedSemaphore(2)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)
    header_name: bytes = b""
    header_value: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class ReceivedUpload:
    """A committed, checked upload and the other form fields (as text)."""

    upload_id: int
    size: int
    filename: str | None
    fields: dict[str, str]
    probe: dict[str, Any]


class _MultipartReceiver:
    def __init__(self, request: Request, max_bytes: int, spool: IO[bytes], file_field: str = VIDEO_FIELD) -> None:
        self.request = request
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.spool = spool
        self.part = _Part()
        self.fields: dict[str, str] = {}
        self.in_video = False
        self.video_seen = False
        self.video_done = False
        self.video_name: str | None = None
        self.video_type: str | None = None
        self.video_size = 0
        self.pending = bytearray()
        self.problem: ApiError | None = None

    # ---- python-multipart callbacks (sync, called inside parser.write) --------------------------
    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]
        self._check_header(self.part.header_name)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]
        self._check_header(self.part.header_value)

    def _check_header(self, value: bytes) -> None:
        if len(value) > HEADER_LIMIT:
            self._refuse(ApiError(400, ErrorCode.MALFORMED_MULTIPART, "a multipart part header is too long"))

    def on_header_end(self) -> None:
        self.part.headers[self.part.header_name.lower()] = self.part.header_value
        self.part.header_name, self.part.header_value = b"", b""

    def on_headers_finished(self) -> None:
        if self.problem is not None:
            return
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            self._refuse(ApiError(400, ErrorCode.MALFORMED_MULTIPART, "a multipart part has no name"))
            return
        self.part.name = name.decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
        content_type = self.part.headers.get(b"content-type")
        self.part.content_type = content_type.decode("latin-1") if content_type else None
        if self.part.name == self.file_field:
            if self.video_seen:
                self._refuse(ApiError(422, ErrorCode.INVALID_FIELD, f"more than one {self.file_field!r} part"))
                return
            # both are stored as text: PostgreSQL refuses NUL, and control characters are no name
            for what, value in (("filename", self.part.filename), ("content type", self.part.content_type)):
                if value is not None and (len(value) > 1024 or not value.isprintable()):
                    why = f"the {self.file_field} part's {what} must be printable, ≤ 1024 characters"
                    self._refuse(ApiError(422, ErrorCode.INVALID_FIELD, why))
                    return
            self.video_seen = self.in_video = True
            self.video_name, self.video_type = self.part.filename, self.part.content_type
        elif len(self.fields) >= MAX_FIELDS:
            self._refuse(ApiError(422, ErrorCode.INVALID_BODY, "too many form fields"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.problem is not None:
            return
        if self.in_video:
            self.video_size += end - start
            if self.video_size > self.max_bytes:
                self._refuse(_too_large(self.max_bytes))
                return
            self.pending += data[start:end]
        else:
            self.part.data += data[start:end]
            if len(self.part.data) > FIELD_LIMIT:
                self._refuse(ApiError(413, ErrorCode.FIELD_TOO_LARGE, f"form field {self.part.name!r} is too large"))

    def on_part_end(self) -> None:
        if self.problem is not None:
            return
        if self.in_video:
            self.in_video = False
            self.video_done = True
            return
        if self.part.name in self.fields:
            self._refuse(ApiError(422, ErrorCode.INVALID_FIELD, f"form field {self.part.name!r} given twice"))
            return
        try:
            self.fields[self.part.name] = self.part.data.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(ApiError(422, ErrorCode.INVALID_FIELD, f"form field {self.part.name!r} is not UTF-8"))

    def _refuse(self, problem: ApiError) -> None:
        if self.problem is None:
            self.problem = problem

    # ---- the request side -----------------------------------------------------------------------
    async def _flush(self, *, final: bool = False) -> None:
        """Write what has accumulated to the spool file, a MiB at a time, off the event loop."""
        while len(self.pending) >= SEND_BYTES or (final and self.pending):
            piece = bytes(self.pending[:SEND_BYTES])
            del self.pending[:SEND_BYTES]
            await anyio.to_thread.run_sync(_write, self.spool, piece)

    async def receive(self, boundary: bytes) -> None:
        """Read the whole body into the spool file and the fields; ApiError on any problem."""
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self.on_part_begin,
                "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
            },
        )
        body_limit = self.max_bytes + MULTIPART_OVERHEAD
        received = 0
        chunks: AsyncIterator[bytes] = body_chunks(self.request)
        async for chunk in chunks:
            received += len(chunk)
            if received > body_limit:  # the preamble and epilogue count too: nothing is free
                self._refuse(_too_large(self.max_bytes))
            else:
                try:
                    parser.write(chunk)
                except (MultipartParseError, FormParserError) as exc:
                    self._refuse(ApiError(400, ErrorCode.MALFORMED_MULTIPART, f"malformed multipart body: {exc}"))
            if self.problem is not None:
                await _drain(self.request, DRAIN_LIMIT, chunks)
                raise self.problem
            await self._flush()
        try:
            parser.finalize()
        except (MultipartParseError, FormParserError) as exc:
            raise ApiError(400, ErrorCode.MALFORMED_MULTIPART, f"malformed multipart body: {exc}") from None
        if self.problem is not None:
            raise self.problem
        if not self.video_seen:
            raise ApiError(422, ErrorCode.MISSING_FIELD, f"multipart body without a {self.file_field!r} part")
        if not self.video_done:
            raise ApiError(400, ErrorCode.MALFORMED_MULTIPART, f"the body ended inside the {self.file_field} part")
        await self._flush(final=True)


async def receive_upload(
    request: Request, store: JobStore, *, max_bytes: int, spool_dir: Path | None = None,
    file_field: str = VIDEO_FIELD, check: Callable[[str], dict[str, Any]] | None = None,
) -> ReceivedUpload:
    """Receive the multipart request's ``video`` part into a spool file, check it (see the module
    docstring), then store it in PostgreSQL in one short transaction; the other parts come back as
    text fields. Raises ApiError (400, 408, 413, 415, 422, 507) and keeps nothing then. Another
    ``file_field`` with its own ``check`` (an ApiError for a bad file, else what ``probe`` holds)
    receives another kind of file the same way (``POST /v1/analyses``: ``keypoints``)."""
    boundary = _boundary(request)
    declared = _content_length(request)
    if declared is not None and declared > max_bytes + MULTIPART_OVERHEAD:
        await _drain(request, DRAIN_LIMIT)
        raise _too_large(max_bytes)
    with _no_space_is_507():
        fd, path = tempfile.mkstemp(prefix="pose-upload-", dir=spool_dir)  # no suffix: content decides
    try:
        receiver = _MultipartReceiver(request, max_bytes, os.fdopen(fd, "wb"), file_field)
        try:
            await receiver.receive(boundary)
        finally:
            await anyio.to_thread.run_sync(_close, receiver.spool)
        probe = await anyio.to_thread.run_sync(check or check_video, path)
        # only now, with every byte here and checked, does the upload take a database connection
        upload_id = await db(_store_file, store, path, receiver)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return ReceivedUpload(upload_id, receiver.video_size, receiver.video_name, receiver.fields, probe)


def _store_file(store: JobStore, path: str, receiver: _MultipartReceiver) -> int:
    try:
        return store.store_upload(
            iter_file(path),
            filename=receiver.video_name,
            content_type=receiver.video_type,
            max_bytes=max(receiver.video_size, 1),
        )
    except UploadTooLarge:  # cannot happen unless the spool file grew: not ours to store then
        raise ApiError(413, ErrorCode.UPLOAD_TOO_LARGE, "the upload changed while it was being stored") from None


def _write(spool: IO[bytes], piece: bytes) -> None:
    with _no_space_is_507():
        spool.write(piece)


def _close(spool: IO[bytes]) -> None:
    with _no_space_is_507():
        spool.close()


@contextlib.contextmanager
def _no_space_is_507() -> Iterator[None]:
    """A full spool disk (or a file size limit) is the server's condition, not a bug: 507. Other I/O
    errors stay errors."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        log.warning("no room to spool an upload: %s", exc)
        raise ApiError(
            507, ErrorCode.INSUFFICIENT_STORAGE, "the server has no room for this upload now; try again later"
        ) from exc


def _boundary(request: Request) -> bytes:
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "multipart body without a boundary")
    if len(boundary) > MAX_BOUNDARY or not all(0x20 <= b < 0x7F for b in boundary):
        raise ApiError(
            400, ErrorCode.BAD_REQUEST, f"the multipart boundary must be 1 to {MAX_BOUNDARY} printable ASCII characters"
        )
    return boundary


def _not_a_video() -> ApiError:
    """The answer to anything that is not a self-contained video container, whatever it is or names:
    one answer, so a refusal says nothing about the files a playlist points at."""
    return ApiError(
        415,
        ErrorCode.NOT_A_VIDEO,
        f"the upload is not a video in a container this service decodes ({VIDEO_CONTAINERS}); playlists "
        "and other files that refer to other files are refused; for a still image use POST /pose/hybrid",
    )


def pixel_error(width: int, height: int, what: str) -> ApiError | None:
    """The 422 for a frame outside the pixel limits (checked before decoding), or None."""
    problem = pixel_problem(width, height)
    if problem is None:
        return None
    code = ErrorCode.TOO_FEW_PIXELS if min(width, height) < MIN_SIDE else ErrorCode.TOO_MANY_PIXELS
    return ApiError(422, code, f"the {what} is {problem}")


def check_video(path: str) -> dict[str, Any]:
    """Blocking: width, height, fps and frame count of the video in ``path``, or ApiError: 415 when it
    is not a self-contained container OpenCV decodes a first frame of, 422 outside the pixel limits.
    The frame size is checked from the stream header, before a frame is decoded."""
    with open(path, "rb") as f:
        if video_container(f.read(SNIFF_BYTES)) is None:
            raise _not_a_video()
    import cv2  # late: OpenCV is heavy and only uploads need it

    with DECODE_SLOTS:
        return _check_video(cv2, path)


def _check_video(cv2: Any, path: str) -> dict[str, Any]:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise _not_a_video()
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:  # no frame size in the header: nothing to check before decoding
            raise _not_a_video()
        if (error := pixel_error(width, height, "video")) is not None:
            raise error
        ok, frame = cap.read()
        if not ok or frame is None:
            raise _not_a_video()
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return {
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
            "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "frames": int(frames) if 0 < frames < 2**31 else None,
        }
    finally:
        cap.release()


def image_to_video(image: bytes, spool_dir: Path | None = None) -> tuple[str, int, int]:
    """Encode one still image (PNG, JPEG or WebP) as a one-frame video file (lossless PNG-in-AVI,
    1 fps); returns the file's path (the caller deletes it), width and height. ApiError 422 when the
    bytes are no such image, or its header declares a size outside the pixel limits: checked before
    decoding, so a small file declaring a huge image never allocates it.

    OpenCV can open a .png as a video source too, but reports a nonsense frame count for it; a
    one-frame AVI has an exact count and fps, so the pipeline treats it like any other video."""
    not_an_image = ApiError(422, ErrorCode.NOT_AN_IMAGE, f"image_base64 does not decode to a {IMAGE_FORMATS} image")
    size = image_size(image) if image_format(image[:16]) else None
    if size is None:
        raise not_an_image
    if (error := pixel_error(*size, "image")) is not None:
        raise error
    import cv2
    import numpy as np

    with DECODE_SLOTS:
        pixels = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
        if pixels is None or pixels.ndim != 3:
            raise not_an_image
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        if (error := pixel_error(width, height, "image")) is not None:
            raise error
        fd, path = tempfile.mkstemp(prefix="pose-image-", suffix=".avi", dir=spool_dir)
        os.close(fd)
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"png "), 1.0, (width, height))
        try:
            if not writer.isOpened():
                raise RuntimeError("OpenCV cannot write PNG-in-AVI video here")
            writer.write(pixels)
        finally:
            writer.release()
    return path, width, height


def iter_file(path: str, size: int = SEND_BYTES) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, ErrorCode.UPLOAD_TOO_LARGE, f"the upload exceeds POSE_MAX_UPLOAD_MB ({max_bytes} bytes)")


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(400, ErrorCode.BAD_REQUEST, "invalid Content-Length")
    return int(raw)


async def _drain(request: Request, limit: int, chunks: AsyncIterator[bytes] | None = None) -> None:
    """Read and drop up to ``limit`` more bytes of a refused body, so an ordinary client that is still
    sending gets to read our answer instead of a reset connection. Bigger bodies are cut off, and so
    is a stalled one (the body timeouts apply)."""
    if (_content_length(request) or 0) > limit:
        return
    seen = 0
    try:
        async for chunk in chunks if chunks is not None else body_chunks(request):
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # a consumed, broken or stalled stream: nothing more to drain
        return
