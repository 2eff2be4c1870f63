"""The background duties' loops, driven by a fake clock and wait: no database, no sleeping.

worker/periodic.py takes the clock and the wait as parameters so that these passes can be counted
exactly; the same duties against a real PostgreSQL (and its outages) are in test_worker_faults.py and
test_worker_resilience.py.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from worker.current_job import CurrentJob
from worker.heartbeat import PROGRESS_WRITE_INTERVAL_S, Heartbeat
from worker.job_rescuer import JobRescuer
from worker.periodic import PeriodicTask


class FakeTime:
    """A clock that only moves when the task waits; ``ticks`` waits later it says "stop"."""

    def __init__(self, ticks: int) -> None:
        self.now = 1000.0
        self.left = ticks
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        if self.left == 0:
            return True
        self.left -= 1
        self.now += seconds
        self.waits.append(seconds)
        return False


class FakeStore:
    """Records the calls the duties make; ``fail_with`` makes every call raise it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_with: BaseException | None = None
        self.cancel: bool | None = False

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with

    def extend_lease(self, job: Any, worker_id: str, lease_s: float) -> bool | None:
        self._call("extend_lease", job.id, lease_s)
        return self.cancel

    def record_progress(self, job: Any, worker_id: str, done: int, total: int | None, lease_s: float) -> bool | None:
        self._call("record_progress", job.id, done, total)
        return self.cancel

    def worker_heartbeat(self, worker_id: str, job_id: int | None) -> list[tuple[int, int]]:
        self._call("worker_heartbeat", job_id)
        return []

    def forget_dead_workers(self) -> None:
        self._call("forget_dead_workers")

    def rescue_expired(self, *, retry_base_s: float, retry_cap_s: float, rescuer_id: str) -> list[tuple[int, str, int]]:
        self._call("rescue_expired", rescuer_id)
        return []


def outage() -> psycopg.OperationalError:
    return psycopg.OperationalError("connection refused")  # no SQLSTATE: the client lost the server


def job(job_id: int = 7) -> Any:
    return SimpleNamespace(id=job_id, attempt=1, cancel_requested=False)


def heartbeat(store: FakeStore, current: CurrentJob, fake: FakeTime, interval_s: float = 2.0) -> Heartbeat:
    return Heartbeat(store, "w1", current, interval_s=interval_s, lease_s=30.0, stop=threading.Event(),  # type: ignore[arg-type]
                     clock=fake.clock, wait=fake.wait)


def test_the_base_runs_before_first_once_then_one_pass_per_period_until_stopped() -> None:
    fake = FakeTime(ticks=3)
    seen: list[str] = []

    class Task(PeriodicTask):
        def before_first(self) -> None:
            seen.append("first")

        def run_once(self) -> None:
            seen.append(f"pass at {self.clock():g}")

    Task("t", period_s=1.5, stop=threading.Event(), clock=fake.clock, wait=fake.wait).run()
    assert seen == ["first", "pass at 1001.5", "pass at 1003", "pass at 1004.5"]
    assert fake.waits == [1.5, 1.5, 1.5]


def test_the_base_waits_on_the_stop_event_by_default() -> None:
    stop = threading.Event()
    stop.set()
    passes: list[int] = []

    class Task(PeriodicTask):
        def run_once(self) -> None:
            passes.append(1)

    Task("t", period_s=3600, stop=stop).run()  # returns at once: already stopped
    assert passes == []


def test_heartbeat_ticks_at_the_progress_interval_and_beats_fully_every_interval() -> None:
    store, current, fake = FakeStore(), CurrentJob(), FakeTime(ticks=8)
    current.start(job())
    beat = heartbeat(store, current, fake, interval_s=2.0)
    assert beat.period_s == PROGRESS_WRITE_INTERVAL_S == 0.5
    beat.run()
    # no progress: only the full beats (every 4th tick of 0.5 s) write anything
    assert store.calls == [("extend_lease", 7, 30.0), ("worker_heartbeat", 7)] * 2


def test_heartbeat_writes_new_progress_on_the_next_tick_without_a_full_beat() -> None:
    store, current, fake = FakeStore(), CurrentJob(), FakeTime(ticks=1)
    current.start(job())
    current.set_progress(5, 10)
    heartbeat(store, current, fake).run()
    assert store.calls == [("record_progress", 7, 5, 10)]


