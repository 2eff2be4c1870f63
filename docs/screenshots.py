"""Regenerate docs/screenshots/*.png (`make screenshots`): the pages of a real service, end to end.

Starts `pose-service serve` (web + 1 worker, the real pose pipeline and analysis) on a scratch
database: a new database on ``--database-url``'s server (dropped afterwards) or, without one, an
embedded PostgreSQL under a temporary POSE_HOME (stopped afterwards). It processes the sample runner
twice (the second attempt in ``mode: static``, so the comparison has differences to show), photographs
the dashboard while the first runs, waits for both analyses, and photographs the job viewer
(mid-video), the comparison and the submit page, in headless Chromium (Debian's package, as the
browser tests use).

    .venv/bin/python docs/screenshots.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

A few minutes on a CPU: the pipeline runs the 6 s runner twice.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jobs.sample_media import media_dir  # noqa: E402

OUT = REPO / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
WAIT_S = 900.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Any, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    raise SystemExit(f"screenshots: {what} did not happen in {timeout_s:.0f} s")


def ended(job: dict[str, Any]) -> str | None:
    """The job's final state, or None while it has none."""
    return job["state"] if job["state"] in ("succeeded", "failed", "cancelled") else None


def scratch_database(server_url: str) -> tuple[str, Any]:
    """A new database on ``server_url``'s server, and how to drop it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from jobs.database import libpq_url

    name = f"pose_screenshots_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    """A page of Debian's headless Chromium (driven by Playwright), closed afterwards; OUT exists."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT, bypass_csp=True)  # wait_for_function evals
            page.set_default_timeout(60000)
            yield page
        finally:
            browser.close()


def photograph_dashboard(base: str, running: int) -> None:
    """The dashboard while job ``running`` runs (a worker busy, a progress bar moving)."""
    with browser_page() as page:
        page.goto(base + "/")
        page.locator(f"#jobs tr[data-job='{running}'][data-state='running']").wait_for()
        page.locator("#workers progress").wait_for()
        page.locator("#chart-outcomes rect").first.wait_for()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)


def photograph(base: str, a: int, b: int) -> None:
    with browser_page() as page:
        page.goto(f"{base}/jobs/{a}")
        page.locator("#plot-angles .cursor").wait_for(state="attached")
        page.wait_for_function("document.getElementById('video').readyState >= 2")
        page.locator("#scrubber").fill("95")  # mid-stride
        page.wait_for_function("document.getElementById('frame-label').textContent === 'frame 95'")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "job.png"), full_page=True)

        page.goto(f"{base}/compare?a={a}&b={b}")
        page.locator("#compare[data-ready='true']").wait_for()
        page.locator("#compare-scrubber").fill("95")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "compare.png"), full_page=True)

        page.goto(base + "/submit")
        page.set_input_files("#file", str(media_dir() / "runner_1080p.mp4"))
        page.screenshot(path=str(OUT / "submit.png"), full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on "
                                               "(default: an embedded one in a temporary POSE_HOME)")
    args = parser.parse_args(argv)
    video = media_dir() / "runner_1080p.mp4"
    home = Path(tempfile.mkdtemp(prefix="pose-screenshots-"))
    models = Path(os.environ.get("POSE_MODEL_DIR") or Path(os.environ.get("POSE_HOME", "~/.pose-service"))
                  .expanduser() / "models")
    env = {**os.environ, "POSE_HOME": str(home), "POSE_MODEL_DIR": str(models),
           "POSE_MEDIA_ROOTS": str(video.parent), "POSE_LOG_LEVEL": "WARNING"}
    env.pop("POSE_API_TOKENS", None)
    drop = None
    if args.database_url:
        env["POSE_DATABASE_URL"], drop = scratch_database(args.database_url)
    else:
        env.pop("POSE_DATABASE_URL", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed below
    serve = subprocess.Popen([sys.executable, "-m", "jobs.cli", "serve", "--port", str(port), "--workers", "1"],
                             cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            def ready() -> bool:
                if serve.poll() is not None:
                    raise SystemExit(f"screenshots: serve exited; see {home / 'serve.log'}")
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for("the service starting", ready, 300)
            ids = []
            for params in ({}, {"mode": "static"}):
                r = client.post("/v1/jobs", json={"video_path": str(video), "params": params})
                r.raise_for_status()
                ids.append(r.json()["id"])
                print(f"submitted job {ids[-1]} {params or ''}", flush=True)
            wait_for(f"job {ids[0]} running", lambda: client.get(f"/v1/jobs/{ids[0]}").json()["progress"][
                "frames_done"] > 0)
            photograph_dashboard(base, ids[0])
            for job_id in ids:
                state = wait_for(f"job {job_id} finishing", lambda j=job_id: ended(client.get(f"/v1/jobs/{j}").json()))
                if state != "succeeded":
                    raise SystemExit(f"screenshots: job {job_id} {state}")
                wait_for(f"job {job_id}'s analysis",
                         lambda j=job_id: client.get(f"/v1/jobs/{j}/analysis").status_code == 200)
                print(f"job {job_id} succeeded and analysed", flush=True)
        photograph(base, ids[0], ids[1])
        print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} in {OUT}")
        return 0
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()
        if drop is not None:
            drop()
        else:
            subprocess.run([sys.executable, "-m", "jobs.cli", "db", "stop"], cwd=REPO, env=env,
                           capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
