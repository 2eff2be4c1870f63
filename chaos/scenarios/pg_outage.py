"""A long PostgreSQL outage (≥ 90 s; ``--quick``: 20 s) under ``pose-service serve --workers 2``.

Jobs are running when the server goes away, so their results must wait for it; the workers must
ride the whole outage out (retrying, not exiting) and then finish everything, including jobs
submitted after the server is back. A worker that gives up during the outage strands its job (until
a lease rescue) and, unless serve restarts it, shrinks the pool for good; the check is on the pids,
so a worker that died and was restarted does not count as having ridden the outage out.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from chaos.harness import Scenario, Tally, descendants, submit, tally, wait_final
from chaos.postgres import free_port

NAME = "pg_outage"


def serve_workers(serve_pid: int) -> list[int]:
    """Pids of serve's worker daemons (its children running ``jobs.cli worker``)."""
    found = []
    for pid in descendants(serve_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobs.cli" in cmdline and b"worker" in cmdline:
            found.append(pid)
    return found


def readiness(port: int, within_s: float = 15.0) -> str:
    """/readyz's status, waiting up to ``within_s`` for a 200; on failure the status and its reasons."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            answer = str(response.status_code)
            if response.status_code == 200:
                return answer
            answer += ":" + response.text.replace(" ", "")[:160]
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        if time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def run(quick: bool = False, keep_logs: Path | None = None, *, outage_s: float | None = None,
        settle_s: float = 90.0) -> Tally:
    outage_s = outage_s or (20.0 if quick else 90.0)
    result = Tally(NAME)
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        port = free_port()
        serve = sc.spawn("serve", ["serve", "--workers", "2", "--port", str(port), "--pipeline",
                                   "tests.fake_pipelines:create", "--lease-s", "2", "--heartbeat-s", "0.3",
                                   "--poll-s", "0.5", "--retry-base-s", "0.1", "--shutdown-grace-s", "3"], pg.url)
        deadline = time.monotonic() + 90
        while serve.log().count("worker ready: claiming jobs") < 2:
            if time.monotonic() > deadline or not serve.running():
                raise RuntimeError(f"serve did not start two workers:\n{serve.log()[-3000:]}")
            time.sleep(0.1)
        before = set(serve_workers(serve.pid))
        result.other["readyz_before"] = readiness(port)
        # 1.5 s jobs: both workers are mid-job when the server goes, and finish during the outage
        ids = submit(pg.url, [(f"/chaos/outage/{i}.mp4", sc.job_params(f"outage-{i}", frames=15, frame_s=0.1))
                              for i in range(16)])
        time.sleep(2.0)
        pg.outage(outage_s, mode="fast")
        ids += submit(pg.url, [(f"/chaos/outage/after-{i}.mp4", sc.job_params(f"outage-after-{i}"))
                               for i in range(8)])
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        # the same pids: a worker that died and was restarted by serve does not count as having survived
        now = set(serve_workers(serve.pid))
        survived = len(before & now)
        result.other["outage_s"] = round(outage_s)
        result.other["serve_workers_survived"] = f"{survived}/{len(before)}"
        if now - before:
            result.other["serve_workers_restarted"] = len(now - before)
        ready = readiness(port)
        result.other["readyz_after"] = ready
        if ready != "200":
            result.violations.append(f"/readyz after the outage: {ready}")
        if survived < len(before):
            result.violations.append(f"{len(before) - survived} of serve's workers exited during the outage")
        if not serve.running():
            result.violations.append("serve itself exited")
        result.seconds = sc.elapsed()
    return result
