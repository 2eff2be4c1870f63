"""Video uploads streamed from the request straight into PostgreSQL, and probed before a job is made.

The multipart body is fed, chunk by chunk as it arrives, through python-multipart. The bytes of the
``video`` part go through a small bounded channel to a thread that runs JobStore.store_upload (one
transaction; a sync iterable) and also spools them to a temporary file. When the part ends and the
upload is committed, that file is probed with OpenCV (a frame must decode) and deleted. The process
holds a few MiB of a video at any time whatever its size: the channel has backpressure, so a slow
database slows the reading of the socket instead of filling memory.

Past POSE_MAX_UPLOAD_MB the transaction is rolled back (nothing is kept) and the client gets 413. A
body that is not a video is refused with 415 and its stored upload deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from jobs.store import JobStore, UploadTooLarge
from web.errors import ApiError

log = logging.getLogger(__name__)

VIDEO_FIELD = "video"
SEND_BYTES = 1 << 20  # bytes handed to the database thread at a time
CHANNEL_DEPTH = 4  # chunks in flight between the socket and the database
FIELD_LIMIT = 64 * 1024  # bytes of one ordinary form field (params JSON, keys)
MAX_FIELDS = 16
MULTIPART_OVERHEAD = 1 << 20  # what the boundaries and the small fields may add to the video's size
DRAIN_LIMIT = 64 << 20  # after refusing, read at most this much more so the client sees the answer


class _Aborted(Exception):
    """The request ended badly (client gone, parse error, size cap): roll the upload back."""


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
    """A committed, probed upload and the other form fields (as text)."""

    upload_id: int
    size: int
    filename: str | None
    fields: dict[str, str]
    probe: dict[str, Any]


class _MultipartReceiver:
    def __init__(self, request: Request, store: JobStore, max_bytes: int, spool_dir: Path | None) -> None:
        self.request = request
        self.store = store
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
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
        self.send, self.recv = anyio.create_memory_object_stream[bytes](CHANNEL_DEPTH)
        self.complete = False  # set once the whole video part was handed over
        self.upload_id: int | None = None
        self.probe: dict[str, Any] | None = None
        self.store_error: BaseException | None = None

    # ---- python-multipart callbacks (sync, called inside parser.write) --------------------------
    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.part.header_name.lower()] = self.part.header_value
        self.part.header_name, self.part.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise _Aborted("a multipart part has no name")
        self.part.name = name.decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
        content_type = self.part.headers.get(b"content-type")
        self.part.content_type = content_type.decode("latin-1") if content_type else None
        if self.part.name == VIDEO_FIELD:
            if self.video_seen:
                self._refuse(ApiError(422, "invalid_field", "more than one 'video' part"))
                return
            self.video_seen = self.in_video = True
            self.video_name, self.video_type = self.part.filename, self.part.content_type
        elif len(self.fields) >= MAX_FIELDS:
            self._refuse(ApiError(422, "invalid_body", "too many form fields"))

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
                self._refuse(ApiError(413, "field_too_large", f"form field {self.part.name!r} is too large"))

    def on_part_end(self) -> None:
        if self.problem is not None:
            return
        if self.in_video:
            self.in_video = False
            self.video_done = True
            return
        if self.part.name in self.fields:
            self._refuse(ApiError(422, "invalid_field", f"form field {self.part.name!r} given twice"))
            return
        try:
            self.fields[self.part.name] = self.part.data.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(ApiError(422, "invalid_field", f"form field {self.part.name!r} is not UTF-8"))

    def _refuse(self, problem: ApiError) -> None:
        if self.problem is None:
            self.problem = problem

    # ---- the database side (a worker thread) ----------------------------------------------------
    def _chunks(self, spool: Any) -> Iterator[bytes]:
        while True:
            try:
                piece = anyio.from_thread.run(self.recv.receive)
            except anyio.EndOfStream:
                break
            spool.write(piece)
            yield piece
        if not self.complete:
            raise _Aborted("the upload did not complete")

    def _store_and_probe(self) -> None:
        fd, spool_path = tempfile.mkstemp(prefix="pose-upload-", suffix=_suffix(self.video_name), dir=self.spool_dir)
        try:
            with os.fdopen(fd, "wb") as spool:
                upload_id = self.store.store_upload(
                    self._chunks(spool),
                    filename=self.video_name,
                    content_type=self.video_type,
                    max_bytes=self.max_bytes,
                )
            self.upload_id = upload_id
            self.probe = probe_video(spool_path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(spool_path)

    async def _consume(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._store_and_probe)
        except BaseException as exc:  # reported by the producer, after the task group ends
            self.store_error = exc
        finally:
            self.recv.close()

    # ---- the request side -----------------------------------------------------------------------
    async def _flush(self, *, final: bool = False) -> None:
        while len(self.pending) >= SEND_BYTES or (final and self.pending):
            piece = bytes(self.pending[:SEND_BYTES])
            del self.pending[:SEND_BYTES]
            await self.send.send(piece)

    async def receive(self) -> ReceivedUpload:
        content_type = self.request.headers.get("content-type", "")
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, "bad_request", "multipart body without a boundary")
        declared = _content_length(self.request)
        if declared is not None and declared > self.max_bytes + MULTIPART_OVERHEAD:
            await _drain(self.request, DRAIN_LIMIT)
            raise _too_large(self.max_bytes)
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
        stream = self.request.stream()
        body_error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            try:
                await self._feed(parser, stream, tg)
            except BaseException as exc:  # re-raised below, unwrapped by the task group
                body_error = exc
            finally:
                self.send.close()  # the database thread ends: committing if complete, else rolling back
        if body_error is not None:
            raise body_error
        if self.problem is not None:
            await _drain(self.request, DRAIN_LIMIT, stream=stream)
            await self._discard()
            raise self.problem
        if not self.video_seen:
            raise ApiError(422, "missing_field", "multipart body without a 'video' part")
        if self.store_error is not None:
            if isinstance(self.store_error, UploadTooLarge):
                raise _too_large(self.max_bytes)
            raise self.store_error
        assert self.upload_id is not None
        if self.probe is None:
            await anyio.to_thread.run_sync(self.store.delete_upload, self.upload_id)
            raise ApiError(
                415,
                "not_a_video",
                "the upload is not a video OpenCV can decode a frame of (for a still image, use POST /pose/hybrid)",
            )
        return ReceivedUpload(self.upload_id, self.video_size, self.video_name, self.fields, self.probe)

    async def _feed(self, parser: MultipartParser, stream: Any, tg: Any) -> None:
        started = False
        async for chunk in stream:
            try:
                parser.write(chunk)
            except (MultipartParseError, _Aborted) as exc:
                self._refuse(ApiError(400, "malformed_multipart", f"malformed multipart body: {exc}"))
            if self.problem is not None or self.store_error is not None:
                return
            if self.video_seen and not started:
                tg.start_soon(self._consume)
                started = True
            if started:
                try:
                    await self._flush(final=self.video_done)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the database side stopped; store_error says why
        try:
            parser.finalize()
        except MultipartParseError as exc:
            self._refuse(ApiError(400, "malformed_multipart", f"malformed multipart body: {exc}"))
            return
        if self.video_seen and not self.video_done:
            self._refuse(ApiError(400, "malformed_multipart", "the body ended inside the video part"))
            return
        if started:
            try:
                await self._flush(final=True)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            self.complete = True

    async def _discard(self) -> None:
        if self.upload_id is not None:
            await anyio.to_thread.run_sync(self.store.delete_upload, self.upload_id)


async def receive_upload(
    request: Request, store: JobStore, *, max_bytes: int, spool_dir: Path | None = None
) -> ReceivedUpload:
    """Stream the multipart request's ``video`` part into PostgreSQL and probe it; the other parts
    come back as text fields. Raises ApiError (400, 413, 415, 422) and keeps nothing then."""
    return await _MultipartReceiver(request, store, max_bytes, spool_dir).receive()


#: Leading bytes of still-image formats. OpenCV's FFmpeg backend opens these as one-frame "videos"
#: (with a nonsense frame count), so the probe alone would let a photo through as a video; stills
#: belong to /pose/hybrid.
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)


def is_still_image(head: bytes) -> bool:
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def probe_video(path: str) -> dict[str, Any] | None:
    """Width, height, fps and frame count if ``path`` is a video OpenCV can decode a first frame of,
    else None (also for still images)."""
    with open(path, "rb") as f:
        if is_still_image(f.read(16)):
            return None
    import cv2  # late: OpenCV is heavy and only uploads need it

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return {
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
            "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "frames": int(frames) if 0 < frames < 2**31 else None,
        }
    finally:
        cap.release()


def image_to_video(image: bytes, spool_dir: Path | None = None) -> tuple[str, int, int] | None:
    """Encode one still image as a one-frame video file (lossless PNG-in-AVI, 1 fps); returns the
    file's path (the caller deletes it), width and height, or None if the bytes are no image.

    OpenCV can open a .png as a video source too, but reports a nonsense frame count for it; a
    one-frame AVI has an exact count and fps, so the pipeline treats it like any other video."""
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.ndim != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        return None
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    fd, path = tempfile.mkstemp(prefix="pose-image-", suffix=".avi", dir=spool_dir)
    os.close(fd)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"png "), 1.0, (width, height))
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


def _suffix(filename: str | None) -> str:
    ext = os.path.splitext(filename or "")[1]
    return ext if 1 < len(ext) <= 8 and ext[1:].isalnum() else ".bin"


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"the upload exceeds POSE_MAX_UPLOAD_MB ({max_bytes} bytes)")


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "invalid Content-Length") from None


async def _drain(request: Request, limit: int, stream: Any = None) -> None:
    """Read and drop up to ``limit`` more bytes of a refused body, so an ordinary client that is still
    sending gets to read our answer instead of a reset connection. Bigger bodies are cut off."""
    if request.headers.get("content-length") and (_content_length(request) or 0) > limit:
        return
    seen = 0
    try:
        async for chunk in stream if stream is not None else request.stream():
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # a consumed or broken stream: nothing more to drain
        return