def test_heartbeat_shorter_than_the_progress_interval_ticks_at_its_own_interval() -> None:
    store, current, fake = FakeStore(), CurrentJob(), FakeTime(ticks=2)
    beat = heartbeat(store, current, fake, interval_s=0.2)
    assert beat.period_s == 0.2
    beat.run()
    assert store.calls == [("worker_heartbeat", None)] * 2  # idle worker: every tick is a full beat


def test_heartbeat_rides_out_an_outage_keeps_the_progress_and_logs_it_once(caplog: pytest.LogCaptureFixture) -> None:
    store, current, fake = FakeStore(), CurrentJob(), FakeTime(ticks=4)
    current.start(job())
    current.set_progress(3, None)
    store.fail_with = outage()
    beat = heartbeat(store, current, fake)
    with caplog.at_level(logging.INFO, logger="worker.db_retry"):
        beat.run()
        # every tick retries the unwritten progress; the full beat fails at its first write too
        assert store.calls == [("record_progress", 7, 3, None)] * 4
        assert current.take_progress() == (3, None)  # put back for the next try
        warnings = [r for r in caplog.records if "database unavailable for the heartbeat" in r.getMessage()]
        assert len(warnings) == 1
        store.fail_with = None
        beat._next_full = fake.now  # the next tick is a full beat
        beat.run_once()
    assert any("reachable again for the heartbeat" in r.getMessage() for r in caplog.records)


def test_heartbeat_flags_a_lost_lease_and_a_cancel_request() -> None:
    store, current, fake = FakeStore(), CurrentJob(), FakeTime(ticks=4)
    current.start(job())
    store.cancel = True
    heartbeat(store, current, fake).run()
    assert current.cancel_requested and not current.lost
    store.cancel = None  # the lease is gone: rescued elsewhere
    heartbeat(store, current, FakeTime(ticks=4)).run()
    assert current.lost


def test_rescuer_forgets_dead_workers_once_then_rescues_every_interval() -> None:
    store, fake = FakeStore(), FakeTime(ticks=3)
    JobRescuer(store, "w1", interval_s=10.0, retry_base_s=1.0, retry_cap_s=60.0, stop=threading.Event(),  # type: ignore[arg-type]
               clock=fake.clock, wait=fake.wait).run()
    assert store.calls == [("forget_dead_workers",)] + [("rescue_expired", "w1")] * 3
    assert fake.waits == [10.0] * 3


def test_rescuer_survives_outages_silently_and_other_errors_loudly(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    rescuer = JobRescuer(store, "w1", interval_s=10.0, retry_base_s=1.0, retry_cap_s=60.0,  # type: ignore[arg-type]
                         stop=threading.Event(), wait=FakeTime(ticks=0).wait)
    with caplog.at_level(logging.WARNING, logger="worker.job_rescuer"):
        store.fail_with = outage()
        rescuer.run_once()
        assert caplog.records == []
        store.fail_with = RuntimeError("a bug")
        rescuer.run_once()
    assert [r.getMessage() for r in caplog.records] == ["rescue pass failed"]


def test_a_pass_that_raises_does_not_end_the_duty(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime(ticks=3)
    passes: list[int] = []

    class Task(PeriodicTask):
        def before_first(self) -> None:
            raise psycopg.OperationalError("the database is away at start-up")

        def run_once(self) -> None:
            passes.append(1)
            if len(passes) == 1:
                raise RuntimeError("a bug in one pass")

    with caplog.at_level(logging.ERROR, logger="worker.periodic"):
        Task("t", period_s=1.0, stop=threading.Event(), clock=fake.clock, wait=fake.wait).run()
    assert passes == [1, 1, 1]
    assert len([r for r in caplog.records if "a pass failed" in r.getMessage()]) == 2


def test_rescuer_forgets_dead_workers_again_after_an_hour_and_an_outage_does_not_stop_it() -> None:
    store, fake = FakeStore(), FakeTime(ticks=0)
    rescuer = JobRescuer(store, "w1", interval_s=1800.0, retry_base_s=1.0, retry_cap_s=60.0,  # type: ignore[arg-type]
                         stop=threading.Event(), clock=fake.clock, wait=fake.wait)
    store.fail_with = outage()
    rescuer.run_once()  # the database is away: nothing forgotten, nothing rescued, no exception
    store.fail_with = None
    for _ in range(3):
        rescuer.run_once()
        fake.now += 1800.0
    assert [c[0] for c in store.calls] == ["forget_dead_workers", "forget_dead_workers", "rescue_expired",
                                          "rescue_expired", "forget_dead_workers", "rescue_expired"]
