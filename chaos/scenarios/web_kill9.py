"""kill -9 loop on the web app while a client submits with idempotency keys.

``pose-service web`` is SIGKILLed 2–3 s after each time it comes up, and started again on the same
port. The client submits N jobs, each with its own ``idempotency_key``, re-sending a request until
it gets an answer (a killed server may have inserted the job and died before replying). Exactly N
jobs must exist afterwards, each answered with one id, and a worker must run each of them once.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx

from chaos.harness import Proc, Scenario, Tally, connect, tally, wait_final
from chaos.postgres import free_port

NAME = "web_kill9"


def write_tiny_video(path: Path) -> None:
    """A real 4-frame MP4 (the web checks the container), made here so no sample media are needed."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 64))
    for i in range(4):
        writer.write(np.full((64, 64, 3), 40 * i, dtype=np.uint8))
    writer.release()
    if not path.exists() or path.stat().st_size == 0:
        raise RuntimeError("OpenCV could not write a test video")


def run(quick: bool = False, keep_logs: Path | None = None, *, jobs: int | None = None,
        budget_s: float | None = None, settle_s: float = 60.0) -> Tally:
    n = jobs or (15 if quick else 60)
    min_kills = 3 if quick else 10
    budget_s = budget_s or (60.0 if quick else 180.0)
    result = Tally(NAME)
    with Scenario(NAME, keep_logs=keep_logs) as sc:
        pg = sc.postgres()
        media = sc.dir / "media"
        media.mkdir()
        video = media / "clip.mp4"
        write_tiny_video(video)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # the web checks params against the schema of the pipeline the workers run: the fake one has none
        env = {"POSE_MEDIA_ROOTS": str(media), "POSE_PIPELINE": "tests.fake_pipelines:create"}

        def start_web() -> Proc:
            return sc.spawn("web", ["web", "--port", str(port)], pg.url, env)

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        sc.worker(pg.url, name="w")
        web = start_web()
        stop = threading.Event()
        kills = [0]

        def killer() -> None:
            nonlocal web
            while not stop.is_set():
                t0 = time.monotonic()
                while not up() and not stop.is_set() and time.monotonic() - t0 < 60:
                    time.sleep(0.05)
                if stop.wait(random.uniform(2.0, 3.0)):
                    return
                web.kill9()
                kills[0] += 1
                web = start_web()

        thread = threading.Thread(target=killer, name="web-killer", daemon=True)
        thread.start()
        answers: dict[str, set[int]] = {}
        posts = [0]
        deadline = time.monotonic() + budget_s

        def answer(client: httpx.Client, key: str) -> None:
            """POST until the server answers (201 new, 200 repeat); a connection error is just retried."""
            body = {"video_path": str(video), "idempotency_key": key, "max_attempts": 5,
                    "params": sc.job_params(key, frames=2, frame_s=0.02)}
            while time.monotonic() < deadline:
                posts[0] += 1
                try:
                    response = client.post(f"{base}/v1/jobs", json=body)
                except httpx.HTTPError:
                    time.sleep(0.1)
                    continue
                if response.status_code in (200, 201):
                    answers.setdefault(key, set()).add(int(response.json()["id"]))
                    return
                if response.status_code < 500:
                    raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
                time.sleep(0.1)

        try:
            with httpx.Client(timeout=2.0) as client:
                keys = [f"chaos-web-{i}" for i in range(n)]
                for i, key in enumerate(keys):
                    answer(client, key)
                    answer(client, random.choice(keys[: i + 1]))  # a repeat must give the same id
                    time.sleep(random.uniform(0.2, 0.6))
                # keep repeating old keys until the web has been killed often enough
                while kills[0] < min_kills and time.monotonic() < deadline:
                    answer(client, random.choice(keys))
                    time.sleep(0.2)
        finally:
            stop.set()
            thread.join(timeout=10)
        with connect(pg.url) as conn:
            rows = conn.execute("SELECT id, idempotency_key FROM pose_jobs WHERE idempotency_key LIKE 'chaos-web-%'"
                                ).fetchall()
        ids = [row[0] for row in rows]
        wait_final(pg.url, ids, settle_s)
        tally(sc, pg.url, ids, result)
        unanswered = n - len(answers)
        duplicates = len(rows) - len({row[1] for row in rows})
        two_ids = sum(1 for got in answers.values() if len(got) > 1)
        # a key never answered is a lost submission; a second job for one key would run the video twice
        result.submitted = n
        result.lost += unanswered
        result.run_twice += duplicates
        result.other["jobs_in_db"] = len(rows)
        result.other["posts"] = posts[0]
        result.other["web_kills"] = kills[0]
        if two_ids:
            result.violations.append(f"{two_ids} keys answered with two different job ids")
        result.seconds = sc.elapsed()
    return result
