"""Browser tests: the pages (web/ui/) in real headless Chromium, driven by Playwright.

Chromium is Debian's ``chromium`` package (``make install`` installs it when missing), launched by
``executable_path``: Playwright never downloads a browser here. Where neither Playwright nor a
Chromium can be found the tests skip, saying which is missing.

One real ``pose-service web`` (uvicorn) serves the session's tests (an open API: no tokens exist
when it starts); the tenancy test starts its own closed one. Jobs are finished by a worker thread
in the test process (tests/web/conftest.py's ThreadWorker) with the made-up results of
tests/browser/poses.py, so no model runs. Such a worker stores no analysis (that is the analysis
child's work, tested in tests/web/test_analysis_routes.py), so the browser's requests for
``GET /v1/jobs/{id}/analysis`` are answered by the test with ``worker.pipeline.analysis.analyze`` of
the job's result, fetched from the server: the pages are tested against the analysis@1 document.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from jobs.job import Job
from jobs.store import JobStore
from tests.browser.poses import result_document
from tests.web.conftest import (  # noqa: F401  (fixtures, registered by being imported here)
    VIDEO,
    LiveServer,
    ThreadWorker,
    _clean,
    media_root,
    web_db_url,
    web_store,
)

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: the playwright package is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests: no Chromium (apt-get install -y chromium; `make install` does it where it can)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True,
                               args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def playable_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 5-frame clip as VP8 in WebM. The sample is MPEG-4 Part 2 ('FMP4'), which Chromium does not
    decode (it plays H.264, VP8/VP9 and AV1); OpenCV's FFmpeg writes VP8 without extra codecs."""
    import cv2

    out = tmp_path_factory.mktemp("playable") / "five_frames_720p.webm"
    cap = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"VP80"), cap.get(cv2.CAP_PROP_FPS),
                             (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    cap.release()
    assert out.stat().st_size > 0
    return out


@pytest.fixture(scope="session")
def live_server(
    web_db_url: str, tmp_path_factory: pytest.TempPathFactory, playable_video: Path  # noqa: F811
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("ui-server")
    roots = f"{VIDEO.parent},{playable_video.parent}"
    server = LiveServer(web_db_url, home, {"POSE_MEDIA_ROOTS": roots, "POSE_LOG_LEVEL": "WARNING"})
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def analysis_for(server_url: str, job_id: int, token: str | None = None) -> dict[str, Any]:
    """What GET /v1/jobs/{id}/analysis answers (DESIGN.md section 8), computed from the job's result."""
    from worker.pipeline.analysis import analyze

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    doc = httpx.get(f"{server_url}/v1/jobs/{job_id}/result", headers=headers, timeout=30).json()
    return analyze(doc, source={"job_id": job_id})


@pytest.fixture
def page(browser: Any, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (its own sessionStorage and cookies); errors in the page or its console (failed
    loads, Content-Security-Policy violations) fail the test."""
    # bypass_csp: the pages' Content-Security-Policy forbids eval, which Playwright's wait_for_function
    # uses; the dashboard test keeps it on, so the pages are seen to work under it
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  bypass_csp=request.node.get_closest_marker("csp") is None)
    p = context.new_page()
    p.set_default_timeout(15000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)  # CSP violations too

    def answer(route: Any) -> None:
        job_id = int(route.request.url.split("/v1/jobs/")[1].split("/")[0])
        token = (route.request.headers.get("authorization") or "").removeprefix("Bearer ") or None
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(analysis_for(live_server.url, job_id, token)))

    p.route("**/v1/jobs/*/analysis*", answer)
    yield p
    context.close()
    assert not errors, f"errors in the page: {errors}"


def finish_with_poses(delay_s: float = 0.0, frames: int = 5) -> Callable[[JobStore, Job, str], None]:
    """A ThreadWorker finish function: progress over ``delay_s``, then success with a pose result."""

    def finish(store: JobStore, job: Job, worker_id: str) -> None:
        if job.kind == "analysis":  # queued by a pose job's success (migration 0011): the pages get theirs
            with store.engine.begin() as conn:  # from the page fixture instead, so it goes, as run_job's do
                conn.execute(text("DELETE FROM pose_jobs WHERE id = :id"), {"id": job.id})
            return
        steps = max(1, frames)
        for i in range(steps):
            store.record_progress(job, worker_id, i, frames, 30.0)
            time.sleep(delay_s / steps)
        store.succeed(job, worker_id, json.dumps(result_document(frames)), frames, frames)

    return finish


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "csp: run the page with its Content-Security-Policy enforced")
