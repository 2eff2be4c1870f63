"""A half-open connection: the worker's database traffic black-holed mid-job, sockets left open.

Worker A reaches PostgreSQL through a FreezingProxy, worker B directly. A runs a job; the proxy
freezes. Nothing tells A: its statements just never return. Expected:

* the job is rescued by B once A's lease runs out, and succeeds exactly once;
* A notices within its lease that it can no longer renew it, and stops its child — otherwise A's
  child finishes the same job concurrently with B's (the journal shows the overlap: run twice);
* a job's deadline is enforced on A even while A's database calls hang.
"""

from __future__ import annotations

import time
from pathlib import Path

from chaos.harness import Scenario, Tally, alive, submit, tally, wait_final, wait_running

NAME = "half_open"
LEASE_S = 3.0
KILL_GRACE_S = 1.0
DEADLINE_S = 1.0


def _wait_gone(pidfile: Path, timeout: float) -> tuple[int | None, float | None, float]:
    """Wait for the child that wrote ``pidfile`` to exit.

    Returns (pid, wall-clock time it was seen gone or None, wall-clock time it wrote the pidfile —
    that is, when the attempt's child started working on the job).
    """
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not pidfile.exists():
        return None, None, time.time()
    pid, started = int(pidfile.read_text()), pidfile.stat().st_mtime
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not alive(pid):
            return pid, time.time(), started
        time.sleep(0.05)
    return pid, None, started


def run(quick: bool = False, keep_logs: Path | None = None, *, settle_s: float = 60.0) -> Tally:
    result = Tally(NAME)
    timings = {"lease_s": LEASE_S}
    env = {"POSE_KILL_GRACE_S": str(KILL_GRACE_S)}  # no command-line flag for it
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        proxy = sc.proxy(pg)
        a = sc.worker(proxy.url_for(pg.url), name="frozen", env=env, **timings)

        # ---- 1: the lease. An 8 s job on A; A frozen 1 s in; B must take over, A must let go.
        pid1 = sc.dir / "job1.pid"
        [job1] = submit(pg.url, [("/chaos/half/lease.mp4",
                                  sc.job_params("half-lease", frames=40, frame_s=0.2, pidfile=str(pid1)))])
        if not wait_running(pg.url, job1, 30, a.pid):
            raise RuntimeError("job 1 never ran on the proxied worker")
        b = sc.worker(pg.url, name="direct", env=env, **timings)
        time.sleep(1.0)
        proxy.freeze()
        frozen_at = time.time()
        child, gone_at, _ = _wait_gone(pid1, LEASE_S + KILL_GRACE_S + 8.0)
        stopped_after = None if gone_at is None else gone_at - frozen_at
        bound = LEASE_S + KILL_GRACE_S + 1.0
        result.other["frozen_child_stopped_after_s"] = "never" if stopped_after is None else round(stopped_after, 1)
        if stopped_after is None or stopped_after > bound:
            result.violations.append(f"frozen worker's child ran on past its lease (bound {bound:.0f}s)")
        wait_final(pg.url, [job1], settle_s)
        proxy.thaw()

        # ---- 2: the deadline. A 30 s job with a 1 s deadline on A, frozen at once: A must stop the child
        # at 1 s — well before the 3 s lease would make it let go — although its database calls hang.
        b.stop()
        pid2 = sc.dir / "job2.pid"
        [job2] = submit(pg.url, [("/chaos/half/deadline.mp4",
                                  {"behave": "sleep", "seconds": 30, "pidfile": str(pid2)})],
                        timeout_s=DEADLINE_S, max_attempts=2)
        if not wait_running(pg.url, job2, 30, a.pid):
            raise RuntimeError("job 2 never ran on the proxied worker")
        proxy.freeze()
        _child2, gone_at, started_at = _wait_gone(pid2, DEADLINE_S + KILL_GRACE_S + 8.0)
        ran_for = None if gone_at is None else gone_at - started_at
        deadline_bound = DEADLINE_S + 0.75  # the sleeping child obeys SIGTERM: no kill grace needed
        result.other["deadline_child_ran_s"] = "never-stopped" if ran_for is None else round(ran_for, 1)
        if ran_for is None or ran_for > deadline_bound:
            result.violations.append(f"deadline not enforced while frozen (bound {deadline_bound:.2f}s)")
        sc.worker(pg.url, name="direct2", env=env, **timings)
        wait_final(pg.url, [job2], settle_s)
        proxy.thaw()
        time.sleep(1.0)

        tally(sc, pg.url, [job1, job2], result)
        result.other["frozen_worker_alive"] = "yes" if a.running() else "no"
        if child is not None and alive(child):
            result.violations.append("frozen worker's first child still alive at the end")
        result.seconds = sc.elapsed()
    return result
