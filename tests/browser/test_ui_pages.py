"""The dashboard, submit page, job viewer and comparison in headless Chromium (tests/browser/conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import finish_with_poses
from tests.web.conftest import VIDEO, ThreadWorker

expect = pytest.importorskip("playwright.sync_api", reason="browser tests: the playwright package is not installed "
                             "(pip install -e '.[test]')").expect


def submit_upload(url: str, video: Path, **data: str) -> dict[str, Any]:
    with video.open("rb") as f:
        r = httpx.post(f"{url}/v1/jobs", data=data, files={"video": (video.name, f, "video/webm")}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def submit_path(url: str) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/jobs", json={"video_path": str(VIDEO)}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.csp  # with the pages' Content-Security-Policy enforced
def test_dashboard_lists_a_submitted_job_and_shows_it_finishing(page, live_server, web_store) -> None:
    job = submit_path(live_server.url)
    page.goto(live_server.url + "/")
    row = page.locator(f"#jobs tr[data-job='{job['id']}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "queued"
    assert "five_frames_720p.mp4" in row.inner_text()
    expect(page.locator("#n-queued")).to_have_text("1")  # (no wait_for_function: it evals, which the CSP forbids)
    with ThreadWorker(web_store, finish_with_poses(delay_s=1.5)):
        page.locator("#workers tr[data-worker='thread-w']").wait_for()
        page.locator(f"#jobs tr[data-job='{job['id']}'][data-state='succeeded']").wait_for()
    page.locator("#chart-outcomes rect").first.wait_for()  # today's bar in the history chart
    # the list's buttons: cancel a queued job, then retry it
    other = submit_path(live_server.url)
    page.locator(f"#jobs tr[data-job='{other['id']}'] button.cancel").click()
    page.locator(f"#jobs tr[data-job='{other['id']}'][data-state='cancelled'] button.retry").click()
    page.locator(f"#jobs tr[data-job='{other['id']}'][data-state='queued']").wait_for()
    assert web_store.get(other["id"]).retries == 1
    page.select_option("#filter-state", "succeeded")  # the filter
    expect(page.locator("#jobs tbody tr[data-state=queued]")).to_have_count(0)
    assert page.locator(f"#jobs tr[data-job='{job['id']}']").count() == 1


def finished_upload(url: str, store, video: Path) -> dict[str, Any]:
    job = submit_upload(url, video)
    with ThreadWorker(store, finish_with_poses()) as worker:
        while not worker.jobs or store.get(job["id"]).state.value != "succeeded":
            worker.thread.join(0.05)
    return job


def overlay_pixels(page: Any) -> int:
    """Opaque pixels drawn on the skeleton canvas (it is transparent where nothing is drawn)."""
    return int(page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; }"""))


def test_job_page_draws_skeletons_over_the_video_and_the_cursor_follows_playback(
    page, live_server, web_store, playable_video
) -> None:
    job = finished_upload(live_server.url, web_store, playable_video)
    results: list[str] = []
    page.on("request", lambda r: results.append(r.url) if "/result" in r.url else None)
    page.goto(f"{live_server.url}/jobs/{job['id']}")
    page.locator("#job[data-state='succeeded']").wait_for()
    page.wait_for_function("document.getElementById('video').readyState >= 2")
    page.wait_for_function("document.querySelector('#plot-angles .cursor') !== null")
    page.wait_for_function("document.getElementById('overlay').width > 100")
    page.wait_for_function("""() => { const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; }""")
    # the skeleton is in the screenshot of the stage, where the video alone shows none of its colours
    stage = page.locator("#stage").screenshot()
    assert overlay_pixels(page) > 500
    assert _has_track_colour(stage)
    assert page.locator("#track-picker option").count() == 3  # all, #1, #2
    assert page.locator("#spins li").count() >= 1
    start = page.locator("#plot-angles .cursor").get_attribute("x1")
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function("document.getElementById('video').ended")
    page.wait_for_function(f"document.querySelector('#plot-angles .cursor').getAttribute('x1') !== '{start}'")
    page.wait_for_function("document.getElementById('frame-label').textContent === 'frame 4'")
    assert page.locator("#plot-yaw .cursor").get_attribute("data-x") == "4"
    # only one track: the other's skeleton goes
    both = overlay_pixels(page)
    page.select_option("#track-picker", "1")
    page.wait_for_function(f"() => {{ const c = document.getElementById('overlay');"
                           f"const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                           f"let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n < {both}; }}")
    # low-visibility joints are faded: track 1's left foot tip (visibility 0.2) against its left knee
    from tests.browser.poses import person

    keypoints = person(1, 4, 400.0)["keypoints"]
    names = page.evaluate("fetch(location.pathname.replace('/jobs/', '/v1/jobs/') + '/result?frames=0:0')"
                          ".then(r => r.json()).then(d => d.keypoint_names)")
    knee, toe = (keypoints[names.index(n)] for n in ("left_knee", "left_foot_index"))
    alpha = page.evaluate("""([x, y]) => { const c = document.getElementById('overlay');
        const s = c.width / 1280; return c.getContext('2d').getImageData(Math.round(x * s), Math.round(y * s), 1, 1)
        .data[3]; }""", [knee[0], knee[1]])
    faded = page.evaluate("""([x, y]) => { const c = document.getElementById('overlay');
        const s = c.width / 1280; return c.getContext('2d').getImageData(Math.round(x * s), Math.round(y * s), 1, 1)
        .data[3]; }""", [toe[0], toe[1]])
    assert alpha == 255 and 0 < faded < 200
    # a click on a plot seeks the video there
    page.locator("#plot-angles svg").click(position={"x": 50, "y": 60})
    page.wait_for_function("document.getElementById('frame-label').textContent === 'frame 0'")
    # never the whole result: its head (no frames), then windows of 240 frames
    assert {u.split("?", 1)[1] for u in results} == {"frames=0:0", "frames=0:240&format=ndjson"}


