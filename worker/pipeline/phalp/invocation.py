"""One run of the operator's track.py: a private directory, the input as ``input.mp4``, the exact
command line, and a process that cannot outlive the job.

The old service shelled out with unquoted paths into a shared ``outputs/`` and took the newest pickle
it found there. Here every job gets its own directory (``mkdtemp``: unique, mode 0700) holding
``input.mp4`` and ``out/``; track.py is started with an argument list (no shell) whose every path is
absolute and quoted for Hydra's override grammar, and its result is read from exactly
``out/results/demo_input.pkl`` (results.py). Two jobs, on one host or many, never see each other's
files.

The process runs inside the worker's pipeline child and in the child's process group, so the
worker's deadline, cancel and shutdown handling (a SIGTERM, then SIGKILL, to the whole group) reach
it unchanged; it is started through launch.py, which arms the parent-death signal before exec'ing
the operator's interpreter, so a child that crashes alone does not leave track.py running either.
Its stdout and stderr are read line by line into the job's log (the child's stderr, which its worker
logs and keeps a tail of for crash reports) and the last lines are kept for the error message.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2

from worker.parent_death import PARENT_PID_ENV
from worker.pipeline.contract import BadInput
from worker.pipeline.io.media_checks import SNIFF_BYTES, video_container
from worker.pipeline.io.video_source import VideoInfo, VideoSource
from worker.pipeline.phalp.config import WORK_DIR_ENV, PhalpConfig, override_key

log = logging.getLogger("pose_service.phalp")

#: PHALP confirms a track after this many detections (phalp.n_init); a clip shorter than that would
#: have no track at all, so its run gets ``phalp.n_init=<frames>`` (unless the operator set n_init).
PHALP_N_INIT = 5
#: Lines of track.py's output kept for the error message of a failed run.
TAIL_LINES = 20
_PLAIN = re.compile(r"^[A-Za-z0-9_./+-]+$")


def hydra_value(value: str) -> str:
    """``value`` as a Hydra override value: as is when it is plain, else single-quoted with quotes
    and backslashes escaped (a path with spaces, ``=``, commas or brackets would not parse)."""
    if _PLAIN.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class PreparedInput:
    """``input.mp4`` in the job's directory and what the source container says about it."""

    path: Path
    info: VideoInfo  # width and height as displayed (upright), fps from the container
    frames: int
    converted: bool


def make_work_dir() -> Path:
    """A new private directory for one job, under the worker's scratch directory when it says.

    That directory is the worker's own and its child runs one job at a time, so any ``phalp-*`` left
    there is from an attempt that was killed (deadline, cancel: the child dies without cleaning up)
    and is removed now rather than when the worker stops: PHALP extracts every frame as a JPEG there."""
    base = os.environ.get(WORK_DIR_ENV) or None
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
        for stale in Path(base).glob("phalp-*"):
            log.info("removing %s, left by an attempt that was stopped", stale)
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="phalp-", dir=base))


def prepare_input(source: str, work_dir: Path) -> PreparedInput:
    """Copy an upright MP4 to ``input.mp4``, or convert anything else (track.py reads only ``.mp4``
    files, by name) with OpenCV, frames upright, at the container's frame rate. BadInput for what is
    not a decodable video, as the pose pipeline says it."""
    target = work_dir / "input.mp4"
    with VideoSource(source) as video:  # checks the file and the container; fps and size from it
        info = video.info
        if info.fps is None:
            raise BadInput(f"{source} has no frame rate in its container; the phalp backend needs one for the "
                           "frames' times")
        with open(source, "rb") as fh:
            container = video_container(fh.read(SNIFF_BYTES))
        if container == "mp4" and info.rotation == 0 and info.frame_count:
            shutil.copyfile(source, target)
            return PreparedInput(target, info, info.frame_count, converted=False)
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), info.fps, (info.width, info.height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {target} (mp4v): this OpenCV build lacks an MP4 encoder")
        count = 0
        try:
            for frame in video:  # upright frames (the container's rotation applied)
                writer.write(frame.image)
                count += 1
        finally:
            writer.release()
    return PreparedInput(target, info, count, converted=True)


def track_command(config: PhalpConfig, prepared: PreparedInput, out_dir: Path, work_dir: Path) -> list[str]:
    """The command line: the operator's interpreter running track.py through launch.py, with the
    service's overrides (absolute paths; the whole video: track.py's default end_frame of 1300 would
    cut longer ones; no rendering; Hydra writing nothing outside the job's directory and not changing
    the working directory) and then the operator's own."""
    assert config.python is not None and config.track_py is not None
    extra = config.overrides()
    overrides = [
        f"video.source={hydra_value(str(prepared.path.resolve()))}",
        f"video.output_dir={hydra_value(str(out_dir.resolve()))}",
        "render.enable=false",
        f"video.end_frame={prepared.frames}",
        "hydra.job.chdir=false",
        "hydra.output_subdir=null",
        f"hydra.run.dir={hydra_value(str(work_dir.resolve()))}",
    ]
    if prepared.frames < PHALP_N_INIT and "phalp.n_init" not in {override_key(o) for o in extra}:
        overrides.append(f"phalp.n_init={max(1, prepared.frames)}")
    return [sys.executable, "-m", "worker.pipeline.phalp.launch", "--",
            str(config.python), str(config.track_py.resolve()), *overrides, *extra]


class TrackRun:
    """track.py running; its output goes to the log and a tail is kept."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.command = command
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        log.info("running %s", " ".join(command[4:]))
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, PARENT_PID_ENV: str(os.getpid())},  # launch.py dies with this process
            # same process group as the child: the worker's kill of the group reaches track.py too
        )
        self._reader = threading.Thread(target=self._read, name="track.py-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.tail.append(line)
                log.info("track.py: %s", line)

    def wait(self) -> int:
        """Wait for the exit (the worker's deadline bounds it: it kills the whole group) and the last
        of its output."""
        try:
            code = self.proc.wait()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(timeout=5)
        return code

    def output_tail(self) -> str:
        return "\n".join(self.tail)
