"""The fault suite in miniature, through the same code as ``make chaos``: nothing lost, nothing run twice.

A kill -9 loop (three workers, one SIGKILLed every 1–2 s and restarted) and PostgreSQL restarts,
fast and immediate, under two workers and a stream of jobs — each on a private PostgreSQL of its own
(chaos.postgres.PrivatePostgres), never on the machine's. The full scenarios: ``make chaos``.
"""

from __future__ import annotations

import pytest

from chaos.harness import Tally
from chaos.scenarios import kill9, pg_restart

pytestmark = pytest.mark.timeout(90)


def _assert_clean(result: Tally) -> None:
    assert result.error is None, result.line()
    assert result.submitted > 0 and result.lost == 0 and result.run_twice == 0, result.line()
    assert not result.violations, result.line()


def test_kill_9_loop_loses_nothing_and_runs_nothing_twice():
    result = kill9.run(jobs=30, fault_budget_s=12.0, settle_s=25.0)
    _assert_clean(result)
    assert result.other["kills"] >= 2, result.line()


def test_postgres_restarts_lose_nothing_and_run_nothing_twice():
    result = pg_restart.run(restarts=4, settle_s=20.0)
    _assert_clean(result)
    assert result.other["restarts"] == "2fast+2immediate"