def _has_track_colour(png: bytes) -> bool:
    """Whether the screenshot has pixels of track 1's colour (hsl(137.5, 85%, 55%): a saturated green)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = (image[:, :, i].astype(int) for i in range(3))
    return int(((g > 180) & (r < 120) & (b < 160)).sum()) > 100


def test_seeking_an_upload_uses_range_requests(page, live_server, web_store, playable_video) -> None:
    job = finished_upload(live_server.url, web_store, playable_video)
    ranges: list[str] = []
    page.on("request", lambda r: ranges.append(r.headers.get("range", "")) if r.url.endswith("/video") else None)
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/video") else None)
    page.goto(f"{live_server.url}/jobs/{job['id']}")
    page.wait_for_function("document.getElementById('video').readyState >= 2")
    page.locator("#scrubber").fill("3")  # the frame scrubber seeks the video
    page.wait_for_function("document.getElementById('frame-label').textContent === 'frame 3'")
    assert abs(page.evaluate("document.getElementById('video').currentTime") - 3.5 / 30) < 1e-3
    assert 206 in statuses and any(r.startswith("bytes=") for r in ranges)
    assert page.evaluate("document.getElementById('video').seekable.end(0)") > 0.1


def test_cancel_from_the_job_page(page, live_server, web_store) -> None:
    """A running job shows its progress bar; its cancel button asks its worker to stop, which it does."""
    job = submit_path(live_server.url)

    def run_until_cancelled(store, claimed, worker_id) -> None:
        store.record_progress(claimed, worker_id, 2, 5, 30.0)
        while not store.get(claimed.id).cancel_requested:
            time.sleep(0.05)
        store.finish_cancelled(claimed, worker_id)

    with ThreadWorker(web_store, run_until_cancelled):
        page.goto(f"{live_server.url}/jobs/{job['id']}")
        page.locator("#job[data-state='running']").wait_for()
        page.wait_for_function("document.getElementById('progress').value === 40")
        assert page.locator("#progress-text").inner_text() == "2/5 frames"
        page.locator("#cancel").click()
        page.locator("#job[data-state='cancelled']").wait_for()
    assert web_store.get(job["id"]).state.value == "cancelled"
    assert page.locator("#retry").is_visible() and not page.locator("#progress").is_visible()
    page.locator("#events li[data-to='cancelled']").wait_for()


def test_submit_page_uploads_with_progress_and_opens_the_job(page, live_server, playable_video) -> None:
    page.goto(f"{live_server.url}/submit")
    page.set_input_files("#file", str(playable_video))
    page.select_option("select[name=mode]", "static")
    page.fill("input[name=max_people]", "2")
    page.click("#send")
    page.wait_for_url("**/jobs/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    job = httpx.get(f"{live_server.url}/v1/jobs/{job_id}").json()
    assert job["video"]["source"] == "upload" and job["params"] == {"mode": "static", "max_people": 2}
    page.locator("#state").wait_for()


def test_compare_shows_both_attempts_aligned(page, live_server, web_store, playable_video) -> None:
    a = finished_upload(live_server.url, web_store, playable_video)
    b = finished_upload(live_server.url, web_store, playable_video)
    page.goto(f"{live_server.url}/jobs/{a['id']}")
    page.fill("#compare-with", str(b["id"]))
    page.click("#compare-form button")
    page.wait_for_url(f"**/compare?a={a['id']}&b={b['id']}")
    page.locator("#compare[data-ready='true']").wait_for()
    for side in ("a", "b"):
        page.wait_for_function(f"document.querySelector('#side-{side} video').readyState >= 2")
    assert page.locator("#plot-compare path.series").count() == 2
    assert page.locator("#differences tbody tr").count() >= 2
    assert "warped" in page.locator("#align-note").inner_text()
    page.select_option("#align-by", "peak")
    assert page.locator("#align-note").inner_text().startswith("B shifted by 0 frames (highest ")
    page.select_option("#align-by", "start")
    assert page.locator("#align-note").inner_text() == "aligned at the start"
    # the same result twice: no difference at any key moment
    diffs = page.locator("#differences tbody tr td:last-child").all_inner_texts()
    assert diffs and all(d in ("0.0", "-0.0", "–") for d in diffs)
    page.locator("#compare-scrubber").fill("2")
    page.wait_for_function("Math.abs(document.querySelector('#side-b video').currentTime - 2.5 / 30) < 1e-3")


def test_a_token_sees_only_its_own_jobs_and_videos(browser, web_db_url, web_store, tmp_path, playable_video) -> None:
    """A closed API: the pages send the token typed into the page, so tenant B sees its own job and
    video (the video through the pose_token cookie: a <video> sends no header) and nothing of A's."""
    from jobs import api_tokens
    from tests.web.conftest import LiveServer, sql

    _, token_a = api_tokens.create_token(web_store, "tenant-a")
    _, token_b = api_tokens.create_token(web_store, "tenant-b")
    server = LiveServer(web_db_url, tmp_path, {"POSE_API_TOKENS": "operator-token",
                                               "POSE_MEDIA_ROOTS": str(playable_video.parent)}).wait_ready()
    try:
        def upload(token: str) -> int:
            with playable_video.open("rb") as f:
                r = httpx.post(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {token}"},
                               files={"video": (playable_video.name, f, "video/webm")}, timeout=30)
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        job_a, job_b = upload(token_a), upload(token_b)
        with ThreadWorker(web_store, finish_with_poses()) as worker:
            while len(worker.jobs) < 2 or web_store.get(job_b).state.value != "succeeded":
                worker.thread.join(0.05)
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(server.url + "/")
        assert "Bearer" in page.locator("#banner").inner_text()
        page.fill("#token", token_b)
        page.click("#token-form button[type=submit]")
        page.locator(f"#jobs tr[data-job='{job_b}']").wait_for()
        assert page.locator(f"#jobs tr[data-job='{job_a}']").count() == 0
        shown = {int(i) for i in page.locator("#jobs tbody tr[data-job]").evaluate_all(
            "rows => rows.map(r => r.dataset.job)")}
        owned_by_b = {int(i) for (i,) in sql(web_db_url, "SELECT id FROM pose_jobs WHERE owner_token_id = "
                                                         "(SELECT id FROM pose_api_tokens WHERE name = 'tenant-b')")}
        assert job_b in shown and shown <= owned_by_b  # (B's jobs may include the analysis job of its pose job)
        page.goto(f"{server.url}/jobs/{job_b}")  # the token stays for the tab (sessionStorage)
        page.wait_for_function("document.getElementById('video').readyState >= 2")
        page.goto(f"{server.url}/jobs/{job_a}")
        page.wait_for_function("document.getElementById('state').textContent === 'not found'")
        assert httpx.get(f"{server.url}/v1/jobs/{job_a}/video", cookies={"pose_token": token_b}).status_code == 404
        assert httpx.get(f"{server.url}/v1/jobs/{job_b}/video", cookies={"pose_token": token_b}).status_code == 200
        assert httpx.get(f"{server.url}/v1/jobs/{job_b}/video").status_code == 401
        context.close()
    finally:
        server.stop()


