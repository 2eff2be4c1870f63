"""GET /v1/jobs/{id}/video (web/routes_video.py): range requests over uploads stored in PostgreSQL and
over server-side paths; and the HTML pages (web/ui/) as plain HTTP."""

from __future__ import annotations

from pathlib import Path

from jobs.store import UPLOAD_CHUNK_BYTES
from tests.conftest import MEDIA
from tests.web.conftest import VIDEO, run_job, sql, video_job

RUNNER = MEDIA / "runner_1080p.mp4"  # 2 MB: an upload of more than one chunk


def upload_job(client, video: Path) -> int:
    with video.open("rb") as f:
        r = client.post("/v1/jobs", files={"video": (video.name, f, "video/mp4")})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_an_upload_is_served_whole_and_by_ranges_across_chunks(client) -> None:
    data = RUNNER.read_bytes()
    assert len(data) > UPLOAD_CHUNK_BYTES
    job = upload_job(client, RUNNER)
    whole = client.get(f"/v1/jobs/{job}/video")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    lo, hi = UPLOAD_CHUNK_BYTES - 100, UPLOAD_CHUNK_BYTES + 99  # across the first chunk's end
    part = client.get(f"/v1/jobs/{job}/video", headers={"Range": f"bytes={lo}-{hi}"})
    assert part.status_code == 206
    assert part.content == data[lo:hi + 1]
    assert part.headers["content-range"] == f"bytes {lo}-{hi}/{len(data)}"
    assert part.headers["content-length"] == "200"
    tail = client.get(f"/v1/jobs/{job}/video", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = client.get(f"/v1/jobs/{job}/video", headers={"Range": f"bytes={len(data) - 5}-"})
    assert rest.status_code == 206 and rest.content == data[-5:]
    past_end = client.get(f"/v1/jobs/{job}/video", headers={"Range": "bytes=0-99999999"})
    assert past_end.status_code == 206 and past_end.content == data  # clipped to the end
    head = client.head(f"/v1/jobs/{job}/video", headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""


def test_a_range_past_the_end_is_416(client) -> None:
    job = upload_job(client, VIDEO)
    size = VIDEO.stat().st_size
    r = client.get(f"/v1/jobs/{job}/video", headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"
    assert r.json()["error"]["code"] == "range_not_satisfiable"
    several = client.get(f"/v1/jobs/{job}/video", headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and len(several.content) == size  # several ranges: the whole video


def test_a_path_input_is_served_only_inside_the_media_roots(client, media_root, web_db_url) -> None:
    job = video_job(client, media_root)
    data = (media_root / "video.mp4").read_bytes()
    r = client.get(f"/v1/jobs/{job['id']}/video", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    # a job inserted by SQL may name any file: it is not served
    (outside,) = sql(web_db_url, "INSERT INTO pose_jobs (video_path) VALUES (%s) RETURNING id", (str(VIDEO),))[0]
    refused = client.get(f"/v1/jobs/{outside}/video")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "path_forbidden"
    assert client.get("/v1/jobs/999/video").status_code == 404


def test_the_video_takes_the_token_from_the_cookie(make_client, media_root) -> None:
    client = make_client(api_tokens=("cookie-token",))
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")},
                    headers={"Authorization": "Bearer cookie-token"})
    job = r.json()["id"]
    assert client.get(f"/v1/jobs/{job}/video").status_code == 401
    client.cookies.set("pose_token", "cookie-token")
    assert client.get(f"/v1/jobs/{job}/video").status_code == 200
    assert client.get(f"/v1/jobs/{job}").status_code == 401  # no other route reads the cookie
    client.cookies.set("pose_token", "wrong")
    assert client.get(f"/v1/jobs/{job}/video").status_code == 401


def test_the_pages_are_html_with_a_strict_policy(client) -> None:
    for path in ("/", "/submit", "/jobs/1", "/compare?a=1&b=2"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text  # nothing from a CDN
    assert client.get("/static/ui/viewer.js").status_code == 200
    bad = client.get("/compare?a=1&b=<script>")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_parameter"
    assert client.get("/jobs/x").json()["error"]["code"] == "job_not_found"
    assert client.get("/nothing-here").json()["error"]["code"] == "not_found"  # the API's JSON 404 still
    assert client.delete("/v1/jobs/1").status_code == 405
    submit = client.get("/submit").text
    assert 'name="mode"' in submit and 'name="subject"' in submit and 'name="max_people"' in submit


def test_an_analysis_job_has_no_video(client, media_root, web_store) -> None:
    video_job(client, media_root)
    run_job(web_store)
    r = client.post("/v1/jobs/1/analyses", json={})
    assert r.status_code == 201, r.text
    answer = client.get(f"/v1/jobs/{r.json()['id']}/video")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "video_not_found"
