"""Query plans as data: ``EXPLAIN (FORMAT JSON)`` and helpers that walk its tree.

Matching the text form of a plan breaks on cosmetic changes (casts, parentheses, a new PostgreSQL
version's wording) and needs an ``or`` for every shape the planner may pick. The JSON form names each
node's type, relation and index, so a test can say what it means: "no sequential scan of pose_jobs",
"pose_jobs is read through one of these indexes".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, text

Plan = dict[str, Any]

#: Node types that read a table's rows through an index.
INDEX_SCANS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Index Scan"})


def explain(conn: Connection, sql: str, params: dict[str, Any]) -> Plan:
    """The root plan node of ``sql`` (not executed), as PostgreSQL's JSON describes it."""
    raw = conn.execute(text("EXPLAIN (FORMAT JSON) " + sql), params).scalar_one()
    document = json.loads(raw) if isinstance(raw, str) else raw
    return document[0]["Plan"]  # type: ignore[no-any-return]


def nodes(plan: Plan) -> Iterator[Plan]:
    """Every node of the tree, depth first (CTEs and subplans included: they are children too)."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def node_types(plan: Plan) -> set[str]:
    return {node["Node Type"] for node in nodes(plan)}


def index_names(plan: Plan) -> set[str]:
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


def seq_scanned(plan: Plan) -> set[str]:
    """The relations read by a sequential scan anywhere in the plan."""
    return {node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"}


def describe(plan: Plan) -> str:
    """One line per node, indented, for assertion messages."""

    def lines(node: Plan, depth: int) -> Iterator[str]:
        where = " ".join(f"{key}={node[key]}" for key in ("Relation Name", "Index Name", "Index Cond") if key in node)
        yield "  " * depth + f"{node['Node Type']} {where}".rstrip()
        for child in node.get("Plans", ()):
            yield from lines(child, depth + 1)

    return "\n".join(lines(plan, 0))
