#!/usr/bin/env python3
"""REST load benchmark: submit throughput and GET /v1/jobs/{id} latency under 50 concurrent clients.

Starts a real `pose-service web` (uvicorn) on a scratch database with no workers, then drives it from
this separate process over loopback with N keep-alive connections. The client is a minimal asyncio
HTTP/1.1 implementation (a request is one write, a response is a status line, headers and a
Content-Length body), so the load generator costs a fraction of what the server does and the
numbers are the server's, not httpx's.

    python bench/web_load.py [--concurrency 50] [--duration 10] [--database-url URL]

The database URL names the PostgreSQL server to use (any database on it; a scratch database is
created and dropped). Default: POSE_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres.
Goal on a 2-core machine: ≥ 300 submits/s and ≥ 1,000 status reads/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
SUBMIT_GOAL, READ_GOAL = 300.0, 1000.0


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    server_cpu_s: float = 0.0  # CPU time the server process (all its threads) spent in the phase

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    def summary(self) -> dict[str, float | int | str | dict[int, int]]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

        return {
            "phase": self.name,
            "requests": len(lat),
            "ok": self.ok,
            "statuses": self.statuses,
            "seconds": round(self.elapsed, 2),
            "per_s": round(self.ok / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "mean_ms": round(1000 * statistics.fmean(lat), 2) if lat else float("nan"),
            "server_cpu_us_per_request": round(1e6 * self.server_cpu_s / len(lat), 1) if lat else float("nan"),
        }


# ---- a minimal keep-alive HTTP/1.1 client ---------------------------------------------------------
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _client(host: str, port: int, requests, deadline: float, phase: Phase) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            request = next(requests)
            started = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            phase.latencies.append(time.perf_counter() - started)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_phase(name: str, server, port: int, make_requests, concurrency: int, duration: float) -> Phase:
    phase = Phase(name)
    cpu_before = sum(server.cpu_times()[:2])
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_client("127.0.0.1", port, make_requests(i), deadline, phase) for i in range(concurrency)))
    phase.elapsed = time.perf_counter() - started
    phase.server_cpu_s = sum(server.cpu_times()[:2]) - cpu_before
    return phase


def http_request(method: str, path: str, host: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: application/json\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


# ---- the scratch database and the server ----------------------------------------------------------
def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db_url: str, media_root: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "POSE_DATABASE_URL": db_url,
        "POSE_MEDIA_ROOTS": str(media_root),
        "POSE_API_TOKENS": TOKEN,
        "POSE_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "jobs.cli", "web", "--host", "127.0.0.1", "--port", str(port)]
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start:\n{log_path.read_text()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    ap.add_argument(
        "--database-url",
        default=os.environ.get("POSE_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--profile", help="record the server with py-spy during the read phase (speedscope JSON)")
    args = ap.parse_args()

    import psutil
    import psycopg

    from jobs.database import upgrade

    name = f"pose_bench_web_{uuid.uuid4().hex[:8]}"
    admin_url = with_dbname(args.database_url, urlsplit(args.database_url).path.lstrip("/") or "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = with_dbname(args.database_url, name)
    work = Path(tempfile.mkdtemp(prefix="pose-bench-web-"))
    proc = None
    try:
        upgrade(db_url)
        media = work / "media"
        media.mkdir()
        # JSON submits check existence and the container's magic bytes (an MP4 ftyp box), not frames
        (media / "clip.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2" + b"\0" * 1000)
        port = free_port()
        proc = start_server(db_url, media, port, work / "server.log")
        host = f"127.0.0.1:{port}"
        submit_body = json.dumps({"video_path": str(media / "clip.mp4"), "priority": 0}).encode()
        submit_request = http_request("POST", "/v1/jobs", host, submit_body)

        def submits(_: int):
            while True:
                yield submit_request

        server = psutil.Process(proc.pid)

        async def scenario() -> list[Phase]:
            await run_phase("warm-up", server, port, submits, args.concurrency, 2.0)
            submit = await run_phase("submit", server, port, submits, args.concurrency, args.duration)
            with psycopg.connect(db_url) as conn:
                max_id = conn.execute("SELECT max(id) FROM pose_jobs").fetchone()[0]
            requests = [http_request("GET", f"/v1/jobs/{i}", host) for i in range(1, max_id + 1)]

            def reads(seed: int):
                rng = random.Random(seed)
                while True:
                    yield rng.choice(requests)

            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(proc.pid),
                        "-d",
                        str(int(args.duration)),
                        "-f",
                        "speedscope",
                        "-o",
                        args.profile,
                        "-r",
                        "200",
                    ]
                )
            read = await run_phase("status read", server, port, reads, args.concurrency, args.duration)
            if spy is not None:
                spy.wait()
            return [submit, read]

        submit, read = asyncio.run(scenario())
        results = [submit.summary(), read.summary()]
        print(
            f"pose-service web on {os.cpu_count()} CPUs, {args.concurrency} concurrent clients, "
            f"{args.duration:g} s per phase, no workers"
        )
        print(f"{'phase':<12} {'ok/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'server CPU/req':>15}  statuses")
        for r in results:
            print(
                f"{r['phase']:<12} {r['per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['requests']:>9} "
                f"{r['server_cpu_us_per_request']:>12} us  {r['statuses']}"
            )
        print(f"machine load average during the run: {os.getloadavg()[0]:.1f} (other processes compete for the CPUs)")
        verdict = submit.ok / submit.elapsed >= SUBMIT_GOAL and read.ok / read.elapsed >= READ_GOAL
        print(f"goal (>= {SUBMIT_GOAL:g} submits/s, >= {READ_GOAL:g} reads/s): {'met' if verdict else 'MISSED'}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
