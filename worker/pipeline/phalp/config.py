"""Where the operator's 4D-Humans lives, and whether the phalp backend can run with it.

Nothing of 4D-Humans is ours: the checkout (POSE_PHALP_DIR, with its ``track.py``), its Python
environment (POSE_PHALP_PYTHON: torch, hmr2, phalp, detectron2 and their weights) and any extra Hydra
overrides (POSE_PHALP_OVERRIDES) are the operator's. The worker hands these settings to its pipeline
child in the environment (worker/daemon.py), so this module reads them from there; ``pose-service
doctor`` and the worker's advertisement of its backends (worker/backends.py) call :meth:`problems`
with the same rules, so "usable" means one thing everywhere.

Standard library only: the worker and the doctor import it without loading anything heavy.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DIR_ENV = "POSE_PHALP_DIR"
PYTHON_ENV = "POSE_PHALP_PYTHON"
OVERRIDES_ENV = "POSE_PHALP_OVERRIDES"
SMPL_ENV = "POSE_SMPL_MODEL"
#: Where the pipeline makes each job's private work directory (the worker's own scratch directory).
WORK_DIR_ENV = "POSE_PHALP_WORK_DIR"

#: The overrides the service sets itself on every run (worker/pipeline/phalp/invocation.py): an
#: operator's override of one of them would make the run read or write somewhere else than the job's
#: private directory, or cut the video, so it is refused.
RESERVED = ("video.source", "video.output_dir", "video.end_frame", "render.enable", "hydra.job.chdir",
            "hydra.output_subdir", "hydra.run.dir")


class PhalpUnavailable(RuntimeError):
    """The phalp backend cannot run on this host; the message says why and what to set."""


def override_key(override: str) -> str:
    """``video.source`` of ``video.source=/x``, ``+a.b=1`` or ``~a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


@dataclass(frozen=True)
class PhalpConfig:
    checkout: Path | None
    python: Path | None
    overrides_text: str = ""
    smpl_model: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PhalpConfig:
        env = os.environ if env is None else env

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value).expanduser() if value else None

        return cls(path(DIR_ENV), path(PYTHON_ENV), env.get(OVERRIDES_ENV, ""), path(SMPL_ENV))

    @property
    def track_py(self) -> Path | None:
        return None if self.checkout is None else self.checkout / "track.py"

    def overrides(self) -> tuple[str, ...]:
        """The operator's extra overrides, one argument each; ValueError for bad quoting."""
        return tuple(shlex.split(self.overrides_text))

    def problems(self) -> list[str]:
        """Why track.py cannot be run with these settings (empty: it can). Only checks what costs no
        time: :meth:`import_problem` runs the interpreter."""
        out: list[str] = []
        if self.checkout is None:
            out.append(f"{DIR_ENV} is not set (a 4D-Humans checkout, the directory holding track.py)")
        elif not self.checkout.is_dir():
            out.append(f"{DIR_ENV}={self.checkout} is not a directory")
        elif self.track_py is not None and not self.track_py.is_file():
            out.append(f"{DIR_ENV}={self.checkout} has no track.py: is it a 4D-Humans checkout?")
        if self.python is None:
            out.append(f"{PYTHON_ENV} is not set (the interpreter of the environment 4D-Humans is installed in)")
        elif not self.python.is_file() or not os.access(self.python, os.X_OK):
            out.append(f"{PYTHON_ENV}={self.python} is not an executable file")
        try:
            overrides = self.overrides()
        except ValueError as exc:
            out.append(f"{OVERRIDES_ENV} cannot be split into arguments: {exc}")
        else:
            taken = sorted({override_key(o) for o in overrides} & set(RESERVED))
            if taken:
                out.append(f"{OVERRIDES_ENV} may not set {', '.join(taken)}: the service sets them for every job")
        return out

    def require(self) -> None:
        """PhalpUnavailable with every problem, or nothing."""
        problems = self.problems()
        if problems:
            raise PhalpUnavailable("; ".join(problems))

    def import_problem(self, timeout_s: float = 120.0) -> str | None:
        """Whether the interpreter imports what track.py needs (``phalp``, ``hmr2``, ``joblib``):
        None when it does, else its last error line. Slow (torch loads), so only the doctor asks."""
        if self.python is None:
            return f"{PYTHON_ENV} is not set"
        try:
            done = subprocess.run([str(self.python), "-c", "import joblib, phalp, hmr2"], capture_output=True,
                                  text=True, timeout=timeout_s, cwd=self.checkout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self.python} could not be run: {exc}"
        if done.returncode == 0:
            return None
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"{self.python} cannot import joblib, phalp and hmr2: {last}"
