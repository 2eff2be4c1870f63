"""PostgreSQL restarts, fast and immediate, under two workers and a stream of jobs.

A fast stop disconnects every client cleanly; an immediate one is a crash (the server recovers from
its WAL on start). Jobs keep arriving by SQL throughout, so restarts hit claims, progress writes,
heartbeats and finishes alike.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from chaos.harness import Scenario, Tally, submit, tally, wait_final

NAME = "pg_restarts"


def run(quick: bool = False, keep_logs: Path | None = None, *, restarts: int | None = None,
        settle_s: float = 60.0) -> Tally:
    restarts = restarts or (4 if quick else 10)
    result = Tally(NAME)
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        workers = [sc.worker(pg.url, name=f"w{i}", wait_ready=False) for i in range(2)]
        for w in workers:
            if not w.wait_for_log("worker ready: claiming jobs", 60):
                raise RuntimeError(f"worker did not start:\n{w.log()[-2000:]}")
        ids: list[int] = []
        modes: list[str] = []
        for r in range(restarts):
            batch = [(f"/chaos/pgr/{r}-{i}.mp4", sc.job_params(f"pgr-{r}-{i}", frames=5, frame_s=0.1))
                     for i in range(6)]
            ids += submit(pg.url, batch, max_attempts=10)
            time.sleep(random.uniform(1.0, 2.5))  # let jobs get claimed and run into the restart
            mode = "immediate" if r % 2 else "fast"
            pg.restart(mode)
            modes.append(mode)
        ids += submit(pg.url, [(f"/chaos/pgr/after-{i}.mp4", sc.job_params(f"pgr-after-{i}")) for i in range(6)])
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        result.other["restarts"] = f"{modes.count('fast')}fast+{modes.count('immediate')}immediate"
        dead = [w.death() for w in workers if not w.running()]
        result.other["workers_alive"] = f"{len(workers) - len(dead)}/{len(workers)}"
        if dead:
            result.violations.append(f"workers died: {dead}")
        result.seconds = sc.elapsed()
    return result