def test_a_long_result_is_read_in_windows(page, live_server, web_store, playable_video) -> None:
    """More frames than one analysis window (6,000): the page asks for the frames and the analysis
    around the playhead, never the whole of either."""
    import json

    from tests.browser.poses import result_document
    from worker.pipeline.analysis import analyze

    job = submit_upload(live_server.url, playable_video)
    long_doc = result_document(frames=6001, tracks=(1,))

    def finish(store, claimed, worker_id) -> None:
        store.succeed(claimed, worker_id, json.dumps(long_doc), 6001, 6001)

    with ThreadWorker(web_store, finish) as worker:
        while not worker.jobs or web_store.get(job["id"]).state.value != "succeeded":
            worker.thread.join(0.05)
    asked: list[str] = []
    small = json.dumps(analyze(result_document(frames=5, tracks=(1,))))

    def answer(route: Any) -> None:
        asked.append(route.request.url.split("?", 1)[-1])
        route.fulfill(status=200, content_type="application/json", body=small)

    page.route("**/v1/jobs/*/analysis*", answer)
    results: list[str] = []
    page.on("request", lambda r: results.append(r.url.split("?", 1)[1]) if "/result?" in r.url else None)
    page.goto(f"{live_server.url}/jobs/{job['id']}")
    page.wait_for_function("document.querySelector('#plot-angles .cursor') !== null")
    assert page.locator("#scrubber").get_attribute("max") == "6000"
    assert asked == ["frames=0:6000"]
    assert set(results) == {"frames=0:0", "frames=0:240&format=ndjson"}


def test_a_video_the_browser_cannot_decode_is_said_so(page, live_server, web_store) -> None:
    """The sample clip is MPEG-4 Part 2, which Chromium does not decode: the page says why nothing plays."""
    job = submit_path(live_server.url)
    with ThreadWorker(web_store, finish_with_poses()) as worker:
        while not worker.jobs or web_store.get(job["id"]).state.value != "succeeded":
            worker.thread.join(0.05)
    page.goto(f"{live_server.url}/jobs/{job['id']}")
    page.locator("#banner:has-text('does not play here')").wait_for()
