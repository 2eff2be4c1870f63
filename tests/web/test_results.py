"""GET /v1/jobs/{id}/result streamed from pose_frame_rows: windows, NDJSON, CSV, gzip; and
`pose-service result`, which reads the same way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from jobs.result_stream import CSV_HEADER
from tests.web.conftest import result_document, run_job, video_job
from tests.web.test_cli import cli
from web.result_document import Result


def _job_with_frames(client, web_store, media_root: Path, frames: int = 40, people: int = 2) -> tuple[int, dict]:
    job = video_job(client, media_root)
    document = result_document(people=people, frames=frames)
    run_job(web_store, document=document)
    return job["id"], document


def test_a_window_of_frames_is_still_result_at_1(client, web_store, media_root: Path) -> None:
    job_id, document = _job_with_frames(client, web_store, media_root)
    r = client.get(f"/v1/jobs/{job_id}/result?frames=5:9")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = Result.model_validate(r.json()).model_dump(by_alias=True)
    assert [f["index"] for f in body["frames"]] == [5, 6, 7, 8]
    assert r.json() == {**document, "frames": document["frames"][5:9]}
    assert [f["index"] for f in client.get(f"/v1/jobs/{job_id}/result?frames=38:").json()["frames"]] == [38, 39]


def test_ndjson_is_one_frame_per_line(client, web_store, media_root: Path) -> None:
    job_id, document = _job_with_frames(client, web_store, media_root)
    r = client.get(f"/v1/jobs/{job_id}/result?format=ndjson&frames=:3")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in r.text.splitlines()] == document["frames"][:3]


def test_csv_is_one_row_per_frame_person_and_keypoint(client, web_store, media_root: Path) -> None:
    job_id, document = _job_with_frames(client, web_store, media_root, frames=4, people=2)
    r = client.get(f"/v1/jobs/{job_id}/result?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines(keepends=True)
    assert lines[0] == CSV_HEADER and len(lines) == 1 + 4 * 2 * 33
    assert lines[1] == "0,0,1,0,kp0,32,24,0,0.99,0.98,0,0,0\n"


def test_every_format_is_gzipped_as_it_streams(client, web_store, media_root: Path) -> None:
    job_id, document = _job_with_frames(client, web_store, media_root, frames=200)
    for fmt in ("json", "ndjson", "csv"):
        with client.stream("GET", f"/v1/jobs/{job_id}/result?format={fmt}",
                           headers={"accept-encoding": "gzip"}) as r:
            raw = b"".join(r.iter_raw())
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip", fmt
        text = gzip.decompress(raw).decode()
        assert len(raw) < len(text) / 5, fmt
        if fmt == "json":
            assert json.loads(text) == document


def test_bad_windows_and_formats_are_422(client, web_store, media_root: Path) -> None:
    job_id, _ = _job_with_frames(client, web_store, media_root, frames=2)
    for query in ("frames=9:3", "frames=x", "format=xml", "frames=-1:2", "other=1"):
        r = client.get(f"/v1/jobs/{job_id}/result?{query}")
        assert r.status_code == 422, (query, r.text)
        assert r.json()["error"]["code"] in ("invalid_parameter", "invalid_field", "unknown_parameter"), r.text


def test_pose_service_result_streams_every_format(web_db_url: str, web_store, client, media_root: Path,
                                                  tmp_path: Path) -> None:
    job_id, document = _job_with_frames(client, web_store, media_root, frames=30)
    out = tmp_path / "r.json"
    done = cli("result", str(job_id), "-o", str(out), url=web_db_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == document
    window = cli("result", str(job_id), "--frames", "10:12", url=web_db_url)
    assert [f["index"] for f in json.loads(window.stdout)["frames"]] == [10, 11]
    ndjson = cli("result", str(job_id), "--format", "ndjson", "--frames", "29:", url=web_db_url)
    assert [json.loads(line) for line in ndjson.stdout.splitlines()] == document["frames"][29:]
    csv = cli("result", str(job_id), "--format", "csv", "--frames", "0:1", url=web_db_url)
    assert csv.stdout.splitlines()[0] + "\n" == CSV_HEADER and len(csv.stdout.splitlines()) == 1 + 2 * 33
    bad = cli("result", str(job_id), "--frames", "5:1", url=web_db_url)
    assert bad.returncode == 2 and "frames" in bad.stderr
