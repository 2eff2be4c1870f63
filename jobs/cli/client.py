"""`pose-service submit VIDEO [--wait]`, `status ID`, `result ID [-o FILE] [--frames A:B] [--format F]`,
`jobs`, `cancel ID`, `stats`.

Every command talks to the REST API when a server is named with --server or POSE_SERVER (with
--token or POSE_API_TOKEN), so it sees exactly what that token may see; otherwise it goes to the
database directly (submit inserts the video's absolute path, which the workers must be able to
open). Choosing by an explicit flag rather than by probing localhost keeps the meaning of a command
from depending on whether some server happens to be running.

Exit status (README "Command line"): 0 success (for ``submit --wait``: the job succeeded); 1 failure
(the job failed, no such job, no result, the server answered an error or could not be reached); 2 a
usage error (bad arguments, no such file); 3 the job was cancelled; 4 the server refused the token
(401, 403).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobs.cli.common import add_setting_flags, open_store, settings_from
from jobs.cli.progress import UploadProgress, follow_job
from jobs.result_stream import FramesDeleted, FrameWindow, ResultFormat, open_result
from jobs.states import JobState

POLL_S = 0.5
#: Exit statuses (module docstring).
OK, FAILED, USAGE, CANCELLED, TOKEN_REFUSED = 0, 1, 2, 3, 4


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("POSE_SERVER"),
                        help="REST base URL (env POSE_SERVER); without it, the database directly")
    parser.add_argument("--token", default=os.environ.get("POSE_API_TOKEN"), help="bearer token (env POSE_API_TOKEN)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = subparsers.add_parser("submit", help="submit a video (upload via --server, else insert directly)")
    submit.add_argument("video", help="the video file")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument("--params", help='pipeline parameters as a JSON object, e.g. \'{"mode": "static"}\'')
    submit.add_argument("--idempotency-key", help="submitting again with the same key returns the same job")
    submit.add_argument("--wait", action="store_true", help="follow progress until the job finishes")
    submit.set_defaults(func=run_submit)

    status = subparsers.add_parser("status", help="a job's state, progress, timings and error (JSON)")
    status.add_argument("id", type=int)
    status.set_defaults(func=run_status)

    result = subparsers.add_parser("result", help="a succeeded job's result document")
    result.add_argument("id", type=int)
    result.add_argument("-o", "--output", help="write to FILE instead of stdout")
    result.add_argument("--frames", metavar="A:B", help="only frames A (included) to B (excluded)")
    result.add_argument("--format", choices=[f.value for f in ResultFormat], default="json",
                        help="json: the result document; ndjson: one frame per line; csv: one row per keypoint")
    result.set_defaults(func=run_result)

    jobs = subparsers.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--state", choices=[s.value for s in JobState])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=run_jobs)

    stats = subparsers.add_parser("stats", help="history per day (the pose_job_daily_stats view)")
    stats.add_argument("--days", type=int, default=7)
    stats.set_defaults(func=run_stats)

    cancel = subparsers.add_parser("cancel", help="cancel a job (a running one is killed by its worker)")
    cancel.add_argument("id", type=int)
    cancel.set_defaults(func=run_cancel)

    for p in (submit, status, result, jobs, cancel, stats):
        _server_flags(p)
        add_setting_flags(p)


# ---- submit ----------------------------------------------------------------------------------------
def run_submit(args: argparse.Namespace) -> int:
    video = Path(args.video).expanduser()
    if not video.is_file():
        print(f"no such file: {video}", file=sys.stderr)
        return USAGE
    params: dict[str, Any] | None = None
    if args.params:
        try:
            params = json.loads(args.params)
        except ValueError as exc:
            print(f"--params is not JSON: {exc}", file=sys.stderr)
            return USAGE
        if not isinstance(params, dict):
            print("--params must be a JSON object", file=sys.stderr)
            return USAGE
    if args.server:
        import httpx

        try:
            return _submit_rest(args, video, params)
        except httpx.HTTPError as exc:
            print(f"cannot talk to {args.server}: {exc}", file=sys.stderr)
            return FAILED
    return _submit_direct(args, video, params)


def _submit_direct(args: argparse.Namespace, video: Path, params: dict[str, Any] | None) -> int:
    from worker.pipeline.params import InvalidParams, check_service_params, schema_for_job

    settings = settings_from(args)
    schema = schema_for_job(settings.pipeline, params) if params is not None else None
    if params is not None:  # refused now, as the REST API does, rather than failing later on a worker
        try:
            if schema is None:
                check_service_params(params)
            else:
                schema.validate(params)
        except InvalidParams as exc:
            print(f"--params: {exc}", file=sys.stderr)
            return USAGE
    _, store = open_store(settings, pool_size=1)
    try:
        job, created = store.submit(
            str(video.resolve()), priority=args.priority, params=params, idempotency_key=args.idempotency_key
        )
        print(f"job {job.id} {'submitted' if created else 'already exists'} ({job.state.value})")
        if not args.wait:
            return OK
        return _follow(lambda: _direct_job(store, job.id))
    finally:
        store.close()


def _direct_job(store: Any, job_id: int) -> dict[str, Any]:
    from web.representation import job_to_dict

    job = store.get(job_id)
    if job is None:
        raise SystemExit(f"job {job_id} disappeared")
    return job_to_dict(job)


def _submit_rest(args: argparse.Namespace, video: Path, params: dict[str, Any] | None) -> int:
    import httpx

    settings_from(args)  # logging as configured
    base = args.server.rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    data: dict[str, str] = {"priority": str(args.priority)}
    if params is not None:
        data["params"] = json.dumps(params)
    if args.idempotency_key:
        data["idempotency_key"] = args.idempotency_key
    with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30.0, write=None)) as client:
        content_type = mimetypes.guess_type(video.name)[0] or "application/octet-stream"
        # httpx streams the file part from disk; the bar counts what it reads (the bytes it sends)
        with video.open("rb") as f, UploadProgress(f"upload {video.name}", video.stat().st_size) as sent:
            response = client.post("/v1/jobs", data=data, files={"video": (video.name, sent.reader(f), content_type)})
        if response.status_code not in (200, 201):
            return _refused("submit", response)
        job = response.json()
        verb = "submitted" if response.status_code == 201 else "already exists"
        print(f"job {job['id']} {verb} ({job['state']})")
        if not args.wait:
            return OK

        def fetch() -> dict[str, Any]:
            r = client.get(f"/v1/jobs/{job['id']}")
            r.raise_for_status()
            return r.json()  # type: ignore[no-any-return]

        return _follow(fetch)


def _refused(what: str, response: Any) -> int:
    """Report an error answer; TOKEN_REFUSED for 401/403, FAILED otherwise."""
    print(f"{what} failed: HTTP {response.status_code}: {_error_text(response)}", file=sys.stderr)
    return TOKEN_REFUSED if response.status_code in (401, 403) else FAILED


def _error_text(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text[:200])


def _follow(fetch: Any) -> int:
    """Follow the job until it is final (jobs/cli/progress.py draws it). OK if it succeeded,
    CANCELLED if it was cancelled, FAILED otherwise."""
    job = follow_job(fetch, poll_s=POLL_S)
    if job["error"]:
        print(f"error: {job['error']['kind']}: {job['error']['message']}", file=sys.stderr)
    return {JobState.SUCCEEDED.value: OK, JobState.CANCELLED.value: CANCELLED}.get(job["state"], FAILED)


# ---- over REST -------------------------------------------------------------------------------------
def _rest(args: argparse.Namespace, command: Any) -> int:
    """Run ``command(client)`` against --server with --token; unreachable servers are FAILED."""
    import httpx

    settings_from(args)  # logging as configured
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, timeout=30.0) as client:
            return int(command(client))
    except httpx.HTTPError as exc:
        print(f"cannot talk to {args.server}: {exc}", file=sys.stderr)
        return FAILED


def _rest_status(args: argparse.Namespace) -> int:
    def command(client: Any) -> int:
        r = client.get(f"/v1/jobs/{args.id}")
        if r.status_code != 200:
            return _refused("status", r)
        print(json.dumps(r.json(), indent=2))
        return OK

    return _rest(args, command)


def _rest_result(args: argparse.Namespace) -> int:
    params = {"format": args.format, **({"frames": args.frames} if args.frames else {})}

    def command(client: Any) -> int:
        with client.stream("GET", f"/v1/jobs/{args.id}/result", params=params, timeout=None) as r:
            if r.status_code != 200:
                r.read()
                return _refused("result", r)
            _write_pieces(args, r.iter_text(), fmt=ResultFormat(args.format))
        return OK

    return _rest(args, command)


def _rest_jobs(args: argparse.Namespace) -> int:
    params = {"limit": max(1, min(args.limit, 500)), **({"state": args.state} if args.state else {})}

    def command(client: Any) -> int:
        r = client.get("/v1/jobs", params=params)
        if r.status_code != 200:
            return _refused("jobs", r)
        _print_jobs(r.json()["jobs"])
        return OK

    return _rest(args, command)


def _rest_cancel(args: argparse.Namespace) -> int:
    def command(client: Any) -> int:
        r = client.post(f"/v1/jobs/{args.id}/cancel")
        if r.status_code not in (200, 202):
            return _refused("cancel", r)
        job = r.json()
        print(f"job {job['id']} {'cancelled' if r.status_code == 200 else 'cancel requested (running)'}")
        return OK

    return _rest(args, command)


def _rest_stats(args: argparse.Namespace) -> int:
    def command(client: Any) -> int:
        r = client.get("/v1/stats", params={"days": max(1, min(args.days, 366))})
        if r.status_code != 200:
            return _refused("stats", r)
        _print_stats(r.json())
        return OK

    return _rest(args, command)


# ---- inspecting ------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    from web.representation import job_to_dict

    if args.server:
        return _rest_status(args)
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        job = store.get(args.id)
        if job is None:
            print(f"no job {args.id}", file=sys.stderr)
            return FAILED
        print(json.dumps(job_to_dict(job), indent=2))
        return OK
    finally:
        store.close()


def run_result(args: argparse.Namespace) -> int:
    """The result streamed from the database the way GET /v1/jobs/{id}/result serves it (constant
    memory), to stdout or ``-o FILE``."""
    try:
        window = FrameWindow.parse(args.frames)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return USAGE
    fmt = ResultFormat(args.format)
    if args.server:
        return _rest_result(args)
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        try:
            pieces = open_result(store, args.id, fmt=fmt, window=window)
        except FramesDeleted as gone:
            print(f"{gone}; the job and its result's summary (pose_results) remain", file=sys.stderr)
            return FAILED
        if pieces is None:
            job = store.get(args.id)
            print(
                f"no job {args.id}" if job is None else f"job {args.id} is {job.state.value}: no result",
                file=sys.stderr,
            )
            return FAILED
        _write_pieces(args, pieces, fmt=fmt)
        return OK
    finally:
        store.close()


def _write_pieces(args: argparse.Namespace, pieces: Iterator[str], *, fmt: ResultFormat) -> None:
    """The result's text, as it streams, to ``-o FILE`` or stdout."""
    if args.output:
        size = 0
        with open(args.output, "w", encoding="utf-8") as fh:
            for piece in pieces:
                fh.write(piece)
                size += len(piece)
        print(f"wrote {args.output} ({size} bytes)", file=sys.stderr)
    else:
        for piece in pieces:
            sys.stdout.write(piece)
        if fmt is ResultFormat.JSON:
            sys.stdout.write("\n")


