"""``pose-service run VIDEO -o OUT.json``: the pipeline once, without the database or the worker.

Here in jobs/cli (the composition root) rather than in worker/pipeline: the pipeline package is what
the worker's child runs and has no command line of its own.

Exit codes: 0 success, 2 unusable input or bad arguments (a message on stderr, no traceback),
1 anything else (e.g. missing model weights, with the message saying how to fetch them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

from jobs.cli.progress import FrameProgress
from worker.pipeline.contract import BadInput


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pose-service run", description="Run the pose pipeline on one video.")
    p.add_argument("video", help="input video file")
    p.add_argument("-o", "--output", required=True, help="where to write the result document (JSON)")
    p.add_argument("--overlay", metavar="OUT.mp4", help="also write the video with skeletons drawn on it")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--static", action="store_true", help="treat every frame independently (no tracking)")
    p.add_argument("--max-people", type=int, default=4, metavar="N", help="people per frame (default 4)")
    p.add_argument("--no-smoothing", action="store_true", help="report raw per-frame landmarks in video mode")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def _write_json_atomic(path: str, document: dict[str, Any]) -> None:
    """Write next to the target and rename, so a crash never leaves half a JSON file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pose-result.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 0) if exc.code in (0, None) else 2
    params: dict[str, Any] = {
        "mode": "static" if args.static else "video",
        "max_people": args.max_people,
        "device": args.device,
        "smoothing": not args.no_smoothing,
    }
    if args.overlay:
        params["overlay"] = args.overlay

    try:
        from worker.pipeline.pose import RunOptions, create

        RunOptions.from_params(params)  # argument errors before the models load
        pipeline = create(allow_overlay=True)
        # shown from here: the rate is the video's, not the model loading's
        with FrameProgress("pose", enabled=not args.quiet) as shown:
            document = pipeline(args.video, params, lambda done, total: shown.update(done, total))
    except BadInput as exc:
        print(f"pose-service run: unusable input: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"pose-service run: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"pose-service run: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _write_json_atomic(args.output, document)
    if not args.quiet:
        frames = document["video"]["frames"]
        people = sum(len(f["people"]) for f in document["frames"])
        print(
            f"wrote {args.output}: {frames} frames, {people} person detections, "
            f"{document['timings']['total_s']:.1f} s" + (f"; overlay {args.overlay}" if args.overlay else ""),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
