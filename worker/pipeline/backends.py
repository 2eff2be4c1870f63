"""The pipelines of one child process, by backend (issue 15).

A job runs on the backend it names (``params.backend``) or on its worker's default (POSE_BACKEND, passed
to the child in its environment). ``blazepose`` is the pipeline the worker was configured with
(``--pipeline``, POSE_PIPELINE, a test's fake included); ``phalp`` is always the 4D-Humans/PHALP
pipeline (params.PHALP_FACTORY). The default backend's pipeline is loaded when the child starts, so a
missing checkout or missing weights is the child's ``unavailable`` reason (the worker then claims
nothing and says why in ``pose_workers.problem``); another backend is loaded the first time a job
needs it and kept, as a warm child keeps everything it loaded.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from worker.pipeline.contract import Pipeline
from worker.pipeline.params import BACKENDS, PHALP_FACTORY

#: The child's default backend (the worker's POSE_BACKEND).
BACKEND_ENV = "POSE_BACKEND"


def load_factory(spec: str) -> Any:
    """The callable named ``module:function``."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--pipeline must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


class BackendPipelines:
    """Loads each backend's pipeline once, on first use."""

    def __init__(self, blazepose_factory: str, default_backend: str | None = None) -> None:
        default = default_backend or os.environ.get(BACKEND_ENV) or "blazepose"
        if default not in BACKENDS:
            raise ValueError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {default!r}")
        self.default = default
        self.factories = {"blazepose": blazepose_factory, "phalp": PHALP_FACTORY}
        self._loaded: dict[str, Pipeline] = {}

    def get(self, backend: str | None = None) -> Pipeline:
        """The pipeline of ``backend`` (None: the default), loading it the first time; raises what
        its factory raises (the reason it cannot run) and ValueError for an unknown name."""
        name = backend or self.default
        if name not in self.factories:
            raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
        if name not in self._loaded:
            self._loaded[name] = load_factory(self.factories[name])()
        return self._loaded[name]