def run_jobs(args: argparse.Namespace) -> int:
    from web.representation import job_to_dict

    if args.server:
        return _rest_jobs(args)
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        jobs = store.list_jobs(state=args.state, limit=max(1, min(args.limit, 500)))
    finally:
        store.close()
    _print_jobs([job_to_dict(j) for j in jobs])
    return OK


def _print_jobs(jobs: list[dict[str, Any]]) -> None:
    """One line per job, from the REST representation (the database path converts to it first)."""
    print(f"{'ID':>6}  {'STATE':<10} {'PRIO':>5} {'PROGRESS':>9} {'CREATED':<28} VIDEO")
    for j in jobs:
        percent = j["progress"]["percent"]
        shown = f"{percent:.1f}%" if percent is not None else "-"
        video = j["video"] or {}
        if j.get("kind") == "analysis" and j.get("source_job_id") is not None:
            name = f"analysis of job {j['source_job_id']}"
        elif video.get("source") == "path":
            name = str(video.get("path"))
        else:
            name = f"upload {video.get('upload_id')}"
        print(f"{j['id']:>6}  {j['state']:<10} {j['priority']:>5} {shown:>9} {j['timings']['created_at']:<28} {name}")


def run_cancel(args: argparse.Namespace) -> int:
    """Queued: cancelled now; running: its worker kills it within a second. FAILED when the job is
    already final or does not exist."""
    if args.server:
        return _rest_cancel(args)
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        job = store.cancel(args.id)
        if job is None:
            existing = store.get(args.id)
            print(f"no job {args.id}" if existing is None else f"job {args.id} is already {existing.state.value}",
                  file=sys.stderr)
            return FAILED
        print(f"job {job.id} {'cancel requested (running)' if job.state == JobState.RUNNING else 'cancelled'}")
        return OK
    finally:
        store.close()


