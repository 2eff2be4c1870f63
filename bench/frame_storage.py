"""How to store per-frame pose data in PostgreSQL: plain rows vs compact chunks, measured.

Writes the same synthetic person-frames (BlazePose-sized: 33 × (x, y, z, visibility, presence) image
keypoints, 33 × (x, y, z) world points, a box, a score) for one job in two layouts, each into its
own table in a scratch database, and reports per layout:

- bytes per person-frame on disk, table + TOAST + indexes (pg_total_relation_size);
- write rate: person-frames/s through COPY (binary), in batches as a worker would send them;
- read rate: person-frames/s reading one job back in frame order, ready to serialise.

Layouts:
- ``rows``: one row per (job, frame, person): real[] arrays, primary key (job_id, attempt,
  frame_index, track_id). Directly queryable by SQL (a joint's trajectory is a SELECT). Written and
  read in PostgreSQL's binary COPY format, built and parsed by numpy a batch at a time.
- ``chunks``: one row per (job, 64 frames): the same numbers packed as float32 in a bytea,
  decoded by the reader with numpy; queryable only through a decoding function.

Usage: .venv/bin/python bench/frame_storage.py [--person-frames N] [--json OUT]
(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.database import libpq_url  # noqa: E402

KEYPOINTS = 33
PEOPLE = 4
CHUNK_FRAMES = 64
BATCH_FRAMES = 256  # what a worker would hand COPY at a time


def server_url() -> str:
    url = os.environ.get("POSE_TEST_DATABASE_URL") or os.environ.get("POSE_DATABASE_URL")
    if url:
        return libpq_url(url)
    from jobs.embedded_postgres import embedded_dsn
    from jobs.settings import Settings

    return embedded_dsn(Settings.from_env().home)


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def synthetic(frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints [F, P, 33, 5], world [F, P, 33, 3], boxes [F, P, 4]) moving smoothly, float32."""
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    base = rng.uniform(100, 1800, size=(1, PEOPLE, KEYPOINTS)).astype(np.float32)
    x = base + 3.0 * t + rng.normal(0, 1.5, size=(frames, PEOPLE, KEYPOINTS)).astype(np.float32)
    y = base * 0.5 + 40 * np.sin(t / 15) + rng.normal(0, 1.5, size=(frames, PEOPLE, KEYPOINTS)).astype(np.float32)
    z = rng.normal(0, 50, size=(frames, PEOPLE, KEYPOINTS)).astype(np.float32)
    vis = rng.uniform(0.5, 1, size=(frames, PEOPLE, KEYPOINTS)).astype(np.float32)
    kp = np.stack([x, y, z, vis, vis], axis=-1)
    world = rng.normal(0, 0.4, size=(frames, PEOPLE, KEYPOINTS, 3)).astype(np.float32)
    boxes = np.stack([x.min(-1), y.min(-1), x.max(-1), y.max(-1)], axis=-1)
    return kp, world, boxes


ROWS_DDL = """
CREATE TABLE bench_rows (
    job_id bigint NOT NULL, attempt integer NOT NULL, frame_index integer NOT NULL, time_s double precision NOT NULL,
    track_id integer NOT NULL, score real, bbox real[] NOT NULL, keypoints real[] NOT NULL, world real[],
    PRIMARY KEY (job_id, attempt, frame_index, track_id))"""
CHUNKS_DDL = """
CREATE TABLE bench_chunks (
    job_id bigint NOT NULL, attempt integer NOT NULL, first_frame integer NOT NULL, rows integer NOT NULL,
    data bytea NOT NULL, PRIMARY KEY (job_id, attempt, first_frame))"""


def _array(name: str, n: int) -> list[tuple[str, object]]:
    """The binary COPY layout of a one-dimensional float4[] of ``n`` elements (no NULLs)."""
    return [(f"{name}_len", ">i4"), (f"{name}_ndim", ">i4"), (f"{name}_hasnull", ">i4"), (f"{name}_oid", ">i4"),
            (f"{name}_dim", ">i4"), (f"{name}_lbound", ">i4"), (name, [("len", ">i4"), ("v", ">f4")], (n,))]


#: One row of bench_rows in PostgreSQL's binary COPY format: every row has the same size, so numpy
#: builds a whole batch at once and reads one back with frombuffer (no Python loop per value).
ROW_DTYPE = np.dtype([
    ("nfields", ">i2"), ("job_len", ">i4"), ("job_id", ">i8"), ("attempt_len", ">i4"), ("attempt", ">i4"),
    ("frame_len", ">i4"), ("frame_index", ">i4"), ("time_len", ">i4"), ("time_s", ">f8"),
    ("track_len", ">i4"), ("track_id", ">i4"), ("score_len", ">i4"), ("score", ">f4"),
    *_array("bbox", 4), *_array("keypoints", KEYPOINTS * 5), *_array("world", KEYPOINTS * 3),
])
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
FLOAT4_OID = 700


def row_batch(kp: np.ndarray, world: np.ndarray, boxes: np.ndarray, first: int, last: int, fps: float) -> bytes:
    n = (last - first) * PEOPLE
    rec = np.zeros(n, dtype=ROW_DTYPE)
    rec["nfields"] = 9
    rec["job_len"], rec["job_id"], rec["attempt_len"], rec["attempt"] = 8, 1, 4, 1
    rec["frame_len"], rec["frame_index"] = 4, np.repeat(np.arange(first, last), PEOPLE)
    rec["time_len"], rec["time_s"] = 8, rec["frame_index"] / fps
    rec["track_len"], rec["track_id"] = 4, np.tile(np.arange(PEOPLE), last - first)
    rec["score_len"], rec["score"] = 4, 0.9
    for name, values in (("bbox", boxes), ("keypoints", kp), ("world", world)):
        size = values[first:last].reshape(n, -1).shape[1]
        rec[f"{name}_len"], rec[f"{name}_ndim"], rec[f"{name}_oid"] = 20 + 8 * size, 1, FLOAT4_OID
        rec[f"{name}_dim"], rec[f"{name}_lbound"] = size, 1
        rec[name]["len"], rec[name]["v"] = 4, values[first:last].reshape(n, size)
    return COPY_HEADER + rec.tobytes() + COPY_TRAILER


