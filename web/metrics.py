"""GET /metrics: Prometheus text, collected from the database at scrape time.

The numbers are the database's, not this process's: any number of web replicas report the same
queue, and a restart loses nothing. Wait and run times of the jobs that finished in the last hour
are exported as gauge histograms (a window, not an ever-growing counter), which
``histogram_quantile`` reads like any other histogram.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from jobs.store import JobStore
from web.context import db

log = logging.getLogger(__name__)

WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RUN_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class JobCollector:
    """A prometheus-client collector that runs a handful of cheap queries per scrape."""

    def __init__(self, store: JobStore, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pose_database_up", "1 if the job database answered this scrape")
        try:
            metrics = list(self._from_database())
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _from_database(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("pose_jobs", "jobs by state", labels=["state"])
        for state, n in sorted(self.store.count_by_state().items()):
            by_state.add_metric([state], n)
        yield by_state

        queue = self.store.queue_depth()
        yield GaugeMetricFamily("pose_queue_ready", "queued jobs that may run now", value=queue["ready"])
        yield GaugeMetricFamily("pose_queue_depth", "queued jobs, including delayed retries", value=queue["queued"])

        workers = self.store.live_workers(self.lease_s)
        yield GaugeMetricFamily("pose_workers_live", "workers with a fresh heartbeat", value=len(workers))
        busy = sum(1 for w in workers if w.get("current_job_id") is not None)
        yield GaugeMetricFamily("pose_workers_busy", "live workers running a job", value=busy)

        durations = self.store.recent_job_durations()
        yield _histogram(
            "pose_job_wait_seconds",
            "queue wait of jobs that succeeded in the last hour",
            [wait_s for wait_s, _ in durations],
            WAIT_BUCKETS,
        )
        yield _histogram(
            "pose_job_run_seconds",
            "run time of jobs that succeeded in the last hour",
            [run_s for _, run_s in durations],
            RUN_BUCKETS,
        )


def _histogram(name: str, doc: str, values: list[float | None], bounds: tuple[float, ...]) -> Metric:
    samples = sorted(v for v in values if v is not None)
    buckets, i = [], 0
    for bound in bounds:
        while i < len(samples) and samples[i] <= bound:
            i += 1
        buckets.append((_le(bound), float(i)))
    buckets.append(("+Inf", float(len(samples))))
    return GaugeHistogramMetricFamily(name, doc, buckets=buckets, gsum_value=sum(samples))


def _le(bound: float) -> str:
    return str(float(bound))


def make_registry(store: JobStore, lease_s: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(store, lease_s))
    return registry


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics_registry
    body = await db(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
