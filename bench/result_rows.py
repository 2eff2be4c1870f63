"""Per-frame rows through the service's own code: how fast a worker stores frames (the child's spool blocks,
worker/frame_spool.py, read, stamped and COPYed a batch at a time by JobStore.store_frame_tuples, fenced
per batch, one stream) and how fast a result streams back out of PostgreSQL (jobs/result_stream.py:
result@1 JSON, NDJSON, CSV), with the reader's peak Python memory. bench/long_video.py measures the
same through real processes.

Frames are result@1 frames of BlazePose size (33 keypoints × 5, 33 world points × 3) with
``--people`` people each, in a migrated scratch database.

Usage: .venv/bin/python bench/result_rows.py [--frames N] [--people P] [--json OUT]
(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frame_storage import server_url, with_db  # noqa: E402
from jobs.database import upgrade  # noqa: E402
from jobs.result_stream import ResultFormat, open_result  # noqa: E402
from jobs.store import JobStore  # noqa: E402
from worker.frame_spool import Block, BlockEncoder, read_block  # noqa: E402
from worker.frame_writer import BATCH_FRAMES as BATCH  # noqa: E402

HEAD = {
    "schema": "pose-service/result@1",
    "video": {"width": 1920, "height": 1080, "fps": 30.0, "frames": 0, "duration_s": 0.0, "rotation": 0,
              "skipped_frames": 0},
    "model": {"name": "bench", "backend": "torch", "device": "cpu", "weights_sha256": "-"},
    "keypoint_names": [f"kp{i}" for i in range(33)],
    "skeleton": [[0, 1]],
    "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
}


def frame(i: int, people: int) -> dict[str, object]:
    def person(t: int) -> dict[str, object]:
        x = 100.0 + i * 0.37 + t * 200
        return {"track_id": t, "bbox": [round(x, 2), 50.0, round(x + 180, 2), 700.25], "score": 0.9876,
                "keypoints": [[round(x + k * 1.13, 2), round(60 + k * 19.7, 2), round(-k * 3.1, 2), 0.9931, 0.9987]
                              for k in range(33)],
                "world": [[round(0.01 * k, 4), round(-0.02 * k, 4), 0.1234] for k in range(33)]}
    return {"index": i, "time_s": round(i / 30.0, 6), "people": [person(t) for t in range(1, people + 1)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    server = server_url()
    name = f"pose_bench_rows_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    numbers: dict[str, float] = {}
    try:
        url = with_db(server, name)
        upgrade(url)
        store = JobStore.connect(url, pool_size=2)
        try:
            store.submit("/bench.mp4")
            job = store.claim("bench", 3600)
            assert job is not None
            spool = io.BytesIO()  # the child's spool, blocks of 64 frames
            encoder = BlockEncoder()
            for i in range(args.frames):
                encoder.add(frame(i, args.people))
                if encoder.frames == 64 or i == args.frames - 1:
                    encoder.write(spool)
            size = spool.tell()
            spool.seek(0)
            t0 = time.perf_counter()  # the worker's part: read, check and stamp the blocks, COPY each batch
            first = True
            while spool.tell() < size:
                blocks: list[Block] = []
                while spool.tell() < size and sum(b.frames for b in blocks) < BATCH:
                    blocks.append(read_block(spool, size - spool.tell(), job.id, job.attempt))
                assert store.store_frame_tuples(job, "bench", [b.payload for b in blocks], blocks[0].first,
                                                blocks[-1].last, first_batch=first)
                first = False
            write_s = time.perf_counter() - t0
            assert store.succeed(job, "bench", json.dumps(HEAD), args.frames, args.frames, frames_stored=True).owned
            person_frames = args.frames * args.people
            numbers["store_person_frames_per_s"] = person_frames / write_s
            numbers["store_frames_per_s"] = args.frames / write_s
            for fmt in ResultFormat:
                size = 0
                t0 = time.perf_counter()
                for piece in open_result(store, job.id, fmt=fmt) or ():
                    size += len(piece)
                read_s = time.perf_counter() - t0
                tracemalloc.start()  # a second pass for memory: tracing slows Python down severalfold
                for _piece in open_result(store, job.id, fmt=fmt) or ():
                    pass
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                numbers[f"{fmt}_person_frames_per_s"] = person_frames / read_s
                numbers[f"{fmt}_mb"] = size / 1e6
                numbers[f"{fmt}_peak_mb"] = peak / 1e6
            with psycopg.connect(url) as conn:
                total = conn.execute("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree("
                                     "'pose_frame_rows')").fetchone()[0]  # partitioned (migration 0008)
            numbers["bytes_per_person_frame"] = total / person_frames
        finally:
            store.close()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"{args.frames} frames × {args.people} people")
    print(f"store (spool blocks, COPY of {BATCH}-frame batches, one stream): "
          f"{numbers['store_frames_per_s']:.0f} frames/s, "
          f"{numbers['store_person_frames_per_s']:.0f} person-frames/s; "
          f"{numbers['bytes_per_person_frame']:.0f} B/person-frame on disk")
    for fmt in ResultFormat:
        print(f"read {fmt.value:<6}: {numbers[f'{fmt}_person_frames_per_s']:.0f} person-frames/s, "
              f"{numbers[f'{fmt}_mb']:.1f} MB out, reader's peak Python memory {numbers[f'{fmt}_peak_mb']:.1f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
