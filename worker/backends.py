"""Which backends this worker can run, and why not the others (issue 15).

The worker advertises the result in ``pose_workers.backends``; the claim statements read it there, so
a job naming a backend is only ever claimed by a worker that has it (a job naming none is its
worker's default backend's). ``pose-service doctor`` prints the same verdicts. The checks cost no
time (files exist, are executable; settings parse): a deeper one (does the interpreter import phalp?)
is the doctor's alone.

- ``blazepose`` (the configured POSE_PIPELINE): a blazepose-default worker has it by definition (its
  child loads it before any claim; if it cannot, the worker claims nothing and says why). A worker
  whose default is phalp has it too when the BlazePose weights are in place.
- ``phalp``: POSE_PHALP_DIR holds track.py and POSE_PHALP_PYTHON is executable (config.py).
"""

from __future__ import annotations

from jobs.settings import Settings
from worker.pipeline.backends import BACKEND_ENV
from worker.pipeline.blazepose import weights
from worker.pipeline.params import BACKENDS
from worker.pipeline.phalp.config import DIR_ENV, OVERRIDES_ENV, PYTHON_ENV, SMPL_ENV, PhalpConfig

#: The BlazePose pipeline: the default of the POSE_PIPELINE setting (another factory, e.g. a test's
#: fake, needs no weights).
POSE_FACTORY: str = Settings.model_fields["pipeline"].default


def phalp_config(settings: Settings) -> PhalpConfig:
    return PhalpConfig(settings.phalp_dir.expanduser() if settings.phalp_dir else None,
                       settings.phalp_python.expanduser() if settings.phalp_python else None,
                       settings.phalp_overrides, settings.smpl_model.expanduser() if settings.smpl_model else None)


def backend_problems(settings: Settings) -> dict[str, str | None]:
    """Each backend's reason it cannot run here (None: it can)."""
    problems = phalp_config(settings).problems()
    out: dict[str, str | None] = {"phalp": "; ".join(problems) if problems else None}
    blazepose: str | None = None
    if settings.pipeline == POSE_FACTORY:
        try:
            weights.model_paths(settings.model_dir)
        except (weights.MissingModels, OSError) as exc:
            blazepose = str(exc)
    out["blazepose"] = blazepose
    return {name: out[name] for name in BACKENDS}


def advertised_backends(settings: Settings) -> list[str]:
    """What the worker writes into ``pose_workers.backends``: its default, and every other that is usable."""
    problems = backend_problems(settings)
    return [name for name in BACKENDS if name == settings.backend or problems[name] is None]


def child_env(settings: Settings) -> dict[str, str]:
    """The backend settings the pipeline child reads from its environment (flags become variables)."""
    env = {BACKEND_ENV: settings.backend, OVERRIDES_ENV: settings.phalp_overrides}
    for name, value in ((DIR_ENV, settings.phalp_dir), (PYTHON_ENV, settings.phalp_python),
                        (SMPL_ENV, settings.smpl_model)):
        if value is not None:
            env[name] = str(value.expanduser())
    return env
