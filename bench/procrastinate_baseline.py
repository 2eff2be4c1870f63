"""The procrastinate side of ``bench/queue_core.py``: the same no-op job on a mature PostgreSQL queue.

procrastinate (3.x) is what pose-service's queue is measured against: the same PostgreSQL, the same
number of worker processes, one job at a time each (``concurrency=1``), LISTEN/NOTIFY on, the same
polling backstop, logging at INFO to a file like our workers. The task does nothing, so the numbers
are the cost of the queue itself: defer, fetch (``procrastinate_fetch_job_v2``), run, finish.

Timestamps come from procrastinate's own ``procrastinate_events`` table (``deferred``, ``started``,
``succeeded``; each ``at`` is ``now()`` of the transaction that wrote it), the counterpart of
``created_at``/``started_at``/``finished_at`` in ``pose_jobs``.

Worker processes are this module run as ``python -m bench.procrastinate_baseline worker --dsn DSN``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import procrastinate
import psycopg

TASK_NAME = "bench_noop"
QUEUE = "bench"


def make_app(connector: procrastinate.BaseConnector) -> tuple[procrastinate.App, Any]:
    """An app with the no-op task registered under a fixed name (workers and deferrers must agree)."""
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK_NAME, queue=QUEUE)
    def bench_noop(**_: Any) -> None:
        return None

    return app, bench_noop


def apply_schema(dsn: str) -> None:
    app, _ = make_app(procrastinate.SyncPsycopgConnector(conninfo=dsn))
    with app.open():
        app.schema_manager.apply_schema()


class Deferrer:
    """Defers no-op jobs from the benchmark process through procrastinate's own API."""

    def __init__(self, dsn: str) -> None:
        self.app, self.task = make_app(
            procrastinate.SyncPsycopgConnector(conninfo=dsn, min_size=1, max_size=2)
        )
        self.app.open()

    def batch(self, n: int) -> list[int]:
        return list(self.task.batch_defer(*({} for _ in range(n))))

    def one(self) -> int:
        return int(self.task.defer())

    def close(self) -> None:
        self.app.close()


def job_states(conn: psycopg.Connection, first_id: int, last_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status::text, count(*) FROM procrastinate_jobs WHERE id BETWEEN %s AND %s GROUP BY 1",
        (first_id, last_id),
    ).fetchall()
    return {state: int(n) for state, n in rows}


def finished_count(conn: psycopg.Connection, first_id: int, last_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE id BETWEEN %s AND %s "
        "AND status IN ('succeeded', 'failed', 'aborted', 'cancelled')",
        (first_id, last_id),
    ).fetchone()
    return int(row[0])


def span(conn: psycopg.Connection, first_id: int, last_id: int) -> dict[str, float]:
    """Seconds from the first defer to the last start and to the last success, by the DB clock."""
    row = conn.execute(
        """
        SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'started')
                                  - min(at) FILTER (WHERE type = 'deferred')),
               extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')
                                  - min(at) FILTER (WHERE type = 'deferred'))
        FROM procrastinate_events WHERE job_id BETWEEN %s AND %s
        """,
        (first_id, last_id),
    ).fetchone()
    return {"to_last_claim_s": float(row[0]), "to_last_finish_s": float(row[1])}


def pickup_latencies(conn: psycopg.Connection, job_ids: list[int]) -> tuple[list[float], list[float]]:
    """Per job: started - deferred and succeeded - deferred, in seconds (DB clock)."""
    rows = conn.execute(
        """
        SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'started')
                                  - min(at) FILTER (WHERE type = 'deferred')),
               extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')
                                  - min(at) FILTER (WHERE type = 'deferred'))
        FROM procrastinate_events WHERE job_id = ANY(%s) GROUP BY job_id
        """,
        (job_ids,),
    ).fetchall()
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.procrastinate_baseline worker")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--name", default="bench-worker")
    parser.add_argument("--poll-s", type=float, default=2.0, help="polling backstop behind LISTEN/NOTIFY")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app, _ = make_app(procrastinate.PsycopgConnector(conninfo=args.dsn))
    app.run_worker(
        queues=[QUEUE],
        name=args.name,
        concurrency=1,
        listen_notify=True,
        fetch_job_polling_interval=args.poll_s,
        install_signal_handlers=True,
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "worker":
        sys.exit("usage: python -m bench.procrastinate_baseline worker --dsn DSN [--name N] [--poll-s S]")
    sys.exit(worker_main(sys.argv[2:]))
