"""What input the service agrees to decode, decided from a file's first bytes, before any decoder runs.

Shared by the web (which refuses bad input with a 4xx before a job exists) and the pipeline child
(which fails such a job as ``bad_input``, whoever inserted it). Standard library only: the web imports
this module and must not pull in torch or OpenCV for it, and worker/pipeline must not import web/.

Two rules live here, each written once:

* **Containers, not descriptions of containers.** FFmpeg opens far more than media files: HLS and
  DASH playlists, ``ffconcat`` lists, SDP files and image-sequence patterns all make it read *other*
  files or URLs named inside them. A client could upload a playlist listing ``/etc/…`` or another
  tenant's video, or learn from the answer whether such a file exists. So only self-contained
  container formats are accepted, recognised by their magic bytes: whatever FFmpeg would have
  guessed from the content or from a file name never matters.
* **Pixel limits.** A 140 KB PNG can declare 12000×12000 pixels (432 MB decoded, several times that
  while resizing); a video can do the same per frame. The size is read from the header and refused
  before decoding.
"""

from __future__ import annotations

import struct

#: Smallest frame side accepted: nothing smaller can show a person the detector could find.
MIN_SIDE = 16
#: Largest frame side accepted (16K); a 1×40M-pixel strip is no photograph either.
MAX_SIDE = 16384
#: Most pixels in one decoded frame: 8K UHD video (33.2 MP) and 40 MP photos pass, a 12000×12000 bomb
#: does not. A decoded BGR frame at the limit is 120 MB.
MAX_PIXELS = 40_000_000

#: The video containers accepted, as named in messages.
VIDEO_CONTAINERS = "MP4/MOV, Matroska/WebM, AVI, MPEG-TS or MPEG-PS"
#: The still-image formats accepted by /pose/hybrid.
IMAGE_FORMATS = "PNG, JPEG or WebP"
#: How many leading bytes :func:`video_container` wants (three MPEG-TS packets).
SNIFF_BYTES = 3 * 188 + 16

#: ISO base media (MP4, MOV, 3GP, M4V) top-level boxes a file may start with: ``ftyp`` in every
#: modern file, the others in old QuickTime files.
_ISO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def video_container(head: bytes) -> str | None:
    """The container format of a file starting with ``head`` (at least :data:`SNIFF_BYTES` of it when
    the file is that long), or None when it is not one of :data:`VIDEO_CONTAINERS`.

    Every format recognised here is self-contained as FFmpeg reads it (MOV external data references
    stay off: FFmpeg's ``enable_drefs`` defaults to false), and all the formats that name other files
    (playlists, concat lists, SDP, XML manifests) are text that cannot start with these bytes."""
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        (box_size,) = struct.unpack(">I", head[:4])
        if box_size in (0, 1) or box_size >= 8:  # 0: to the end of the file; 1: a 64-bit size follows
            return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 2 * 188 + 1 and all(head[i] == 0x47 for i in (0, 188, 376)):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpegps"
    return None


def image_format(head: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` from the first 16 bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header of a PNG, JPEG or WebP image declares it, without decoding; None
    when the format is another one or the header is unreadable."""
    kind = image_format(data[:16])
    try:
        if kind == "png":
            if data[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if kind == "jpeg":
            return _jpeg_size(data)
        if kind == "webp":
            return _webp_size(data)
    except struct.error:  # the header is cut short
        return None
    return None


#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            return None
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def pixel_problem(width: int, height: int) -> str | None:
    """Why a frame of ``width``×``height`` is refused, or None when it is within the limits."""
    if min(width, height) < MIN_SIDE:
        return (
            f"{width}x{height} pixels: frames smaller than {MIN_SIDE} pixels on a side cannot show a person"
        )
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        return (
            f"{width}x{height} pixels is more than this service decodes "
            f"(at most {MAX_PIXELS:,} pixels and {MAX_SIDE} on a side)"
        )
    return None
