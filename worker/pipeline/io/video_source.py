"""Video decoding in a background thread, with the container's own metadata and upright frames.

Decoding a 1080p H.264 frame costs about as much as a pose inference on the CPU, so a thread decodes
ahead into a small bounded queue while the models run (OpenCV releases the GIL while decoding). The
queue bound keeps memory flat on long videos.

Everything about time comes from the container: the frame rate, the frame count and each frame's
timestamp; nothing assumes 30 fps. Phone videos carry a display rotation instead of rotated pixels;
we read it and rotate the frames ourselves (OpenCV's auto-rotation switched off) so that the
result is upright whatever the OpenCV build does, and report the rotation in the result.

A damaged stretch mid-video makes OpenCV's ``grab`` fail without ending the stream; we keep reading
past it and count the frames we lost, instead of silently stopping there. Inputs that are not
decodable video at all raise :class:`BadInput` with a message a user can act on.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from worker.pipeline.contract import BadInput
from worker.pipeline.io.media_checks import SNIFF_BYTES, VIDEO_CONTAINERS, pixel_problem, video_container

#: Consecutive failed grabs tolerated before the stream is taken to have ended (damaged stretch).
MAX_CONSECUTIVE_FAILURES = 64
_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, with width and height as displayed (after rotation)."""

    width: int
    height: int
    fps: float | None
    frame_count: int | None
    rotation: int


@dataclass(frozen=True)
class Frame:
    """One decoded, upright BGR frame; ``index`` is its position in the stream (gaps mean lost frames)."""

    index: int
    time_s: float
    image: np.ndarray


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a container display rotation (degrees clockwise: 0, 90, 180, 270) to a decoded frame."""
    code = _ROTATIONS.get(rotation % 360)
    return image if code is None else cv2.rotate(image, code)


def _normalise_rotation(value: float) -> int:
    if not math.isfinite(value):
        return 0
    return int(round(value / 90.0)) * 90 % 360


class VideoSource:
    """Opens a video, validates it, and yields :class:`Frame` objects decoded by a background thread.

    Use as a context manager (or call :meth:`close`) so the thread stops when the consumer stops early.
    After iteration, ``frames_decoded``, ``frames_lost`` and ``decode_s`` describe the decode.
    """

    def __init__(
        self, path: str | os.PathLike[str], queue_size: int = 16, frame_range: tuple[int, int | None] | None = None
    ) -> None:
        """``frame_range=(first, stop)``: only frames ``first <= index < stop`` (stop None: to the end),
        with their indices and times in the whole video (a segment job's stretch)."""
        self.path = os.fspath(path)
        self.first, self.stop = frame_range if frame_range is not None else (0, None)
        self._check_file()
        self._cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise BadInput(
                f"{self.path} cannot be opened as a video: it is not a video file, the format is "
                f"unsupported, the file is truncated or damaged, or it contains no frames"
            )
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        rotation = _normalise_rotation(self._cap.get(cv2.CAP_PROP_ORIENTATION_META))
        raw_w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        raw_h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if raw_w <= 0 or raw_h <= 0:
            self._cap.release()
            raise BadInput(f"{self.path} has no video stream with a frame size")
        problem = pixel_problem(raw_w, raw_h)
        if problem is not None:  # before the first frame is decoded: a pixel bomb never allocates
            self._cap.release()
            raise BadInput(f"{self.path} is {problem}")
        width, height = (raw_h, raw_w) if rotation in (90, 270) else (raw_w, raw_h)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(fps) if math.isfinite(fps) and fps > 0 else None,
            frame_count=int(count) if math.isfinite(count) and count > 0 else None,
            rotation=rotation,
        )
        self.frames_decoded = 0
        self.frames_lost = 0
        self.decode_s = 0.0
        self._queue: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _check_file(self) -> None:
        if not os.path.exists(self.path):
            raise BadInput(f"{self.path} does not exist")
        if not os.path.isfile(self.path):
            raise BadInput(f"{self.path} is not a regular file")
        if os.path.getsize(self.path) == 0:
            raise BadInput(f"{self.path} is empty (0 bytes)")
        with open(self.path, "rb") as f:
            head = f.read(SNIFF_BYTES)
        if video_container(head) is None:
            # FFmpeg would also open playlists and concat lists, which read other files: only
            # self-contained containers are decoded, whoever submitted the path (media_checks)
            raise BadInput(
                f"{self.path} cannot be opened as a video: it is not in a video container format this "
                f"service decodes ({VIDEO_CONTAINERS}); playlists and lists of other files are refused"
            )

    # -- decoding thread -------------------------------------------------------------------------------

    def _frame_index(self, time_s: float, last_index: int) -> int:
        """Position in the stream from the timestamp, so frames after a lost stretch keep their numbers."""
        fps = self.info.fps
        if fps is None or time_s < 0:
            return last_index + 1
        index = int(round(time_s * fps))
        return index if index > last_index else last_index + 1

    def _seek(self) -> None:
        """Start near ``first``: FFmpeg seeks to the key frame before it and decodes forward, and any
        frame still before ``first`` is dropped by its index (from its timestamp)."""
        if self.first > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, self.first)

    def _decode(self) -> None:
        cap = self._cap
        last_index = self.first - 1
        failures = 0
        try:
            self._seek()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                ok = cap.grab()
                image = cap.retrieve()[1] if ok else None
                self.decode_s += time.perf_counter() - t0
                if image is None:
                    failures += 1
                    expected = self.info.frame_count
                    more_expected = expected is not None and last_index + 1 < expected
                    if failures >= (MAX_CONSECUTIVE_FAILURES if more_expected else 2):
                        break
                    continue
                failures = 0
                time_s = max(cap.get(cv2.CAP_PROP_POS_MSEC), 0.0) / 1000.0
                if self.first and self.info.fps is not None and round(time_s * self.info.fps) < self.first:
                    continue  # decoded from the key frame before the segment's first frame
                index = self._frame_index(time_s, last_index)
                if self.stop is not None and index >= self.stop:
                    break
                self.frames_lost += index - last_index - 1
                last_index = index
                t0 = time.perf_counter()
                image = upright(image, self.info.rotation)
                self.decode_s += time.perf_counter() - t0
                self.frames_decoded += 1
                self._put(Frame(index, time_s, image))
            expected = self.info.frame_count
            if expected is not None:
                end = expected if self.stop is None else min(expected, self.stop)
                self.frames_lost += max(0, end - (last_index + 1))
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: Frame | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- consumer side ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is not None:
            raise RuntimeError("a VideoSource can be iterated once")
        self._thread = threading.Thread(target=self._decode, name="video-decode", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        if self.frames_decoded == 0:
            raise BadInput(f"{self.path} contains no decodable video frames")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
