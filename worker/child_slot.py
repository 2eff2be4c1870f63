"""Which child runs the next job: one long-lived ``warm`` child, or a ``fresh`` one per job.

Warm children load torch and the models once and serve jobs one after another; they are killed and
respawned after a deadline, cancel or crash, and recycled after ``recycle_after`` jobs so slow leaks
in native libraries cannot accumulate forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from worker.pipeline_child import PipelineChild

log = logging.getLogger(__name__)


class ChildSlot:
    def __init__(
        self,
        *,
        pipeline: str,
        mode: str,
        recycle_after: int,
        env: dict[str, str],
        kill_grace_s: float,
        load_timeout_s: float = 600.0,
    ) -> None:
        if mode not in ("warm", "fresh"):
            raise ValueError(f"worker mode must be 'warm' or 'fresh', got {mode!r}")
        self.pipeline = pipeline
        self.mode = mode
        self.recycle_after = recycle_after
        self.env = env
        self.kill_grace_s = kill_grace_s
        self.load_timeout_s = load_timeout_s
        self.child: PipelineChild | None = None

    def spawn(self, should_stop: Callable[[], bool]) -> PipelineChild:
        child = PipelineChild(
            self.pipeline,
            max_jobs=1 if self.mode == "fresh" else 0,
            env=self.env,
            kill_grace_s=self.kill_grace_s,
        )
        try:
            child.wait_ready(self.load_timeout_s, should_stop)
        except BaseException:
            child.kill(grace_s=0.5)
            raise
        log.info("pipeline child %s ready (%s mode, %s)", child.pid, self.mode, self.pipeline)
        return child

    def acquire(self, should_stop: Callable[[], bool]) -> PipelineChild:
        """A ready child for the next job (the warm one if it is alive)."""
        if self.child is not None and not self.child.alive():
            log.warning("warm child %s died while idle: %s", self.child.pid, self.child.death_reason())
            self.child.close()
            self.child = None
        if self.child is None:
            self.child = self.spawn(should_stop)
        return self.child

    def finished(self, *, healthy: bool) -> None:
        """After a job: keep a healthy warm child, retire everything else."""
        child = self.child
        if child is None:
            return
        child.jobs_served += 1
        if not healthy:
            child.kill()
            self.child = None
        elif self.mode == "fresh" or child.jobs_served >= self.recycle_after:
            if self.mode == "warm":
                log.info("recycling warm child %s after %d jobs", child.pid, child.jobs_served)
            child.stop()
            self.child = None

    def prewarm(self, should_stop: Callable[[], bool]) -> None:
        """Have a loaded child waiting (both modes), so no job's lease pays for loading it."""
        self.acquire(should_stop)

    def will_serve_next(self) -> bool:
        """Whether the current child stays for another job (warm, healthy so far, not due to recycle)."""
        child = self.child
        return (self.mode == "warm" and child is not None and child.alive()
                and child.jobs_served + 1 < self.recycle_after)

    def shutdown(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None
