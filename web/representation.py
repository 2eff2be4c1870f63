"""How jobs, events, workers and statistics look as JSON: plain dicts, shared by the API and the CLI.

Nothing here imports Starlette, so `pose-service status` can print exactly what `GET /v1/jobs/{id}`
returns without loading the web stack.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from jobs.job import Job
from jobs.states import JobState


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _num(value: Any) -> float | None:
    if value is None:
        return None
    return round(float(value), 3)


def job_to_dict(job: Job, *, now: datetime | None = None) -> dict[str, Any]:
    """The job as the API returns it. Wait and run times of unfinished jobs are counted up to now."""
    now = now or datetime.now(UTC)
    wait_s = job.wait_s
    if wait_s is None and job.state == JobState.QUEUED:
        wait_s = max(0.0, (now - job.created_at).total_seconds())
    run_s = job.run_s
    if run_s is None and job.state == JobState.RUNNING and job.attempt_started_at is not None:
        run_s = max(0.0, (now - job.attempt_started_at).total_seconds())
    error = None
    if job.error_kind is not None or job.error_message is not None:
        error = {"kind": job.error_kind, "message": job.error_message}
    if job.upload_id is not None:
        video: dict[str, Any] = {"source": "upload", "upload_id": job.upload_id}
    else:
        video = {"source": "path", "path": job.video_path}
    return {
        "id": job.id,
        "state": job.state.value,
        "priority": job.priority,
        "params": job.params,
        "video": video,
        "progress": {
            "frames_done": job.frames_done,
            "frames_total": job.frames_total,
            "percent": job.progress_percent,
        },
        "attempts": {"attempt": job.attempt, "max_attempts": job.max_attempts, "retries": job.retries},
        "timings": {
            "created_at": iso(job.created_at),
            "run_after": iso(job.run_after),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "wait_s": _num(wait_s),
            "run_s": _num(run_s),
        },
        "error": error,
        "worker_id": job.worker_id,
        "cancel_requested": job.cancel_requested,
        "timeout_s": job.timeout_s,
        "idempotency_key": job.idempotency_key,
        "owner_token_id": job.owner_token_id,
        "links": {
            "self": f"/v1/jobs/{job.id}",
            "result": f"/v1/jobs/{job.id}/result",
            "events": f"/v1/jobs/{job.id}/events",
        },
    }


def event_to_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "attempt": row["attempt"],
        "worker_id": row["worker_id"],
        "error_kind": row["error_kind"],
        "error_message": row["error_message"],
    }


def worker_to_dict(row: dict[str, Any]) -> dict[str, Any]:
    job_id = row.get("current_job_id")
    current = None
    if job_id is not None:
        done, total = row.get("frames_done"), row.get("frames_total")
        percent = round(100.0 * min(done, total) / total, 1) if done is not None and total else None
        current = {
            "job_id": job_id,
            "frames_done": done,
            "frames_total": total,
            "percent": percent,
            "started_at": iso(row.get("job_started_at")),
        }
    return {
        "id": row["id"],
        "host": row["host"],
        "pid": row["pid"],
        "gpu": row["gpu"],
        "mode": row["mode"],
        "problem": row.get("problem"),
        "started_at": iso(row["started_at"]),
        "heartbeat_at": iso(row["heartbeat_at"]),
        "current_job": current,
    }


def pool_to_dict(workers: list[dict[str, Any]], queue: dict[str, int], mean_run_s: float | None) -> dict[str, Any]:
    """Live workers, the queue, and the estimated wait for a job submitted now:
    ready jobs × mean recent run time / live workers (null when it cannot be estimated)."""
    live = len(workers)
    busy = sum(1 for w in workers if w.get("current_job_id") is not None)
    estimate = None
    if live and mean_run_s is not None:
        estimate = round(queue["ready"] * mean_run_s / live, 1)
    return {
        "workers": [worker_to_dict(w) for w in workers],
        "live_workers": live,
        "busy_workers": busy,
        "queue": {"ready": queue["ready"], "queued": queue["queued"]},
        "mean_run_s": _num(mean_run_s),
        "estimated_wait_s": estimate,
    }


def stats_to_dict(days: int, daily: list[dict[str, Any]], failures: list[dict[str, Any]]) -> dict[str, Any]:
    """The history views as JSON, plus totals over the window and failures by kind."""
    rows = []
    for r in daily:
        run_seconds = float(r["run_seconds"]) if r["run_seconds"] is not None else None
        frames = int(r["frames_processed"] or 0)
        rows.append(
            {
                "day": iso(r["day"]),
                "submitted": int(r["submitted"]),
                "succeeded": int(r["succeeded"]),
                "failed": int(r["failed"]),
                "cancelled": int(r["cancelled"]),
                "pending": int(r["pending"]),
                "wait_p50_s": _num(r["wait_p50_s"]),
                "wait_p95_s": _num(r["wait_p95_s"]),
                "run_p50_s": _num(r["run_p50_s"]),
                "run_p95_s": _num(r["run_p95_s"]),
                "frames_processed": frames,
                "run_seconds": _num(run_seconds),
                "frames_per_s": round(frames / run_seconds, 2) if run_seconds else None,
            }
        )
    by_kind: dict[str, int] = {}
    for f in failures:
        kind = f["error_kind"]
        by_kind[kind] = by_kind.get(kind, 0) + int(f["failures"])
    total_frames = sum(r["frames_processed"] for r in rows)
    total_run = sum(r["run_seconds"] or 0.0 for r in rows)
    return {
        "days": days,
        "daily": rows,
        "failures": [
            {
                "day": iso(f["day"]),
                "error_kind": f["error_kind"],
                "failures": int(f["failures"]),
                "jobs": int(f["jobs"]),
                "final_failures": int(f["final_failures"]),
                "last_at": iso(f["last_at"]),
                "last_message": f["last_message"],
            }
            for f in failures
        ],
        "failures_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        "totals": {
            "submitted": sum(r["submitted"] for r in rows),
            "succeeded": sum(r["succeeded"] for r in rows),
            "failed": sum(r["failed"] for r in rows),
            "cancelled": sum(r["cancelled"] for r in rows),
            "frames_processed": total_frames,
            "frames_per_s": round(total_frames / total_run, 2) if total_run else None,
        },
    }


# ---- opaque cursors ---------------------------------------------------------------------------------
def encode_cursor(before_id: int) -> str:
    """Keyset cursor: the last id seen. Opaque (base64) so clients do not build it themselves and the
    server may change what it holds."""
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id encoded in ``cursor``; None if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = raw.partition(":")
    if prefix != "v1" or not number.isdigit() or len(number) > 19:
        return None
    value = int(number)
    return value if 0 < value < 2**63 else None


def to_plain(value: Any) -> Any:
    """Decimals and datetimes from raw rows, made JSON-friendly (for ad-hoc CLI output)."""
    if isinstance(value, datetime | date):
        return iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
