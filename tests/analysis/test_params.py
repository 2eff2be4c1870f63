"""The analysis params: one declaration, checked like the pipelines' (worker/pipeline/params.py)."""

from __future__ import annotations

import pytest

from worker.pipeline.analysis.params import PARAMS
from worker.pipeline.params import InvalidParams


def test_defaults_and_numbers() -> None:
    defaults = PARAMS.validate(None)
    assert defaults["filter"] == "butterworth" and defaults["cutoff_hz"] == 6.0
    assert PARAMS.validate({"cutoff_hz": 4})["cutoff_hz"] == 4  # a JSON integer is a number too


@pytest.mark.parametrize("params", [
    {"cutoff_hz": "6"}, {"cutoff_hz": True}, {"cutoff_hz": 0.0}, {"cutoff_hz": float("nan")},
    {"filter": "kalman"}, {"stance": "mongo"}, {"order": 2.5}, {"max_gap": 3},
])
def test_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidParams):
        PARAMS.validate(params)