def run_stats(args: argparse.Namespace) -> int:
    from web.representation import stats_to_dict

    if args.server:
        return _rest_stats(args)
    days = max(1, min(args.days, 366))
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        doc = stats_to_dict(days, store.daily_stats(days), store.failure_stats(days))
    finally:
        store.close()
    _print_stats(doc)
    return OK


def _print_stats(doc: dict[str, Any]) -> None:
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(
        f"{'DAY':<11} {'SUBMIT':>6} {'OK':>6} {'FAIL':>5} {'CANC':>5} {'WAIT50':>7} {'WAIT95':>7} "
        f"{'RUN50':>7} {'RUN95':>7} {'FRAMES':>8} {'FPS':>7}"
    )
    for d in doc["daily"]:
        print(
            f"{d['day']:<11} {d['submitted']:>6} {d['succeeded']:>6} {d['failed']:>5} {d['cancelled']:>5} "
            f"{num(d['wait_p50_s']):>7} {num(d['wait_p95_s']):>7} {num(d['run_p50_s']):>7} "
            f"{num(d['run_p95_s']):>7} {d['frames_processed']:>8} {num(d['frames_per_s']):>7}"
        )
    if doc["failures_by_kind"]:
        print("failures by kind: " + ", ".join(f"{k}={n}" for k, n in doc["failures_by_kind"].items()))
