"""The pipeline child misbehaves in every way a real one can; the worker must survive each.

One worker (warm mode), one job per fault, ``max_attempts`` 1 so each ends at once in ``failed`` with
the error kind it must be recorded under:

* deadline passed (a child sleeping; a child ignoring SIGTERM, so only SIGKILL ends it): ``timeout``
* segfault, a non-zero exit: ``crash``; the OOM killer (SIGKILL after a real allocation): ``crash`` or
  a retried resource kind
* MemoryError and a full disk (a real ENOSPC): the host's trouble, not the input's — the kind must be
  one that is retried (``jobs.states.RETRYABLE``), never ``pipeline_error``/``bad_input`` which mean
  "this input or these params are wrong" and are never retried.

A last ordinary job must then succeed on the same worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.harness import Scenario, Tally, connect, submit, tally, wait_final

NAME = "child_faults"


def expected_kinds() -> dict[str, set[str]]:
    """behaviour → the error kinds that are right for it."""
    from jobs.states import RETRYABLE

    host_trouble = {str(k) for k in RETRYABLE} - {"timeout", "worker_lost"}
    return {"sleep": {"timeout"}, "ignore_sigterm": {"timeout"}, "segfault": {"crash"}, "oom": {"crash"} | host_trouble,
            "exit": {"crash"}, "memory_error": host_trouble, "disk_full": host_trouble}


def run(quick: bool = False, keep_logs: Path | None = None, *, settle_s: float = 60.0) -> Tally:
    result = Tally(NAME)
    faults: dict[str, dict[str, Any]] = {
        "sleep": {"behave": "sleep", "seconds": 60},
        "ignore_sigterm": {"behave": "ignore_sigterm", "seconds": 60},
        "segfault": {"behave": "segfault"},
        "oom": {"behave": "oom", "mb": 128},
        "exit": {"behave": "exit", "code": 3},
        "memory_error": {"behave": "memory_error"},
        "disk_full": {"behave": "disk_full"},
    }
    expected = expected_kinds()
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        worker = sc.worker(pg.url, name="w", env={"POSE_KILL_GRACE_S": "1"})
        ids = submit(pg.url, [(f"/chaos/faults/{name}.mp4", params) for name, params in faults.items()],
                     max_attempts=1, timeout_s=1.5)
        [last] = submit(pg.url, [("/chaos/faults/after.mp4", sc.job_params("faults-after"))])
        ids.append(last)
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        with connect(pg.url) as conn:
            rows = dict(conn.execute("SELECT video_path, coalesce(error_kind, state) FROM pose_jobs "
                                     "WHERE id = ANY(%s)", (ids,)).fetchall())
        wrong = []
        for name in faults:
            got = rows.get(f"/chaos/faults/{name}.mp4")
            if got not in expected[name]:
                wrong.append(f"{name}→{got} (want {'/'.join(sorted(expected[name]))})")
        result.other["kinds"] = ",".join(f"{name}:{rows.get(f'/chaos/faults/{name}.mp4')}" for name in faults)
        result.other["worker_alive"] = "yes" if worker.running() else "no"
        if wrong:
            result.other["wrong_kind"] = len(wrong)
            result.violations.append("wrong error kind: " + "; ".join(wrong))
        if rows.get("/chaos/faults/after.mp4") != "succeeded":
            result.violations.append("the job after the faults did not succeed")
        if not worker.running():
            result.violations.append("the worker died")
        result.seconds = sc.elapsed()
    return result