def write_rows(conn: psycopg.Connection, kp: np.ndarray, world: np.ndarray, boxes: np.ndarray, fps: float) -> float:
    frames = kp.shape[0]
    t0 = time.perf_counter()
    for start in range(0, frames, BATCH_FRAMES):
        batch = row_batch(kp, world, boxes, start, min(frames, start + BATCH_FRAMES), fps)
        with conn.transaction(), conn.cursor() as cur, cur.copy("COPY bench_rows FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(batch)
    return time.perf_counter() - t0


def read_rows(conn: psycopg.Connection) -> tuple[float, int]:
    t0 = time.perf_counter()
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(
        "COPY (SELECT * FROM bench_rows WHERE job_id = 1 AND attempt = 1 ORDER BY frame_index, track_id) "
        "TO STDOUT (FORMAT BINARY)"
    ) as copy:
        for data in copy:
            buf += data
    rows = np.frombuffer(bytes(buf[len(COPY_HEADER):len(buf) - len(COPY_TRAILER)]), dtype=ROW_DTYPE)
    return time.perf_counter() - t0, int(rows.shape[0])


ROW_FLOATS = 2 + 1 + 4 + KEYPOINTS * 5 + KEYPOINTS * 3  # frame, track, score, box, keypoints, world


def write_chunks(conn: psycopg.Connection, kp: np.ndarray, world: np.ndarray, boxes: np.ndarray) -> float:
    frames = kp.shape[0]
    t0 = time.perf_counter()
    for start in range(0, frames, BATCH_FRAMES):
        with conn.transaction(), conn.cursor() as cur, cur.copy(
            "COPY bench_chunks (job_id, attempt, first_frame, rows, data) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "int4", "int4", "bytea"])
            for c in range(start, min(frames, start + BATCH_FRAMES), CHUNK_FRAMES):
                end = min(frames, c + CHUNK_FRAMES, start + BATCH_FRAMES)
                n = (end - c) * PEOPLE
                ids = np.stack(np.meshgrid(np.arange(c, end), np.arange(PEOPLE), indexing="ij"), -1).reshape(n, 2)
                block = np.concatenate([ids.astype(np.float32), np.full((n, 1), 0.9, np.float32),
                                        boxes[c:end].reshape(n, 4), kp[c:end].reshape(n, -1),
                                        world[c:end].reshape(n, -1)], axis=1)
                copy.write_row((1, 1, c, n, block.astype("<f4").tobytes()))
    return time.perf_counter() - t0


def read_chunks(conn: psycopg.Connection) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    with conn.transaction(), conn.cursor(name="c", binary=True) as cur:
        cur.itersize = 64
        cur.execute("SELECT rows, data FROM bench_chunks WHERE job_id = 1 AND attempt = 1 ORDER BY first_frame")
        for rows, data in cur:
            block = np.frombuffer(data, dtype="<f4").reshape(rows, ROW_FLOATS)
            n += block.shape[0]
    return time.perf_counter() - t0, n


def size_of(conn: psycopg.Connection, table: str) -> int:
    conn.execute(f"VACUUM ANALYZE {table}")
    return int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--person-frames", type=int, default=200_000)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    frames = args.person_frames // PEOPLE
    kp, world, boxes = synthetic(frames, np.random.default_rng(7))
    server = server_url()
    name = f"pose_bench_frames_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    results: dict[str, dict[str, float]] = {}
    try:
        with psycopg.connect(with_db(server, name), autocommit=True) as conn:
            conn.execute(ROWS_DDL)
            conn.execute(CHUNKS_DDL)
            w = write_rows(conn, kp, world, boxes, 30.0)
            r, n = read_rows(conn)
            assert n == frames * PEOPLE
            results["rows"] = {"bytes_per_person_frame": size_of(conn, "bench_rows") / n,
                               "write_person_frames_per_s": n / w, "read_person_frames_per_s": n / r}
            w = write_chunks(conn, kp, world, boxes)
            r, n = read_chunks(conn)
            assert n == frames * PEOPLE
            results["chunks"] = {"bytes_per_person_frame": size_of(conn, "bench_chunks") / n,
                                 "write_person_frames_per_s": n / w, "read_person_frames_per_s": n / r}
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    raw = ROW_FLOATS * 4
    print(f"{frames * PEOPLE} person-frames ({PEOPLE} people × {frames} frames); raw float32 payload {raw} B each")
    print(f"{'layout':<8} {'bytes/person-frame':>19} {'write pf/s':>12} {'read pf/s':>12}")
    for layout, m in results.items():
        print(f"{layout:<8} {m['bytes_per_person_frame']:>19.0f} {m['write_person_frames_per_s']:>12.0f} "
              f"{m['read_person_frames_per_s']:>12.0f}")
    rows, chunks = results["rows"], results["chunks"]
    print(f"rows/chunks: size {rows['bytes_per_person_frame'] / chunks['bytes_per_person_frame']:.2f}×, "
          f"write {rows['write_person_frames_per_s'] / chunks['write_person_frames_per_s']:.2f}×, "
          f"read {rows['read_person_frames_per_s'] / chunks['read_person_frames_per_s']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps({"person_frames": frames * PEOPLE, "layouts": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
