"""Job ``params`` schemas: one declaration of what a pipeline accepts, read by the pipeline itself and
by the web, which refuses a bad job at submit (422) instead of letting it fail later on a worker.

Standard library only, because the web imports it and must never import torch. A pipeline factory
``pkg.mod:create`` declares its schema as ``PARAMS`` in the light companion module ``pkg.mod_params``
(the pose pipeline's is ``worker.pipeline.pose_params``); :func:`schema_for` finds it from the factory
name alone. A pipeline without such a module declares nothing, and any JSON object is accepted for
it, as before.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast


class InvalidParams(ValueError):
    """``params`` that the pipeline would refuse; the message says which one and why."""


@dataclass(frozen=True)
class Param:
    """One parameter: its JSON type (``int``, ``float``, ``bool``, ``str``), default, allowed values or range.
    A ``float`` param also takes a JSON integer (``6`` for ``6.0``)."""

    kind: type
    default: Any
    choices: tuple[Any, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    doc: str = ""

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is not acceptable for ``name``, or None."""
        if value is None and self.default is None:  # an optional param left out
            return None
        # bool is an int in Python but not in JSON: true is no max_people. Bounds are only declared for
        # numbers, so once the kind is checked, ``value`` is one (cast: mypy cannot see through ``kind``)
        kinds: tuple[type, ...] = (int, float) if self.kind is float else (self.kind,)
        if isinstance(value, bool) != (self.kind is bool) or not isinstance(value, kinds):
            return f"{name} must be {_KIND_NAMES.get(self.kind, self.kind.__name__)}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{name} must be one of {', '.join(repr(c) for c in self.choices)}, got {value!r}"
        if self.lo is not None and self.hi is not None and not self.lo <= cast(float, value) <= self.hi:
            return f"{name} must be between {self.lo} and {self.hi}, got {value!r}"
        return None


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


#: The backends a job may ask for (``params.backend``; absent: its worker's POSE_BACKEND). blazepose is
#: the configured pipeline (POSE_PIPELINE); phalp is the 4D-Humans/PHALP mesh tracker (docs/phalp.md),
#: always run by PHALP_FACTORY. Migration 0010's CHECK on ``pose_jobs.backend`` lists the same names.
BACKENDS = ("blazepose", "phalp")
PHALP_FACTORY = "worker.pipeline.phalp.pipeline:create"

#: Params the service reads itself, for whichever pipeline runs: a job's ``segment_s`` overrides
#: POSE_SEGMENT_S (the worker splits a longer video into segment jobs; 0: never split this one);
#: ``backend`` picks what runs it (and which workers may claim it: the column ``pose_jobs.backend``).
#: The worker removes them before the pipeline sees ``params`` (:func:`pipeline_params`); a pipeline
#: schema must not declare these names.
SERVICE_PARAMS: Mapping[str, Param] = {
    "segment_s": Param(int, None, lo=0, hi=86_400,
                       doc="split a video longer than this many seconds into segments run in parallel"),
    "backend": Param(str, None, choices=BACKENDS,
                     doc="what runs the job: blazepose or phalp (absent: the worker's POSE_BACKEND)"),
}


def pipeline_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` without the service's own (what a pipeline is called with)."""
    return {k: v for k, v in (params or {}).items() if k not in SERVICE_PARAMS}


def check_service_params(params: Mapping[str, Any] | None) -> None:
    """InvalidParams for a service param of the wrong type or range (any pipeline, schema or not)."""
    for name, spec in SERVICE_PARAMS.items():
        problem = spec.problem(name, (params or {}).get(name))
        if problem is not None:
            raise InvalidParams(problem)


@dataclass(frozen=True)
class ParamsSchema:
    params: Mapping[str, Param]

    def __post_init__(self) -> None:
        clash = sorted(set(self.params) & set(SERVICE_PARAMS))
        if clash:
            raise ValueError(f"pipeline params {clash} are the service's own (SERVICE_PARAMS)")

    def validate(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every declared param, the given value or its default; InvalidParams for an unknown name or a
        value of the wrong type or range. The service's own params (SERVICE_PARAMS) are checked too
        and left out of the answer."""
        check_service_params(params)
        given = pipeline_params(params)
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            allowed = list(self.params) + list(SERVICE_PARAMS)
            raise InvalidParams(f"unknown pipeline params {unknown}; allowed: {allowed}")
        out: dict[str, Any] = {}
        for name, spec in self.params.items():
            value = given.get(name, spec.default)
            problem = spec.problem(name, value)
            if problem is not None:
                raise InvalidParams(problem)
            out[name] = value
        return out


def schema_for_job(factory: str, params: Mapping[str, Any] | None) -> ParamsSchema | None:
    """The schema a job's ``params`` are checked against at submit: the phalp pipeline's when they name
    that backend, else the configured factory's (a job leaving the backend to its worker is checked
    against POSE_PIPELINE; the phalp pipeline ignores params it does not declare)."""
    if (params or {}).get("backend") == "phalp":
        return schema_for(PHALP_FACTORY)
    return schema_for(factory)


@functools.lru_cache(maxsize=16)
def schema_for(factory: str) -> ParamsSchema | None:
    """The params schema of the pipeline factory ``module:function``, or None when it declares none.

    Imports only the companion ``<module>_params`` module (never the pipeline's own, which may load
    torch). A companion that exists but fails to import is an error, not "no schema"."""
    module = factory.partition(":")[0].strip()
    if not module:
        return None
    name = f"{module}_params"
    try:
        companion = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == name or name.startswith(exc.name + ".")):
            return None
        raise
    schema = getattr(companion, "PARAMS", None)
    if not isinstance(schema, ParamsSchema):
        raise TypeError(f"{name}.PARAMS must be a worker.pipeline.params.ParamsSchema")
    return schema
