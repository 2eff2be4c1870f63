"""How to store analysis series in PostgreSQL: compact arrays behind a view vs one row per value, measured.

Writes the same synthetic analyses (``--analyses`` of ``--tracks`` tracks × ``--frames`` frames, the
filtered angles and the three yaws: 47 series per track, a few values null) in two layouts into a
freshly migrated scratch database, and reports per layout:

- bytes per stored value on disk, table + TOAST + indexes (pg_total_relation_size);
- write rate: values/s through COPY (binary), one analysis per transaction as the worker stores it;
- read rate: values/s of ``SELECT ... FROM <relation> WHERE analysis_id = X`` (one whole analysis, every
  row to the client) and of the README's query shape (the mean of the two knee angles of one analysis);
- a window read: one track's knee angle over 300 frames, in milliseconds.

Layouts:
- ``compact`` (what migration 0011 built): ``pose_analysis_series``, one ``real[]`` per analysis ×
  track × series × name, read through the view ``pose_frame_angles`` (one row per value);
- ``rows``: a table with ``pose_frame_angles``' columns, one row per value, indexed by
  (analysis_id, track_id, name, frame_index) so a window read is an index range scan.

Usage: .venv/bin/python bench/analysis_storage.py [--analyses 20] [--tracks 2] [--frames 3000] [--json OUT]
(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frame_storage import server_url, with_db  # noqa: E402
from jobs.database import upgrade  # noqa: E402

NAMES = 44  # the analysis's angles: 22 names, 3D and 2D
YAWS = ("yaw", "yaw_shoulders", "yaw_hips")

ROWS_DDL = """
CREATE TABLE bench_angle_rows (
    analysis_id bigint NOT NULL, job_id bigint NOT NULL, frame_index integer NOT NULL, track_id integer NOT NULL,
    name text NOT NULL, value real NOT NULL);
CREATE INDEX bench_angle_rows_idx ON bench_angle_rows (analysis_id, track_id, name, frame_index)"""


def series(frames: int, rng: np.random.Generator) -> dict[str, np.ndarray[Any, Any]]:
    """47 series of ``frames`` values (degrees, 0.01° steps), about 1 % null (NaN)."""
    names = [f"angle_{i}" for i in range(NAMES)] + list(YAWS)
    t = np.arange(frames)
    out = {}
    for name in names:
        values = np.round(45 + 40 * np.sin(t / rng.uniform(5, 50) + rng.uniform(0, 6)), 2).astype(np.float32)
        values[rng.random(frames) < 0.01] = np.nan
        out[name] = values
    return out


def write_compact(conn: psycopg.Connection, job_id: int, analysis_id: int, tracks: int, data: dict[str, Any],
                  frames: int) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO pose_jobs (id, video_path) OVERRIDING SYSTEM VALUE VALUES (%s, '/v.mp4')"
                     " ON CONFLICT DO NOTHING", (job_id,))
        conn.execute("INSERT INTO pose_analyses (id, job_id, source_job_id, attempt, params, provenance, angle_names,"
                     " summary) VALUES (%s, %s, NULL, 1, '{}', '{}', '{}', '{}')", (analysis_id, job_id))
        with conn.cursor().copy("COPY pose_analysis_tracks (analysis_id, track_id, first_frame, frame_count, filled,"
                                " outliers, spins) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "int4", "int4", "int4[]", "int4[]", "jsonb"])
            for track in range(tracks):
                copy.write_row((analysis_id, track, 0, frames, [], [], "[]"))
        with conn.cursor().copy("COPY pose_analysis_series (analysis_id, track_id, series, name, vals)"
                                " FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "text", "text", "float4[]"])
            for track in range(tracks):
                for name, values in data.items():
                    kind = "yaw" if name in YAWS else "angles"
                    copy.write_row((analysis_id, track, kind, name,
                                    [None if v != v else float(v) for v in values.tolist()]))


def write_rows(conn: psycopg.Connection, job_id: int, analysis_id: int, tracks: int, data: dict[str, Any]) -> None:
    with conn.transaction(), conn.cursor().copy(
            "COPY bench_angle_rows (analysis_id, job_id, frame_index, track_id, name, value)"
            " FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "int4", "int4", "text", "float4"])
        for track in range(tracks):
            for name, values in data.items():
                for frame, value in enumerate(values.tolist()):
                    if value == value:
                        copy.write_row((analysis_id, job_id, frame, track, name, value))


def size_of(conn: psycopg.Connection, *tables: str) -> int:
    return sum(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0] for t in tables)  # type: ignore[index]


def timed(conn: psycopg.Connection, sql: str, params: tuple[Any, ...], runs: int = 5) -> tuple[float, int]:
    """Median seconds over ``runs`` and the rows of one run."""
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        count = len(conn.execute(sql, params).fetchall())
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--analyses", type=int, default=20)
    parser.add_argument("--tracks", type=int, default=2)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    server = server_url()
    name = f"pose_bench_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    data = series(args.frames, rng)
    values_per_analysis = args.tracks * sum(int(np.isfinite(v).sum()) for v in data.values())
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(with_db(server, name))
        with psycopg.connect(with_db(server, name), autocommit=True) as conn:
            conn.execute(ROWS_DDL)
            report: dict[str, Any] = {"analyses": args.analyses, "tracks": args.tracks, "frames": args.frames,
                                      "values": values_per_analysis * args.analyses}
            for layout in ("compact", "rows"):
                start = time.perf_counter()
                for a in range(1, args.analyses + 1):
                    if layout == "compact":
                        write_compact(conn, a, a, args.tracks, data, args.frames)
                    else:
                        write_rows(conn, a, a, args.tracks, data)
                wrote = time.perf_counter() - start
                conn.execute("VACUUM ANALYZE")
                relation = "pose_frame_angles" if layout == "compact" else "bench_angle_rows"
                tables = ("pose_analysis_series", "pose_analysis_tracks") if layout == "compact" else (
                    "bench_angle_rows",)
                whole_s, rows = timed(conn, f"SELECT frame_index, track_id, name, value FROM {relation} "
                                            "WHERE analysis_id = %s", (args.analyses // 2,))
                assert rows == values_per_analysis, (layout, rows, values_per_analysis)
                mean_s, _ = timed(conn, f"SELECT avg(value) FROM {relation} WHERE analysis_id = %s "
                                        "AND name IN ('angle_0', 'angle_1')", (args.analyses // 2,))
                window_s, got = timed(conn, f"SELECT frame_index, value FROM {relation} WHERE analysis_id = %s AND "
                                            "track_id = 1 AND name = 'angle_0' AND frame_index >= 1000 AND "
                                            "frame_index < 1300", (args.analyses // 2,))
                report[layout] = {
                    "bytes_per_value": round(size_of(conn, *tables) / report["values"], 2),
                    "write_values_per_s": round(report["values"] / wrote),
                    "read_values_per_s": round(values_per_analysis / whole_s),
                    "mean_of_two_angles_ms": round(mean_s * 1000, 2),
                    "window_300_frames_ms": round(window_s * 1000, 2),
                    "window_rows": got,
                }
                print(layout, json.dumps(report[layout]), flush=True)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
