"""A lost claim reply: the claim commits on the server, its reply never reaches the worker.

One worker (one GPU, one daemon: nobody else to rescue its jobs) reaches PostgreSQL through a
FreezingProxy. Three times the proxy lets a claiming statement (``claim_job`` or the combined
``finish_succeeded_and_claim``) through, swallows the reply, holds the connection silent for a
while and then resets it. The job is now ``running`` under this worker's id, but the worker never
heard of it: unless something notices, it stays that way for ever.
"""

from __future__ import annotations

import time
from pathlib import Path

from chaos.harness import Scenario, Tally, submit, tally, wait_final

NAME = "lost_claim_reply"


def is_claim(sql: str) -> bool:
    """Both claiming statements set a queued row running; nothing else does."""
    return "SET state = 'running'" in sql


def run(quick: bool = False, keep_logs: Path | None = None, *, settle_s: float = 45.0) -> Tally:
    result = Tally(NAME)
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        proxy = sc.proxy(pg)
        worker = sc.worker(proxy.url_for(pg.url), name="w")
        ids: list[int] = []
        # reply swallowed, then reset after 0.5 s / after 3 s (past the 2 s lease) / hung for 5 s
        for round_, hold_s in enumerate((0.5, 3.0, 5.0)):
            # Freeze first, so the reply dropped is that of a claim that finds these jobs queued (an idle
            # worker's polling claim finds nothing, and losing its reply would prove nothing).
            wait_final(pg.url, ids, 20)
            proxy.freeze()
            ids += submit(pg.url, [(f"/chaos/claim/{round_}-{i}.mp4",
                                    sc.job_params(f"claim-{round_}-{i}", frames=3, frame_s=0.1))
                                   for i in range(5)])
            proxy.drop_next_reply(is_claim, count=1, reset_after_s=hold_s)
            proxy.thaw()
            deadline = time.monotonic() + 20
            while proxy.drops_pending and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(hold_s + 1.0)
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        result.other["replies_dropped"] = proxy.dropped_replies
        result.other["worker_alive"] = "yes" if worker.running() else "no"
        if not worker.running():
            result.violations.append("the worker exited")
        result.seconds = sc.elapsed()
    return result
