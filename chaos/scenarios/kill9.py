"""kill -9 loop: three workers, a random one SIGKILLed every 1–2 s and started again, ≥ 200 jobs.

Every kill strands the job its victim was running (and its pipeline child dies with it); the lease
expires and a live worker returns the job to the queue. Nothing may be lost, nothing may succeed twice.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from chaos.harness import Scenario, Tally, states, submit, tally, wait_final

NAME = "kill9_loop"


def run(quick: bool = False, keep_logs: Path | None = None, *, jobs: int | None = None,
        fault_budget_s: float | None = None, settle_s: float = 60.0) -> Tally:
    n = jobs or (40 if quick else 200)
    fault_budget_s = fault_budget_s or (25.0 if quick else 120.0)
    result = Tally(NAME)
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        workers = [sc.worker(pg.url, name=f"w{i}", wait_ready=False) for i in range(3)]
        for w in workers:
            if not w.wait_for_log("worker ready: claiming jobs", 60):
                raise RuntimeError(f"worker did not start:\n{w.log()[-2000:]}")
        # max_attempts 10: a job unlucky enough to be under three kills in a row is not a loss either way,
        # but the point here is that every job gets done exactly once, so give it the attempts to do so
        ids = submit(pg.url, [(f"/chaos/kill9/{i}.mp4", sc.job_params(f"kill9-{i}", frames=5, frame_s=0.1))
                              for i in range(n)], max_attempts=10)
        kills = 0
        deadline = time.monotonic() + fault_budget_s
        while time.monotonic() < deadline:
            time.sleep(random.uniform(1.0, 2.0))
            if all(s in ("succeeded", "failed", "cancelled") for s in states(pg.url, ids).values()):
                break
            i = random.randrange(len(workers))
            workers[i].kill9()
            kills += 1
            workers[i] = sc.worker(pg.url, name=f"w{i}", wait_ready=False)
        fault_s = sc.elapsed()
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        result.other["kills"] = kills
        result.other["fault_phase_s"] = round(fault_s)
        dead = [w.death() for w in workers if not w.running()]
        if dead:
            result.violations.append(f"workers not running at the end: {dead}")
        result.seconds = sc.elapsed()
    return result
