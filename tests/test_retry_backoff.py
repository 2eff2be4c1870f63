"""The retry backoff is one SQL function, used by every statement that re-queues a failure."""

from __future__ import annotations

import psycopg

from jobs.database import libpq_url
from jobs.queries import query


def test_pose_retry_delay_doubles_from_base_up_to_cap_with_jitter(database_url):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for attempt, nominal in ((1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (30, 600)):
            delays = [row[0] for row in conn.execute(
                "SELECT extract(epoch FROM pose_retry_delay(%s, 10, 600))::float8 FROM generate_series(1, 200)",
                (attempt,))]
            assert all(0.5 * nominal <= d <= 1.5 * nominal for d in delays), (attempt, min(delays), max(delays))
            assert max(delays) - min(delays) > 0.5 * nominal, "jittered"


def test_every_statement_that_requeues_a_failure_uses_it():
    for name in ("finish_failed", "rescue_expired"):
        sql = query(name).text
        assert "pose_retry_delay(" in sql and "power(" not in sql, name
