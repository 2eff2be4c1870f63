"""docs/analysis.md says what the code does: every angle of angles.ANGLES with its kind and keypoints,
every param with its default, and every spin direction name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from worker.pipeline.analysis.angles import ANGLES
from worker.pipeline.analysis.params import PARAMS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()


def table_rows(first_header: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose first header cell is ``first_header``, by their first cell."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_every_angle_documented_with_its_keypoints() -> None:
    rows = table_rows("name")
    assert list(rows) == [a.name for a in ANGLES]
    for angle in ANGLES:
        _, kind, points, _, zero, positive = rows[angle.name]
        assert kind == angle.kind
        assert re.findall(r"`([^`]+)`", points) == list(angle.points), angle.name
        assert (zero, positive) == (angle.zero, angle.positive), angle.name
    for kind in {a.kind for a in ANGLES}:
        assert f"**{kind}**" in DOC, kind


def test_every_param_documented_with_its_default() -> None:
    rows = table_rows("param")
    assert list(rows) == list(PARAMS.params)
    for name, spec in PARAMS.params.items():
        assert rows[name][1] == f"`{json.dumps(spec.default)}`", name


def test_conventions_named() -> None:
    for word in ("frontside", "backside", "`left`", "`right`", "counter-clockwise seen from above", "unwrapped",
                 "Depth", "Front from back"):
        assert word in DOC, word
