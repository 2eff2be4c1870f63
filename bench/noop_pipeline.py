"""A pipeline that does no work, so a benchmark measures only the queue and the worker around it.

``--pipeline bench.noop_pipeline:create``: the child imports nothing heavy, returns the smallest valid
result document at once and never reports progress, so every millisecond a job takes is spent in
the claim, the child round trip and the finish.
"""

from __future__ import annotations

from typing import Any

from worker.pipeline.contract import Pipeline, ProgressFn

DOCUMENT = {"schema": "pose-service/result@1", "frames": []}


def _noop(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    return dict(DOCUMENT)


def create() -> Pipeline:
    return _noop
