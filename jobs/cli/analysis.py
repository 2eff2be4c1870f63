"""`pose-service analyze JOB_ID [--params JSON]` and `pose-service export JOB_ID --format csv|trc|mot
[-o FILE] [--track N]`: the sport analysis from the command line, through the database, exactly as
``POST /v1/jobs/{id}/analyses`` and ``GET /v1/jobs/{id}/export`` do it (jobs/analyses.py,
jobs/analysis_export.py).

``analyze`` queues an analysis job of a succeeded pose job's stored keypoints and prints it (JSON);
``--wait`` follows it until it ends and then prints the analysis document. ``export`` streams the
job's analysis (a pose job's latest, an analysis job's own) in constant memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from jobs.analyses import AnalysisUnavailable, check_source, find_analysis, stream_document, submit_analysis
from jobs.analysis_export import ExportFormat, TrackRequired, export
from jobs.cli.common import add_setting_flags, open_store, settings_from
from jobs.states import FINAL_STATES, JobState

WAIT_POLL_S = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analyze = subparsers.add_parser("analyze", help="analyse a succeeded job's keypoints again, with other params")
    analyze.add_argument("id", type=int, help="the pose job")
    analyze.add_argument("--params", help='analysis params as a JSON object, e.g. \'{"cutoff_hz": 8}\' '
                                          "(docs/analysis.md; default: the defaults)")
    analyze.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    analyze.add_argument("--wait", action="store_true", help="wait for the analysis job and print its document")
    analyze.set_defaults(func=run_analyze)

    export_ = subparsers.add_parser("export", help="a job's analysis as CSV, TRC or MOT (spreadsheets, OpenSim)")
    export_.add_argument("id", type=int, help="the job (a pose job: its latest analysis)")
    export_.add_argument("--format", required=True, choices=[f.value for f in ExportFormat],
                         help="csv: angles and keypoints per frame and track; trc: one track's world landmarks "
                              "(OpenSim markers); mot: one track's angles (OpenSim storage)")
    export_.add_argument("--track", type=int, help="the track (trc and mot, when the analysis has several)")
    export_.add_argument("-o", "--output", help="write to FILE instead of stdout")
    export_.set_defaults(func=run_export)

    for p in (analyze, export_):
        add_setting_flags(p)


def run_analyze(args: argparse.Namespace) -> int:
    from web.representation import job_to_dict
    from worker.pipeline.analysis.params import PARAMS
    from worker.pipeline.params import InvalidParams

    try:
        params = json.loads(args.params) if args.params else {}
        PARAMS.validate(params)
    except (json.JSONDecodeError, InvalidParams) as exc:
        print(f"--params: {exc}", file=sys.stderr)
        return 2
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        try:
            check_source(store, args.id, visible_to=None)
        except AnalysisUnavailable as exc:
            print(str(exc), file=sys.stderr)
            return 1
        job = submit_analysis(store, source_job_id=args.id, params=params, priority=args.priority)
        if not args.wait:
            print(json.dumps(job_to_dict(job), indent=2))
            return 0
        print(f"analysis job {job.id} queued; waiting", file=sys.stderr)
        while (current := store.get(job.id)) is not None and current.state not in FINAL_STATES:
            time.sleep(WAIT_POLL_S)
        if current is None or current.state != JobState.SUCCEEDED:
            print(json.dumps(job_to_dict(current), indent=2) if current else f"job {job.id} is gone", file=sys.stderr)
            return 1
        for piece in stream_document(store, find_analysis(store, job.id, visible_to=None)):
            sys.stdout.write(piece)
        sys.stdout.write("\n")
        return 0
    finally:
        store.close()


def run_export(args: argparse.Namespace) -> int:
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        try:
            pieces = export(store, find_analysis(store, args.id, visible_to=None), ExportFormat(args.format),
                            args.track)
        except (AnalysisUnavailable, TrackRequired) as exc:
            print(str(exc), file=sys.stderr)
            return 1
        if not args.output:
            for piece in pieces:
                sys.stdout.write(piece)
            return 0
        size = 0
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            for piece in pieces:
                fh.write(piece)
                size += len(piece)
        print(f"wrote {args.output} ({size} bytes)", file=sys.stderr)
        return 0
    finally:
        store.close()
