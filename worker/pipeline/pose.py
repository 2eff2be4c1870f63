"""The BlazePose pipeline: ``worker.pipeline.pose:create`` is the factory the worker's child calls.

``create()`` imports torch and builds both models once; the returned :class:`PosePipeline` then serves
any number of jobs (``pipeline(video_path, params, progress)``), following ``contract.py``.

Frames are processed in chunks of a few frames taken from the decoding thread, which is what lets work
be batched where the data dependencies allow:

* ``mode="static"`` (every frame on its own, like MediaPipe's static_image_mode): the detector runs on
  the whole frame and its tiles (blazepose/tiling.py) for all frames of a chunk in one batch, then the
  landmark model on every person of every frame of the chunk in one batch; ids are matched by IoU
  between consecutive frames.
* ``mode="video"`` (default, like MediaPipe's tracking mode): a frame's regions come from the previous
  frame's landmarks, so landmarks run frame by frame, with all people of a frame in one batch. The
  detector is only needed on some frames: the first frame is searched whole (every tile of every
  scale); while fewer than ``max_people`` are tracked, the whole frame is detected every 15 frames and
  one sweep of the tiles is spread over ``search_every`` frames (a few tiles per frame), each quiet
  sweep (nobody new, nobody lost) twice as long as the one before, up to 16 times (tiling.Sweep);
  after a track is lost the whole frame, and squares around each lost person's predicted place, are
  searched. The
  predictable part (the cadence and the sweep) is detected for the whole next chunk in one batch
  ahead of time.

Every person found is counted in a per-track summary (the document's ``tracks``); with ``subject``
other than ``all`` only the chosen athlete's poses are kept (tracking/subject.py).

``progress(done, total)`` is called after every chunk.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from worker.pipeline.blazepose import weights
from worker.pipeline.blazepose.crops import CropWarper
from worker.pipeline.blazepose.detector import Detections, PoseDetector
from worker.pipeline.blazepose.landmarks import USED_OUTPUTS, LandmarkModel
from worker.pipeline.blazepose.tiling import MultiScaleDetector, Sweep, TileGrid, merge_detections
from worker.pipeline.contract import FrameSink, ProgressFn, VideoSpan
from worker.pipeline.io.overlay import OverlayWriter
from worker.pipeline.io.result_document import FrameResult, StreamedFrames, build_document, frame_object
from worker.pipeline.io.video_source import Frame, VideoSource
from worker.pipeline.pose_params import DEFAULT_MAX_PEOPLE, PARAMS
from worker.pipeline.tracking.subject import SubjectPicker, TrackSummary
from worker.pipeline.tracking.tracker import Person, StaticIdMatcher, VideoTracker

#: Frames taken from the decoder per step: enough to batch the detector on the CPU; more on a GPU,
#: where bigger batches are nearly free.
CHUNK_FRAMES = {"cpu": 8, "cuda": 32}
#: A frame's search with at least this many squares is shared with the helper thread (half each).
SPLIT_SQUARES = 8
#: Video mode's default sweep of the tiles (``search_every``): at least this many frames, and at least
#: this many frames per tile, so that on the CPU a sweep costs at most one detector input every sixth
#: frame (quiet sweeps then grow longer); a GPU batches it for next to nothing.
SEARCH_FRAMES = {"cpu": (60, 6.0), "cuda": (15, 0.0)}

#: One step of a mode: this chunk's people per frame; the next chunk (or None) is there to look ahead.
_Step = Callable[[list[Frame], list[Frame] | None], list[list[Person]]]

#: Loads one TFLite file as a batched torch callable on a device, computing only the named outputs.
ModelLoader = Callable[[str, torch.device, Sequence[str] | None], Callable[[torch.Tensor], Sequence[torch.Tensor]]]


@dataclass(frozen=True)
class RunOptions:
    """Per-job options from ``params``, checked against the one declaration in pose_params.PARAMS
    (which the web also checks at submit); anything else in ``params`` is rejected so typos do not
    pass. ``overlay`` is checked here only: it is not a service param (see pose_params)."""

    max_people: int = DEFAULT_MAX_PEOPLE
    device: str = "auto"
    smoothing: bool = True
    mode: str = "video"
    detect_scales: int | None = None
    search_every: int | None = None
    track_grace: int = 30
    subject: str = "all"
    overlay: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> RunOptions:
        params = dict(params or {})
        overlay = params.pop("overlay", None)
        if overlay is not None and not isinstance(overlay, str):
            raise ValueError(f"overlay must be a file path, got {overlay!r}")
        return cls(**PARAMS.validate(params), overlay=overlay)  # InvalidParams is a ValueError


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when torch can see a GPU; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA GPU (use 'auto' or 'cpu')")
    return torch.device(name)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def configure_cpu_threads() -> None:
    """Give torch every core but one, which the decoding thread needs; keep OpenCV's warps serial.

    On small machines this matters more than it seems: with as many torch threads as cores, OpenMP's
    spinning workers and the decoder fight over the same cores and throughput collapses under load.
    A 256x256 warp takes a fraction of a millisecond, less than handing it to a thread pool costs.
    (Video decoding threads are FFmpeg's own and unaffected.)
    """
    torch.set_num_threads(max(1, _cores() - 1))
    cv2.setNumThreads(1)


def _load_torch_model(
    path: str, device: torch.device, outputs: Sequence[str] | None
) -> Callable[[torch.Tensor], Sequence[torch.Tensor]]:
    from worker.pipeline.runtime.tflite_torch import load_tflite

    return load_tflite(path, device=device, outputs=outputs)


@dataclass
class _Models:
    detector: PoseDetector
    landmarks: LandmarkModel


def search_period(tiles: int, device: torch.device, asked: int | None = None) -> int:
    """Frames over which video mode spreads one sweep of ``tiles`` tiles (``asked``: the job's own)."""
    if asked is not None:
        return asked
    least, per_tile = SEARCH_FRAMES.get(device.type, SEARCH_FRAMES["cpu"])
    return max(least, int(np.ceil(per_tile * tiles)))


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Clock:
    inference_s: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> _Clock:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inference_s += time.perf_counter() - self._t0


class PosePipeline:
    """Loads the weights once; each call processes one video into a result document."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        loader: ModelLoader = _load_torch_model,
        backend: str = "torch",
        default_device: str = "auto",
        chunk_frames: int | None = None,
        allow_overlay: bool = False,
    ) -> None:
        self.model_paths = weights.model_paths(model_dir)
        # job params come from API clients; an overlay path would let them write files on the worker's
        # host, so only the standalone `pose-service run --overlay` may ask for one
        self.allow_overlay = allow_overlay
        self.weights_sha256 = weights.weights_sha256(model_dir)
        self.loader = loader
        self.backend = backend
        self.chunk_frames = chunk_frames
        self._models: dict[str, _Models] = {}
        self._lock = threading.Lock()
        self._models_for(resolve_device(default_device))

    def _models_for(self, device: torch.device) -> _Models:
        key = str(device)
        with self._lock:
            if key not in self._models:
                warper = CropWarper(device)
                self._models[key] = _Models(
                    PoseDetector(self.loader(str(self.model_paths["pose_detection"]), device, None), warper),
                    LandmarkModel(
                        self.loader(str(self.model_paths["pose_landmark_full"]), device, USED_OUTPUTS), warper
                    ),
                )
            return self._models[key]

    #: The child hands each job an ``emit_frame`` (contract.py): frames leave as they are done.
    emits_frames = True

    def probe(self, video_path: str, params: dict[str, Any] | None = None) -> VideoSpan | None:
        """The video's frame count and rate from its container, without decoding (contract.py: what
        makes this pipeline splittable); None when the container does not say."""
        with VideoSource(video_path) as source:
            info = source.info
        if info.frame_count is None or info.fps is None:
            return None
        return VideoSpan(info.frame_count, info.fps)

    def __call__(
        self,
        video_path: str,
        params: dict[str, Any] | None = None,
        progress: ProgressFn | None = None,
        emit_frame: FrameSink | None = None,
        frame_range: tuple[int, int | None] | None = None,
    ) -> dict[str, Any]:
        """The result document; with ``emit_frame`` each frame goes to it when done and the document
        comes back without ``frames`` (memory stays flat whatever the video's length). With
        ``frame_range`` only those frames (a segment job's, contract.py)."""
        started = time.perf_counter()
        opts = RunOptions.from_params(params)
        if opts.overlay is not None and not self.allow_overlay:
            raise ValueError("params.overlay writes a file on the worker's host; it is only available to "
                             "`pose-service run --overlay`, not to service jobs")
        device = resolve_device(opts.device)
        models = self._models_for(device)
        clock = _Clock()
        results: list[FrameResult] = []  # only without emit_frame
        emitted, done, last_time_s = 0, 0, None
        # Video mode runs re-detections for the next chunk on this thread while landmarks run on the
        # main one. Only on the CPU (where the decoder leaves part of a core idle) and with a spare core.
        helper = ThreadPoolExecutor(1, "pose-detect-ahead") if device.type == "cpu" and _cores() > 1 else None
        with VideoSource(video_path, frame_range=frame_range) as source:
            info = source.info
            total = info.frame_count
            if total is not None and frame_range is not None:
                total = max(0, min(total, frame_range[1] or total) - frame_range[0])
            overlay = OverlayWriter(opts.overlay, info.width, info.height, info.fps) if opts.overlay else None
            summary = TrackSummary(info.width, info.height)
            picker = None
            if opts.subject != "all":
                picker = SubjectPicker(opts.subject, summary, gone_after=opts.track_grace + 1)

            def out(result: FrameResult) -> None:
                nonlocal emitted, last_time_s
                if emit_frame is not None:
                    emit_frame(frame_object(result))
                    emitted, last_time_s = emitted + 1, result.time_s
                else:
                    results.append(result)

            try:
                grid = TileGrid.for_frame(info.width, info.height, opts.detect_scales)
                if opts.mode == "static":
                    step = self._static_steps(models, grid, opts, clock)
                else:
                    period = search_period(len(grid.tiles), device, opts.search_every)
                    step = self._video_steps(models, grid, period, opts, clock, helper)
                chunk_frames = self.chunk_frames or CHUNK_FRAMES.get(device.type, CHUNK_FRAMES["cpu"])
                chunks = _chunks(source, chunk_frames)
                upcoming = next(chunks, None)
                while upcoming is not None:
                    chunk, upcoming = upcoming, next(chunks, None)
                    people = step(chunk, upcoming)
                    for frame, persons in zip(chunk, people, strict=True):
                        result = FrameResult(frame.index, frame.time_s, persons)
                        summary.add(frame.index, persons)
                        for ready in [result] if picker is None else picker.push(result):
                            out(ready)
                        if overlay is not None:
                            overlay.write(frame.image, persons)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                for ready in [] if picker is None else picker.flush():
                    out(ready)
            finally:
                if helper is not None:
                    helper.shutdown(wait=True, cancel_futures=True)
                models.detector.warper.clear()
                if overlay is not None:
                    overlay.close()
            decode_s, lost = source.decode_s, source.frames_lost
        return build_document(
            width=info.width,
            height=info.height,
            fps=info.fps,
            rotation=info.rotation,
            frames=results if emit_frame is None else StreamedFrames(emitted, last_time_s),
            skipped_frames=lost,
            device=device.type,
            weights_sha256=self.weights_sha256,
            backend=self.backend,
            decode_s=decode_s,
            inference_s=clock.inference_s,
            total_s=time.perf_counter() - started,
            # a segment's tracks are renumbered when it is stitched: its own summary would mislead
            tracks=summary.tracks() if frame_range is None else None,
        )

    # -- modes ---------------------------------------------------------------------------------------------

    @staticmethod
    def _static_steps(models: _Models, grid: TileGrid, opts: RunOptions, clock: _Clock) -> _Step:
        matcher = StaticIdMatcher(grid.width, grid.height)
        search = MultiScaleDetector(models.detector)
        everything = grid.everything()

        def step(chunk: list[Frame], upcoming: list[Frame] | None) -> list[list[Person]]:
            with clock:
                detections = search(chunk, [everything] * len(chunk))
                sources: list[int] = []
                regions: list[np.ndarray] = []
                for i, det in enumerate(detections):
                    r = det.regions()[: opts.max_people]
                    sources.extend([i] * len(r))
                    regions.append(r)
                landmarks = models.landmarks(chunk, sources, np.concatenate(regions) if regions else np.zeros((0, 4)))
                src = np.asarray(sources, dtype=np.int64)
                return [matcher(landmarks.take(np.nonzero(src == i)[0])) for i in range(len(chunk))]

        return step

    @staticmethod
    def _video_steps(
        models: _Models, grid: TileGrid, period: int, opts: RunOptions, clock: _Clock, helper: Executor | None
    ) -> _Step:
        tracker = VideoTracker(grid.width, grid.height, opts.max_people, smoothing=opts.smoothing,
                               grace=opts.track_grace)
        search = MultiScaleDetector(models.detector)
        sweep = Sweep(grid, period)
        ahead: dict[int, Future[list[Detections]]] = {}  # frame index -> detections of its batch
        positions: dict[int, int] = {}  # frame index -> position in that batch
        whole: set[int] = set()  # frames whose detections include the whole frame (the letterbox)
        started = False

        def scheduled(frame: Frame, whole: bool) -> np.ndarray:
            """The predictable squares of a frame: the whole frame (on the cadence, or ``whole``) and
            the tiles whose turn it is in the sweep."""
            tiles = sweep.due(frame.index)
            return np.concatenate([grid.letterbox, tiles]) if whole or tracker.on_cadence(frame.index) else tiles

        def searched(frames: list[Frame], plans: list[np.ndarray]) -> list[tuple[Frame, np.ndarray]]:
            todo = [(f, p) for f, p in zip(frames, plans, strict=True) if len(p)]
            whole.update(f.index for f, p in todo if np.array_equal(p[0], grid.letterbox[0]))
            return todo

        def detect(frames: list[Frame], plans: list[np.ndarray], into: dict[int, Detections]) -> None:
            todo = searched(frames, plans)
            if len(todo) == 1 and helper is not None and len(todo[0][1]) >= SPLIT_SQUARES:
                # one frame's whole search (the first frame's): half of it on the helper thread
                frame, plan = todo[0]
                half = len(plan) // 2
                other = helper.submit(search, [frame], [plan[half:]])
                mine = search([frame], [plan[:half]])[0]
                det = merge_detections([mine, other.result()[0]])
                into[frame.index] = merge_detections([into[frame.index], det]) if frame.index in into else det
            elif todo:
                found = search([f for f, _ in todo], [p for _, p in todo])
                for (frame, _), det in zip(todo, found, strict=True):
                    into[frame.index] = merge_detections([into[frame.index], det]) if frame.index in into else det

        def detect_ahead(frames: list[Frame]) -> None:
            if helper is None:
                return
            todo = searched(frames, [scheduled(f, False) for f in frames])
            if todo:
                future = helper.submit(search, [f for f, _ in todo], [p for _, p in todo])
                for pos, (frame, _) in enumerate(todo):
                    ahead[frame.index] = future
                    positions[frame.index] = pos

        def step(chunk: list[Frame], upcoming: list[Frame] | None) -> list[list[Person]]:
            nonlocal started
            with clock:
                detections: dict[int, Detections] = {}
                for frame in chunk:
                    future = ahead.pop(frame.index, None)
                    if future is not None:
                        detections[frame.index] = future.result()[positions.pop(frame.index)]
                missing_people = 0 < tracker.active < opts.max_people
                if missing_people and helper is None:
                    pending = [f for f in chunk if f.index not in detections]
                    detect(pending, [scheduled(f, False) for f in pending], detections)
                if missing_people and upcoming:
                    detect_ahead(upcoming)
                out: list[list[Person]] = []
                for pos, frame in enumerate(chunk):
                    first = not started
                    if first:  # the first frame: everything, at every scale; that was a whole sweep
                        started = True
                        detect([frame], [grid.everything()], detections)
                        sweep.restart(frame.index + 1, quiet=True)
                    elif tracker.wants_detection(frame.index) and frame.index not in whole:
                        previous = detections.get(chunk[pos - 1].index) if pos > 0 else None
                        if tracker.active == 0 and len(tracker) == 0 and previous is not None and len(previous) == 0:
                            # Nobody was found on the last frame either: detect the rest of the chunk in
                            # one batch rather than frame by frame.
                            rest = [f for f in chunk[pos:] if f.index not in whole]
                            detect(rest, [scheduled(f, True) for f in rest], detections)
                        else:
                            detect([frame], [scheduled(frame, True)], detections)
                    lost = tracker.lost_regions(frame.index)
                    if len(lost):  # look around where the lost people should be
                        detect([frame], [grid.around(lost[:, :2], lost[:, 2])], detections)
                    whole.discard(frame.index)
                    regions = tracker.plan(frame.index, detections.get(frame.index))
                    landmarks = models.landmarks([frame], [0] * len(regions), regions)
                    out.append(tracker.update(frame.time_s, landmarks, frame.image))
                    if tracker.changed and not first:  # somebody came or went: search often again
                        sweep.restart(frame.index + 1)
                return out

        return step


def create(*, allow_overlay: bool = False) -> PosePipeline:
    """The worker's factory: import torch, verify and load both models once (device ``auto``)."""
    configure_cpu_threads()
    return PosePipeline(allow_overlay=allow_overlay)
