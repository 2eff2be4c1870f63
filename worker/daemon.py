"""The worker daemon: wait for work, claim it, run it in a supervised child, record the outcome.

Threads: the main one claims and supervises; ``Listener`` wakes it on NOTIFY and relays cancel
requests; ``Heartbeat`` keeps the lease; ``JobRescuer`` returns jobs of dead workers to the queue.
SIGTERM/SIGINT stop claiming, give the running job ``shutdown_grace_s`` to finish, then kill it and
release it to the queue without spending an attempt.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from jobs.database import ensure_schema_current
from jobs.job import Job
from jobs.log_setup import bind_context, log_context
from jobs.settings import Settings
from jobs.states import ErrorKind
from jobs.store import JobStore, NotOwned, Outcome
from worker import analysis_job
from worker.attempt import AttemptControls, AttemptLimits, AttemptOutcome, AttemptStatus, run_attempt
from worker.backends import advertised_backends
from worker.backends import child_env as backend_env
from worker.child_protocol import JobRequest
from worker.child_slot import ChildSlot
from worker.current_job import CurrentJob
from worker.db_retry import describe, is_transient, with_db_retry
from worker.exhaustion import exhausted
from worker.frame_writer import FrameWriter
from worker.heartbeat import Heartbeat
from worker.input_staging import InputRefused, staged_video
from worker.job_rescuer import JobRescuer
from worker.listener import Listener
from worker.pipeline.params import pipeline_params
from worker.pipeline.phalp.config import WORK_DIR_ENV as PHALP_WORK_DIR_ENV
from worker.pipeline_child import ChildDied
from worker.segments import plan_segments
from worker.stitch import CannotStitch, stitch

log = logging.getLogger(__name__)

HEALTHY_FAILURES = frozenset({ErrorKind.BAD_INPUT, ErrorKind.PIPELINE_ERROR})
#: Outcomes after which a warm child is as good as before (it answered; nothing was killed).
HEALTHY_ENDINGS = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.SPLIT})


def make_worker_id(gpu: str | None) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{'gpu' + gpu if gpu is not None else 'cpu'}:{uuid.uuid4().hex[:6]}"


class WorkerDaemon:
    def __init__(self, settings: Settings, database_url: str, *, gpu: str | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.gpu = gpu
        self.worker_id = make_worker_id(gpu)
        self.store = JobStore.connect(database_url, pool_size=4)  # claims, heartbeat, rescuer, frames
        self.stop = threading.Event()  # no more claims
        self.halt = threading.Event()  # background threads end
        self.wake = threading.Event()
        self._shutdown_deadline: float | None = None
        self.current = CurrentJob()
        self.work_dir = settings.home / "work" / self.worker_id.replace(":", "_")
        child_env: dict[str, str] = {"POSE_LOG_LEVEL": settings.log_level}
        if gpu is not None:
            child_env["CUDA_VISIBLE_DEVICES"] = gpu
        if settings.model_dir is not None:
            child_env["POSE_MODEL_DIR"] = str(settings.model_dir)
        child_env.update(backend_env(settings))  # the default backend and the phalp settings (docs/phalp.md)
        child_env[PHALP_WORK_DIR_ENV] = str(self.work_dir)  # phalp jobs' private directories go here
        self.slot = ChildSlot(
            pipeline=settings.pipeline,
            mode=settings.worker_mode,
            recycle_after=settings.recycle_after,
            env=child_env,
            kill_grace_s=settings.kill_grace_s,
        )
        # analysis jobs (worker/analysis_job.py): a child that loads no model, started on first use
        self.analysis_slot = analysis_job.child_slot(child_env, recycle_after=settings.recycle_after,
                                                     kill_grace_s=settings.kill_grace_s)
        self.heartbeat = Heartbeat(self.store, self.worker_id, self.current, interval_s=settings.heartbeat_s,
                                   lease_s=settings.lease_s, stop=self.halt)
        self.jobs_done = 0
        self._spawn_failures = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    def request_shutdown(self, reason: str = "signal") -> None:
        if self._shutdown_deadline is None:
            self._shutdown_deadline = time.monotonic() + self.settings.shutdown_grace_s
            log.info("shutting down (%s): no new jobs; the running one has %.0fs to finish",
                     reason, self.settings.shutdown_grace_s)
        else:
            self._shutdown_deadline = time.monotonic()  # a second signal: stop now
        self.stop.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.request_shutdown(signal.Signals(signum).name))

    def run(self) -> int:
        bind_context(worker_id=self.worker_id)
        with_db_retry(lambda: ensure_schema_current(self.store.engine), "check the schema", give_up=self.stop.is_set)
        log.info("worker starting: host=%s pid=%s gpu=%s mode=%s pipeline=%s", socket.gethostname(),
                 os.getpid(), self.gpu, self.settings.worker_mode, self.settings.pipeline)
        backends = advertised_backends(self.settings)  # the claim statements read them from pose_workers
        log.info("backends: %s (default %s)", ", ".join(backends), self.settings.backend)
        with_db_retry(lambda: self.store.register_worker(self.worker_id, host=socket.gethostname(), pid=os.getpid(),
                                                         gpu=self.gpu, mode=self.settings.worker_mode,
                                                         backends=backends),
                      "register the worker", give_up=self.stop.is_set)
        listener = Listener(self.database_url, on_queued=self.wake.set, on_cancel=self._on_cancel, stop=self.halt)
        threads: list[threading.Thread] = [
            listener,
            self.heartbeat,
            JobRescuer(self.store, self.worker_id, interval_s=max(0.5, self.settings.lease_s / 3),
                       retry_base_s=self.settings.retry_base_s, retry_cap_s=self.settings.retry_cap_s,
                       stop=self.halt),
        ]
        for thread in threads:
            thread.start()
        try:
            self._child_ready()
            listener.connected.wait(timeout=5.0)
            log.info("worker ready: claiming jobs")
            self._loop()
        finally:
            self.slot.shutdown()
            self.analysis_slot.shutdown()
            self.halt.set()
            with contextlib.suppress(Exception):
                self.store.worker_stopped(self.worker_id)
            for thread in threads:
                thread.join(timeout=2)
            shutil.rmtree(self.work_dir, ignore_errors=True)  # this worker's private scratch files
            self.store.close()
            log.info("worker stopped after %d jobs", self.jobs_done)
        return 0

    def _loop(self) -> None:
        """Claim and process until told to stop. Nothing that goes wrong with one job, or with the
        database, ends the loop: an outage is waited out, anything else is logged and backed off."""
        next_job: Job | None = None
        failures = 0
        while not self.stop.is_set():
            job, next_job = next_job, None
            try:
                if job is None:
                    self.wake.clear()
                    if not self._child_ready():
                        continue
                    job = self._claim()
                    if job is None:
                        self.wake.wait(self.settings.poll_s)
                        continue
                next_job = self.process(job)
                failures = 0
            except Exception as exc:
                if self.stop.is_set() and is_transient(exc):
                    break  # shutting down during an outage: what was claimed is rescued by its lease
                with self.current.ownership:  # a job it still holds goes back with the next heartbeat
                    self.current.clear()
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.exception("worker loop error; carrying on in %.1fs", delay)
                self.stop.wait(delay)
        if next_job is not None:  # claimed together with the last result, then told to stop
            with log_context(job_id=next_job.id, attempt=next_job.attempt):
                self._record(next_job, AttemptOutcome(AttemptStatus.RELEASED), None)

    def _claim(self) -> Job | None:
        """The next job, made current in the same breath (see CurrentJob.ownership)."""

        def claim_once() -> Job | None:
            with self.current.ownership:
                job = self.store.claim(self.worker_id, self.settings.lease_s)
                if job is not None:
                    self.current.start(job)
                return job

        return with_db_retry(claim_once, "claim a job", give_up=self.stop.is_set)

    def _child_ready(self) -> bool:
        """Start the pipeline child before claiming, so loading torch and the models never happens
        while a job's lease runs. A child that cannot start is retried with backoff, and its reason
        is recorded on the worker's row (``problem``) for /readyz and /v1/pool."""
        try:
            self.slot.prewarm(self.stop.is_set)
        except Exception as exc:
            self._spawn_failures += 1
            delay = min(60.0, 0.5 * 2 ** min(self._spawn_failures, 7))
            if not self.stop.is_set():
                log.error("pipeline child failed to start: %s; retrying in %.0fs", exc, delay)
                self._set_problem(f"pipeline cannot start: {exc}")
            self.stop.wait(delay)
            return False
        if self._spawn_failures:
            self._spawn_failures = 0
            self._set_problem(None)
        return True

    def _set_problem(self, problem: str | None) -> None:
        try:
            self.store.set_worker_problem(self.worker_id, problem)
        except Exception as exc:  # noqa: BLE001 - only a report; the retry loop goes on regardless
            log.warning("could not record the worker's problem: %s", describe(exc))

    def _on_cancel(self, job_id: int) -> None:
        if self.current.request_cancel(job_id):
            log.info("cancel request received for job %s", job_id)

    # ---- one job -------------------------------------------------------------------------------
    def process(self, job: Job) -> Job | None:
        """Run one job and record its outcome; returns the next job when it was claimed in the same
        statement that recorded this one's success (warm child staying, not shutting down)."""
        with log_context(job_id=job.id, attempt=job.attempt):
            log.info("claimed job (priority %s, attempt %s/%s)%s", job.priority, job.attempt, job.max_attempts,
                     f" segment {job.segment_index} of job {job.parent_id}" if job.parent_id is not None else
                     f" to stitch its {job.segment_count} segments" if job.is_split else "")
            if job.is_split:
                self._stitch(job)
                self.jobs_done += 1
                return None
            if job.kind == "analysis":
                return self._analyse(job)
            result_path = self.work_dir / f"job{job.id}-a{job.attempt}.json"
            frames_path = result_path.with_name(result_path.name + ".frames")
            outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.CRASH, "worker error before the attempt ended")
            writer = FrameWriter(self.store, job, self.worker_id, frames_path, give_up=self._grace_over)
            try:
                outcome = self._attempt(job, result_path, writer)
                return self._record(job, outcome, result_path, writer)
            finally:
                writer.abandon()
                if self.current.job is job:  # _record did not get to hand it over
                    with self.current.ownership:
                        self.current.clear()
                for path in (result_path, result_path.with_name(result_path.name + ".tmp"), frames_path):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                self.jobs_done += 1
                # retiring a child (fresh mode, recycling, after a kill) waits for it to exit:
                # done after the outcome is recorded, so it never delays finished_at
                self.slot.finished(healthy=outcome.status in HEALTHY_ENDINGS
                                   or (outcome.status is AttemptStatus.FAILED and outcome.kind in HEALTHY_FAILURES))

    def _grace_over(self) -> bool:
        return self._shutdown_deadline is not None and time.monotonic() >= self._shutdown_deadline

    def _attempt(self, job: Job, result_path: Path, writer: FrameWriter) -> AttemptOutcome:
        limits = self._limits(job)
        controls = AttemptControls(
            cancel_requested=lambda: self.current.cancel_requested or self._lease_gone(),
            shutdown_deadline=lambda: self._shutdown_deadline,
            report_progress=self.current.set_progress,  # the heartbeat writes it: supervision never waits
            frames_ready=writer.announce,  # the writer's thread stores them: supervision never waits
        )
        try:
            with staged_video(self.store, job, self.work_dir, self.settings.media_roots) as video_path:
                self.work_dir.mkdir(parents=True, exist_ok=True)
                child = self.slot.acquire(lambda: self._shutdown_deadline is not None
                                          and time.monotonic() >= self._shutdown_deadline)
                request = JobRequest(
                    job.id, video_path, pipeline_params(job.params), str(result_path), str(writer.spool_path),
                    frame_range=(job.segment_first or 0, job.segment_stop) if job.parent_id is not None else None,
                    split_after_s=self._segment_s(job) or None if job.parent_id is None else None,
                    backend=self._backend(job))
                outcome = run_attempt(child, request, limits, controls)
        except InputRefused as exc:
            outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.BAD_INPUT, str(exc))
        except ChildDied as exc:  # the child could not even start or was stopped while loading
            status = AttemptStatus.RELEASED if self.stop.is_set() else AttemptStatus.FAILED
            outcome = AttemptOutcome(status, exc.kind, str(exc))
        except TimeoutError as exc:
            outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.TIMEOUT, str(exc))
        except Exception as exc:  # staging the input or starting the child failed on this host
            if is_transient(exc):
                log.warning("database unavailable while staging the input (%s); giving the attempt back",
                            describe(exc))
                outcome = AttemptOutcome(AttemptStatus.RELEASED)
            elif (what := exhausted(exc)) is not None:
                log.warning("could not stage the input: %s", what)
                outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.RESOURCE_EXHAUSTED,
                                         f"staging the input: {what}")
            else:
                log.exception("attempt could not run")
                outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.CRASH,
                                         f"worker could not run the attempt: {exc}")
        return outcome

    def _limits(self, job: Job) -> AttemptLimits:
        """A job's own timeout_s is a hard total; the default stretches with the video's frame count."""
        settings = self.settings
        # track.py reports no progress while it runs: a phalp job is bounded by its total deadline alone
        stall_s = math.inf if self._backend(job) == "phalp" else settings.stall_s
        return (AttemptLimits(job.timeout_s, stall_s) if job.timeout_s else
                AttemptLimits(settings.timeout_s, stall_s, settings.timeout_per_frame_s))

    def _backend(self, job: Job) -> str:
        """The backend that runs ``job``: its params.backend, else this worker's default."""
        named = job.params.get("backend") if isinstance(job.params, dict) else None
        return str(named) if named else self.settings.backend

    def _analyse(self, job: Job) -> Job | None:
        """An analysis job (worker/analysis_job.py): its child, then the analysis stored fenced by the
        attempt, then the outcome recorded like any job's."""
        result_path = self.work_dir / f"job{job.id}-a{job.attempt}.json"
        tracks_path = result_path.with_name(result_path.name + ".tracks")
        outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.CRASH, "worker error before the attempt ended")
        controls = AttemptControls(cancel_requested=lambda: self.current.cancel_requested or self._lease_gone(),
                                   shutdown_deadline=lambda: self._shutdown_deadline,
                                   report_progress=self.current.set_progress)
        try:
            outcome = analysis_job.run(self.store, job, self.analysis_slot, self.work_dir, result_path, tracks_path,
                                       self._limits(job), controls, self._grace_over)
            if outcome.status is AttemptStatus.SUCCEEDED and not self.current.lost:
                try:
                    owned = with_db_retry(lambda: analysis_job.save(self.store, job, self.worker_id, result_path,
                                                                    tracks_path),
                                          "store the analysis", give_up=self._grace_over)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("shutting down before the database came back: the analysis is not stored; "
                                    "the job returns to the queue when its lease expires")
                        return None
                    outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.RESULT_REJECTED,
                                             f"storing the analysis failed: {describe(exc)}",
                                             outcome.frames_done, outcome.frames_total)
                else:
                    if not owned:
                        log.warning("the job was rescued by another worker while its analysis was stored; "
                                    "not recording")
                        return None
            return self._record(job, outcome, result_path)
        finally:
            if self.current.job is job:
                with self.current.ownership:
                    self.current.clear()
            for path in (result_path, result_path.with_name(result_path.name + ".tmp"),
                         *analysis_job.output_files(tracks_path)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self.jobs_done += 1
            self.analysis_slot.finished(healthy=outcome.status in HEALTHY_ENDINGS
                                        or (outcome.status is AttemptStatus.FAILED
                                            and outcome.kind in HEALTHY_FAILURES))

    def _segment_s(self, job: Job) -> float:
        """How long a stretch of video one job takes before it is split (0: never split it)."""
        own = job.params.get("segment_s") if isinstance(job.params, dict) else None
        return float(own) if own is not None else self.settings.segment_s

    def _stitch(self, job: Job) -> None:
        """The parent's last step: its segments' frames become its own and it succeeds, in one
        transaction (worker/stitch.py), repeated through outages like any outcome; a stitch that
        cannot be done fails the job."""

        def once() -> Outcome:
            outcome = stitch(self.store, job, self.worker_id)
            with self.current.ownership:
                self.current.clear()
            return outcome

        self.heartbeat.finishing.set()  # once the stitch committed, "not running any more" is its success
        try:
            with_db_retry(once, "stitch the segments", give_up=self._grace_over)
            log.info("job succeeded (stitched from %s segments)", job.segment_count)
            return
        except NotOwned:
            log.warning("job no longer belonged to this worker when its stitch was to be recorded")
            with self.current.ownership:
                self.current.clear()
            return
        except Exception as exc:
            if is_transient(exc):
                log.warning("shutting down before the database came back: the stitch is not recorded; the job "
                            "returns to the queue when its lease expires")
                return
            log.exception("stitching the segments failed")
            message = str(exc) if isinstance(exc, CannotStitch) else describe(exc)
        finally:
            self.heartbeat.finishing.clear()
        self._record(job, AttemptOutcome(AttemptStatus.FAILED, ErrorKind.PIPELINE_ERROR,
                                         f"stitching the segments failed: {message}"), None)

    def _lease_gone(self) -> bool:
        """True once the lease has gone unconfirmed for longer than it lasts: another worker may
        have rescued the job by now, so this one stops it rather than run it twice."""
        silent_s = self.current.lease_unconfirmed_for()
        if silent_s <= self.settings.lease_s:
            return False
        job = self.current.job
        if job is not None and self.current.mark_lost(job.id, job.attempt):
            log.error("the job's lease could not be renewed for %.0fs (database unreachable); another worker "
                      "may rescue it, so it is stopped here", silent_s)
        return True

    def _record(
        self, job: Job, outcome: AttemptOutcome, result_path: Path | None, writer: FrameWriter | None = None
    ) -> Job | None:
        """Write the attempt's outcome, however long the database is away; on success, claim the
        next job in the same statement when the warm child will serve it (one commit per job).

        Only a shutdown whose grace has run out gives up (the lease then returns the job to the
        queue). A result PostgreSQL refuses fails the attempt as ``result_rejected`` instead of
        being re-sent forever."""
        if self.current.lost:
            log.warning("the job's lease was lost while it ran here (rescued elsewhere, or not renewable); "
                        "not recording (%s)", outcome.status)
            return None
        if writer is not None and outcome.status is not AttemptStatus.SUCCEEDED:
            writer.abandon()
        elif writer is not None:
            writer.finish()  # the last frames, waiting out an outage like the outcome itself
            if writer.lost:
                log.warning("the job was rescued by another worker while its frames were stored; not recording")
                return None
            if writer.error is not None and is_transient(writer.error):
                log.warning("shutting down before the database came back: the frames and the outcome are not "
                            "recorded; the job returns to the queue when its lease expires")
                return None
            if writer.error is not None:
                kind = ErrorKind.RESOURCE_EXHAUSTED if exhausted(writer.error) else (
                    ErrorKind.CRASH if isinstance(writer.error, (OSError, ValueError)) else ErrorKind.RESULT_REJECTED)
                outcome = AttemptOutcome(AttemptStatus.FAILED, kind,
                                         f"storing the frames failed after {writer.stored}: {describe(writer.error)}",
                                         outcome.frames_done, outcome.frames_total)
        document: str | None = None
        if outcome.status is AttemptStatus.SUCCEEDED:
            assert result_path is not None
            try:
                document = result_path.read_text(encoding="utf-8")
            except (OSError, MemoryError, UnicodeDecodeError) as exc:
                outcome = AttemptOutcome(AttemptStatus.FAILED, ErrorKind.RESOURCE_EXHAUSTED
                                         if exhausted(exc) else ErrorKind.CRASH,
                                         f"could not read the result document: {exc}",
                                         outcome.frames_done, outcome.frames_total)
        succeeded = outcome.status is AttemptStatus.SUCCEEDED
        claim_next = succeeded and not self.stop.is_set() and self.slot.will_serve_next()
        repeated = False
        next_job: Job | None = None

        def finish() -> Outcome:
            nonlocal next_job
            with self.current.ownership:
                result, next_job = self._write_outcome(job, outcome, document, claim_next)
                if next_job is not None:
                    self.current.start(next_job)
                else:
                    self.current.clear()
                return result

        def on_outage(_exc: BaseException) -> None:
            nonlocal claim_next, repeated
            claim_next = False  # the first try may have claimed already; the heartbeat returns that job
            repeated = True

        def give_up() -> bool:
            return self._shutdown_deadline is not None and time.monotonic() >= self._shutdown_deadline

        self.heartbeat.finishing.set()
        try:
            try:
                result = with_db_retry(finish, f"record the job as {outcome.status}", give_up=give_up,
                                       on_retry=on_outage)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("shutting down before the database came back: the outcome (%s) is not recorded; "
                                "the job returns to the queue when its lease expires", outcome.status)
                    return None
                if outcome.status is not AttemptStatus.SUCCEEDED:
                    raise
                log.error("PostgreSQL refused the result document: %s", describe(exc))
                outcome = AttemptOutcome(
                    AttemptStatus.FAILED, ErrorKind.RESULT_REJECTED,
                    f"PostgreSQL refused the result document ({len(document or '')} characters of JSON): "
                    f"{describe(exc)}", outcome.frames_done, outcome.frames_total)
                document, claim_next = None, False
                result = with_db_retry(finish, "record the job as failed", give_up=give_up, on_retry=on_outage)
        finally:
            self.heartbeat.finishing.clear()
        if not result.owned:
            level = logging.WARNING if repeated else logging.ERROR
            log.log(level, "job no longer belonged to this worker when recording %s%s", outcome.status,
                    " (an earlier try may have been recorded before its reply was lost)" if repeated else "")
        elif outcome.status is AttemptStatus.FAILED:
            log.warning("attempt failed (%s): %s -> job %s", outcome.kind,
                        outcome.message.splitlines()[0] if outcome.message else "", result.state)
        elif outcome.status is AttemptStatus.SPLIT:
            log.info("job split into segment jobs (%s frames at %g fps, segments of %gs) -> %s", outcome.frames_total,
                     outcome.fps, self._segment_s(job), result.state)
        else:
            log.info("job %s (%s frames)", result.state, outcome.frames_done)
        return next_job

    def _write_outcome(
        self, job: Job, outcome: AttemptOutcome, document: str | None, claim_next: bool
    ) -> tuple[Outcome, Job | None]:
        """One statement that records ``outcome`` (and maybe claims the next job)."""
        settings = self.settings
        if outcome.status is AttemptStatus.SUCCEEDED:
            assert document is not None
            if claim_next:
                return self.store.succeed_and_claim_next(job, self.worker_id, document, outcome.frames_done,
                                                         outcome.frames_total, settings.lease_s,
                                                         frames_stored=job.kind == "pose")
            return self.store.succeed(job, self.worker_id, document, outcome.frames_done, outcome.frames_total,
                                      frames_stored=job.kind == "pose"), None
        if outcome.status is AttemptStatus.CANCELLED:
            return self.store.finish_cancelled(job, self.worker_id), None
        if outcome.status is AttemptStatus.SPLIT:
            assert outcome.frames_total and outcome.fps
            cuts = plan_segments(outcome.frames_total, outcome.fps, self._segment_s(job))
            if len(cuts) < 2:  # the child and the plan disagree: never leave a parent waiting for nothing
                return self.store.fail(job, self.worker_id, ErrorKind.PIPELINE_ERROR,
                                       f"could not cut {outcome.frames_total} frames at {outcome.fps:g} fps into "
                                       f"segments of {self._segment_s(job):g}s",
                                       retry_base_s=settings.retry_base_s, retry_cap_s=settings.retry_cap_s), None
            return self.store.split(job, self.worker_id, outcome.frames_total,
                                    [(c.first, c.stop) for c in cuts]), None
        if outcome.status is AttemptStatus.RELEASED:
            return self.store.release(job, self.worker_id), None
        assert outcome.kind is not None
        return self.store.fail(job, self.worker_id, outcome.kind, outcome.message,
                               retry_base_s=settings.retry_base_s, retry_cap_s=settings.retry_cap_s), None
