"""The analysis routes (issue 13): GET /v1/jobs/{id}/analysis (whole, cut by frames and tracks, an
analysis job's own), POST /v1/jobs/{id}/analyses, POST /v1/analyses (result@1 and TRC uploads, bad
uploads 422), GET /v1/jobs/{id}/export, and tokens and owners as on every job route.

Analysis jobs are run here in-process exactly as a worker's child runs them (the same staging, the
same pipeline object, the same storing), without a child process: tests/test_analysis_jobs.py runs
them through a real worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs import api_tokens
from jobs.store import JobStore
from tests.analysis import synthetic
from tests.web.conftest import run_job, sql
from web.analysis_models import Analysis
from worker.analysis_job import save, staged_input
from worker.pipeline.analysis import analyze
from worker.pipeline.analysis.pipeline import AnalysisPipeline

FPS = 30.0


def motion_document(*, tracks: int = 1) -> dict[str, Any]:
    """A knee bending 0 → 90° while the body turns 720° (counter-clockwise), ``tracks`` such people."""
    n = 90
    knee = synthetic.smooth_ramp(n, 0.0, 90.0)
    yaw = synthetic.smooth_ramp(n, 0.0, 720.0)
    world = np.stack([synthetic.pose(knee=k, yaw=y) for k, y in zip(knee, yaw, strict=True)])
    document = synthetic.document(world, fps=FPS, noise_m=0.002, noise_px=0.5)
    for extra in range(2, tracks + 1):
        for frame in document["frames"]:
            frame["people"].append({**frame["people"][0], "track_id": extra})
    return document


def run_analysis(store: JobStore, tmp_path: Path, worker_id: str = "analyst") -> int:
    """Claim the next job, which must be an analysis, and run it as a worker's child would."""
    store.register_worker(worker_id, host="testhost", pid=1, gpu=None, mode="warm")
    job = store.claim(worker_id, 30.0)
    assert job is not None and job.kind == "analysis", job
    result, tracks = tmp_path / f"a{job.id}.json", tmp_path / f"a{job.id}.tracks"
    with staged_input(store, job, tmp_path) as (path, how):
        header = AnalysisPipeline()(path, {**how, "analysis": job.params, "output": str(tracks)}, lambda d, t: None)
    result.write_text(json.dumps(header))
    assert save(store, job, worker_id, result, tracks)
    assert store.succeed(job, worker_id, result.read_text(), 0, 0).owned
    return job.id


@pytest.fixture
def analysed(client, web_store: JobStore, media_root: Path, tmp_path: Path) -> dict[str, Any]:
    """A pose job of two people (the motion document) and its automatic analysis, run."""
    document = motion_document(tracks=2)
    job = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")}).json()
    run_job(web_store, document=document, keep_analysis=True)
    pending = client.get(f"/v1/jobs/{job['id']}/analysis")
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "analysis_pending"
    analysis_job = run_analysis(web_store, tmp_path)
    return {"job": job["id"], "analysis_job": analysis_job, "document": document}


def test_the_analysis_of_a_job_is_analyze_of_its_result(client, analysed) -> None:
    job = analysed["job"]
    answer = client.get(f"/v1/jobs/{job}/analysis")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    Analysis.model_validate(body)
    stored = client.get(f"/v1/jobs/{job}/result").json()  # the keypoints as stored (PostgreSQL real)
    assert body == analyze(stored, {}, source=f"job {job}")
    (spin, *_) = body["tracks"][0]["spins"]
    assert (spin["degrees"], spin["direction"]) == (720, "left")
    assert client.get(f"/v1/jobs/{analysed['analysis_job']}/analysis").json() == body  # its own

    cut = client.get(f"/v1/jobs/{job}/analysis", params={"frames": "10:20", "tracks": "2"}).json()
    (track,) = cut["tracks"]
    assert track["track_id"] == 2 and track["frames"] == list(range(10, 20))
    assert track["angles"]["left_knee"] == body["tracks"][1]["angles"]["left_knee"][10:20]
    assert cut["tracks"][0]["spins"] == body["tracks"][1]["spins"]  # the spin overlaps the window
    assert client.get(f"/v1/jobs/{job}/analysis", params={"frames": "500:600"}).json()["tracks"] == []
    assert client.get(f"/v1/jobs/{job}/analysis", params={"tracks": "x"}).status_code == 422
    job_view = client.get(f"/v1/jobs/{analysed['analysis_job']}").json()
    assert (job_view["kind"], job_view["source_job_id"]) == ("analysis", job)


def test_reanalysis_adds_an_analysis_and_keeps_the_first(client, web_store, analysed, tmp_path, web_db_url) -> None:
    job = analysed["job"]
    first = client.get(f"/v1/jobs/{job}/analysis").json()
    answer = client.post(f"/v1/jobs/{job}/analyses", json={"params": {"cutoff_hz": 3, "stance": "regular"}})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["kind"], created["source_job_id"], created["state"]) == ("analysis", job, "queued")
    assert answer.headers["location"] == f"/v1/jobs/{created['id']}"
    assert client.get(f"/v1/jobs/{job}/analysis").json() == first  # the new one has not run yet
    run_analysis(web_store, tmp_path)
    latest = client.get(f"/v1/jobs/{job}/analysis").json()
    stored = client.get(f"/v1/jobs/{job}/result").json()
    assert latest == analyze(stored, {"cutoff_hz": 3, "stance": "regular"}, source=f"job {job}")
    assert latest["tracks"][0]["spins"][0]["direction"] == "frontside"
    assert client.get(f"/v1/jobs/{analysed['analysis_job']}/analysis").json() == first  # the first stays
    assert sql(web_db_url, "SELECT count(*) FROM pose_analyses WHERE source_job_id = %s", (job,)) == [(2,)]

    for body, status, code in (
        ({"params": {"cutoff_hz": -1}}, 422, "invalid_params"),
        ({"params": {"smoothing": True}}, 422, "invalid_params"),
        ({"param": {}}, 422, "unknown_field"),
    ):
        refused = client.post(f"/v1/jobs/{job}/analyses", json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), refused.text
    not_pose = client.post(f"/v1/jobs/{analysed['analysis_job']}/analyses", json={})
    assert (not_pose.status_code, not_pose.json()["error"]["code"]) == (409, "not_a_pose_job")
    assert client.post("/v1/jobs/999/analyses", json={}).status_code == 404


def test_a_job_without_analysis(client, media_root, web_db_url) -> None:
    job = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")}).json()["id"]
    queued = client.get(f"/v1/jobs/{job}/analysis")
    assert (queued.status_code, queued.json()["error"]["code"]) == (409, "analysis_pending")
    early = client.post(f"/v1/jobs/{job}/analyses", json={})
    assert (early.status_code, early.json()["error"]["code"]) == (409, "result_not_ready")
    sql(web_db_url, "UPDATE pose_jobs SET state = 'cancelled', finished_at = now() WHERE id = %s", (job,))
    none = client.get(f"/v1/jobs/{job}/analysis")
    assert (none.status_code, none.json()["error"]["code"]) == (404, "analysis_not_found")
    assert client.get("/v1/jobs/999/analysis").json()["error"]["code"] == "job_not_found"


def _upload(client, data: bytes, **fields: str) -> Any:
    return client.post("/v1/analyses", files={"keypoints": ("k", data)}, data=fields)


def test_uploaded_keypoints_analyse(client, web_store, tmp_path) -> None:
    document = motion_document()
    answer = _upload(client, json.dumps(document).encode(), params='{"stance": "goofy"}')
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert (job["kind"], job["source_job_id"], job["video"]["source"]) == ("analysis", None, "upload")
    run_analysis(web_store, tmp_path)
    body = client.get(f"/v1/jobs/{job['id']}/analysis").json()
    assert body == analyze(document, {"stance": "goofy"}, source=f"upload {job['video']['upload_id']}")
    assert body["tracks"][0]["spins"][0]["direction"] == "backside"

    trc = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "csv"})
    assert trc.status_code == 200  # an upload's analysis exports its angles
    no_markers = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "trc"})
    assert (no_markers.status_code, no_markers.json()["error"]["code"]) == (409, "keypoints_not_stored")


def _trc(rows: list[list[float]], markers: list[str], fps: float = 30.0) -> bytes:
    head = ["PathFileType\t4\t(X/Y/Z)\tx.trc",
            "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
            f"{fps}\t{fps}\t{len(rows)}\t{len(markers)}\tmm\t{fps}\t1\t{len(rows)}",
            "Frame#\tTime\t" + "\t\t\t".join(markers), "\t\t" + "\t".join(
                f"X{i}\tY{i}\tZ{i}" for i in range(1, len(markers) + 1)), ""]
    body = [f"{i + 1}\t{i / fps}\t" + "\t".join("" if np.isnan(v) else f"{v:.3f}" for v in row)
            for i, row in enumerate(rows)]
    return ("\n".join(head + body) + "\n").encode()


def test_a_pose2sim_trc_analyses(client, web_store, tmp_path) -> None:
    """Pose2Sim's marker names, millimetres, Y up; a marker missing in one frame."""
    knee = synthetic.smooth_ramp(60, 0.0, 90.0)
    world = np.stack([synthetic.pose(knee=k) for k in knee])
    names = {"LHip": "left_hip", "LKnee": "left_knee", "LAnkle": "left_ankle", "RHip": "right_hip",
             "RShoulder": "right_shoulder", "LShoulder": "left_shoulder"}
    index = [synthetic.I[v] for v in names.values()]
    rows = [(world[f, index] * [1000, -1000, -1000]).ravel().tolist() for f in range(60)]
    rows[30][3:6] = [np.nan] * 3  # the left knee unseen in frame 30
    answer = _upload(client, _trc(rows, list(names)))
    assert answer.status_code == 201, answer.text
    run_analysis(web_store, tmp_path)
    (track,) = client.get(f"/v1/jobs/{answer.json()['id']}/analysis").json()["tracks"]
    measured = np.array(track["angles"]["left_knee"], dtype=float)
    assert np.nanmax(np.abs(measured - knee)) < 2.0
    assert 30 in track["filled"] and track["angles"]["right_knee"] == [None] * 60  # no right knee/ankle markers


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"just text", "neither"),
    (b"[1, 2]", "must be an object"),
    (b"{", "not valid JSON"),
    (json.dumps({"schema": "pose-service/result@1", "frames": []}).encode(), "no frames"),
    (json.dumps({"video": {"fps": 30}, "frames": [{"index": 0, "time_s": 0, "people": []}]}).encode(), "no frame"),
    ("wrong shape", "33 lists of 5"),
    ("nan", "NaN"),
    (b"PathFileType\t4\t(X/Y/Z)\tx.trc\n", "ends inside its header"),
    ("trc without known markers", "no TRC marker"),
])
def test_bad_uploads_are_422(client, data: bytes | str, why: str) -> None:
    if data == "wrong shape":
        document = motion_document()
        document["frames"][3]["people"][0]["keypoints"] = [[1.0, 2.0, 3.0]] * 33
        data = json.dumps(document).encode()
    elif data == "nan":
        document = motion_document()
        data = json.dumps(document).replace("0.99", "NaN", 1).encode()
    elif data == "trc without known markers":
        data = _trc([[1.0, 2.0, 3.0]], ["Foo"])
    assert isinstance(data, bytes)
    answer = _upload(client, data)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_keypoints"
    assert why in answer.json()["error"]["message"]


def test_upload_fields_are_checked(client, web_db_url) -> None:
    good = json.dumps(motion_document()).encode()
    assert _upload(client, good, params='{"filter": "kalman"}').json()["error"]["code"] == "invalid_params"
    assert _upload(client, good, stance="goofy").json()["error"]["code"] == "unknown_field"
    missing = client.post("/v1/analyses", files={"video": ("v", b"x")})
    assert (missing.status_code, missing.json()["error"]["code"]) == (422, "missing_field")
    assert sql(web_db_url, "SELECT count(*) FROM pose_uploads") == [(0,)]  # nothing refused is kept


def test_exports(client, analysed) -> None:
    job = analysed["job"]
    csv = client.get(f"/v1/jobs/{job}/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="job{job}.csv"'
    header, *rows = csv.text.splitlines()
    assert header.startswith("frame_index,time_s,track_id,left_knee_deg,") and len(rows) == 180
    needs_track = client.get(f"/v1/jobs/{job}/export", params={"format": "mot"})
    assert (needs_track.status_code, needs_track.json()["error"]["code"]) == (422, "track_required")
    mot = client.get(f"/v1/jobs/{job}/export", params={"format": "mot", "track": 2})
    assert mot.status_code == 200 and "endheader" in mot.text
    assert mot.headers["content-disposition"] == f'attachment; filename="job{job}_track2.mot"'
    trc = client.get(f"/v1/jobs/{job}/export", params={"format": "trc", "track": 1})
    assert trc.text.startswith("PathFileType\t4\t(X/Y/Z)\t")
    unknown = client.get(f"/v1/jobs/{job}/export", params={"format": "trc", "track": 7})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "track_not_found")
    assert client.get(f"/v1/jobs/{job}/export", params={"format": "xls"}).status_code == 422


def test_tokens_and_owners(make_client, web_store, media_root, tmp_path) -> None:
    _, a = api_tokens.create_token(web_store, "tenant-a")
    _, b = api_tokens.create_token(web_store, "tenant-b")
    _, reader = api_tokens.create_token(web_store, "reader", scopes=("read",))
    _, admin = api_tokens.create_token(web_store, "ops", scopes=("admin",))
    client = make_client()

    def auth(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    job = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")}, headers=auth(a)).json()["id"]
    run_job(web_store, document=motion_document(), keep_analysis=True)
    analysis_job = run_analysis(web_store, tmp_path)
    for path in (f"/v1/jobs/{job}/analysis", f"/v1/jobs/{job}/export?format=csv",
                 f"/v1/jobs/{analysis_job}/analysis"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=auth(b)).status_code == 404, path  # another tenant's: not found
        assert client.get(path, headers=auth(a)).status_code == 200, path
        assert client.get(path, headers=auth(admin)).status_code == 200, path
    assert client.post(f"/v1/jobs/{job}/analyses", json={}, headers=auth(b)).status_code == 404
    assert client.post(f"/v1/jobs/{job}/analyses", json={}, headers=auth(reader)).status_code == 403
    mine = client.post(f"/v1/jobs/{job}/analyses", json={}, headers=auth(a)).json()
    assert mine["owner_token_id"] is not None
    assert client.get(f"/v1/jobs/{mine['id']}", headers=auth(b)).status_code == 404
    upload = _upload(client, json.dumps(motion_document()).encode())
    assert upload.status_code == 401
    upload = client.post("/v1/analyses", files={"keypoints": ("k", json.dumps(motion_document()).encode())},
                         headers=auth(b))
    assert upload.status_code == 201
    assert client.get(f"/v1/jobs/{upload.json()['id']}", headers=auth(a)).status_code == 404


def readme_analysis_queries() -> list[str]:
    """The SQL statements of the README's "Analysts' examples over the sport analysis", as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("Analysts' examples over the sport analysis", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    return [s.strip() for s in block.split(";\n") if s.strip()]


def test_the_readme_queries(client, analysed, web_db_url) -> None:
    mean_knee, largest_spin = readme_analysis_queries()
    job = analysed["job"]
    body = client.get(f"/v1/jobs/{job}/analysis").json()
    knees = [v for t in body["tracks"] for name in ("left_knee", "right_knee") for v in t["angles"][name]
             if v is not None]
    ((job_id, mean),) = sql(web_db_url, mean_knee)
    assert job_id == job and float(mean) == pytest.approx(np.mean(knees), abs=0.06)
    rows = sql(web_db_url, largest_spin)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(job, 1, 720, "left"), (job, 2, 720, "left")]


def test_cli_analyze_and_export(analysed, web_store, web_db_url, tmp_path) -> None:
    from tests.web.test_cli import cli

    job = analysed["job"]
    out = tmp_path / "run.mot"
    done = cli("export", str(job), "--format", "mot", "--track", "1", "-o", str(out), url=web_db_url)
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[5] == "endheader"
    several = cli("export", str(job), "--format", "trc", url=web_db_url)
    assert several.returncode == 1 and "choose one with track" in several.stderr
    assert cli("analyze", str(job), "--params", '{"cutoff": 4}', url=web_db_url).returncode == 2
    queued = cli("analyze", str(job), "--params", '{"cutoff_hz": 4}', url=web_db_url)
    assert queued.returncode == 0, queued.stderr
    new = json.loads(queued.stdout)
    assert (new["kind"], new["source_job_id"], new["params"]) == ("analysis", job, {"cutoff_hz": 4})
    run_analysis(web_store, tmp_path)
    csv = cli("export", str(new["id"]), "--format", "csv", "--track", "2", url=web_db_url)
    assert csv.returncode == 0 and csv.stdout.startswith("frame_index,time_s,track_id,")
    assert {line.split(",")[2] for line in csv.stdout.splitlines()[1:]} == {"2"}


def test_retention_removes_the_series_and_keeps_the_summary(client, analysed, web_store, web_db_url) -> None:
    from datetime import UTC, datetime, timedelta

    from jobs.retention import RetentionDuty

    job = analysed["job"]
    later = datetime.now(UTC) + timedelta(days=3)
    kept = RetentionDuty(web_store, 5.0, clock=lambda: later).run_once()
    assert kept.analyses_deleted == 0 and client.get(f"/v1/jobs/{job}/analysis").status_code == 200
    gone = RetentionDuty(web_store, 2.0, clock=lambda: later).run_once()
    assert gone.analyses_deleted == 1
    expired = client.get(f"/v1/jobs/{job}/analysis")
    assert (expired.status_code, expired.json()["error"]["code"]) == (410, "analysis_expired")
    assert sql(web_db_url, "SELECT count(*) FROM pose_frame_angles") == [(0,)]
    assert sql(web_db_url, "SELECT count(*) FROM pose_analysis_series") == [(0,)]
    ((summary,),) = sql(web_db_url, "SELECT summary FROM pose_analyses WHERE series_deleted_at IS NOT NULL")
    assert [t["spins"][0]["degrees"] for t in summary["tracks"]] == [720, 720]


def test_the_trigger_queues_an_analysis_for_videos_with_people(web_db_url) -> None:
    """Any success of a pose job with people in more than one frame queues one, at one priority below,
    even a success recorded by hand in SQL; a segment's does not (its parent's will, once stitched),
    nor an analysis job's, a still image's or a video's with nobody in it."""
    for path in ("/people.mp4", "/segment.mp4", "/nobody.mp4", "/still.jpg"):
        sql(web_db_url, "INSERT INTO pose_jobs (video_path, priority, attempt) VALUES (%s, 7, 1)", (path,))
    sql(web_db_url, "UPDATE pose_jobs SET parent_id = 1, segment_index = 0, segment_first = 0 WHERE id = 2")
    person = "(%s, 1, 0, 0, 1, NULL, NULL, NULL, NULL)"
    sql(web_db_url, "INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, "
                    f"keypoints, world) VALUES {person.replace('%s', '1')}, {person.replace('%s', '2')}, "
                    f"{person.replace('%s', '4')}, (3, 1, 0, 0, NULL, NULL, NULL, NULL, NULL)")
    sql(web_db_url, "UPDATE pose_jobs SET state = 'succeeded', finished_at = now(), "
                    "frames_done = CASE WHEN id = 4 THEN 1 ELSE 90 END")
    assert sql(web_db_url, "SELECT source_job_id, priority, state FROM pose_jobs WHERE kind = 'analysis'") == [
        (1, 6, "queued")]
    sql(web_db_url, "UPDATE pose_jobs SET state = 'succeeded', finished_at = now() WHERE kind = 'analysis'")
    assert sql(web_db_url, "SELECT count(*) FROM pose_jobs WHERE kind = 'analysis'") == [(1,)]
    # the lowest priority an integer holds: the analysis gets the same, and the success still commits
    ((low,),) = sql(web_db_url, "INSERT INTO pose_jobs (video_path, priority, attempt) "
                                "VALUES ('/low.mp4', -2147483648, 1) RETURNING id")
    sql(web_db_url, "INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id) "
                    "VALUES (%s, 1, 0, 0, 1)", (low,))
    sql(web_db_url, "UPDATE pose_jobs SET state = 'succeeded', finished_at = now(), frames_done = 90 WHERE id = %s",
        (low,))
    assert sql(web_db_url, "SELECT priority FROM pose_jobs WHERE source_job_id = %s", (low,)) == [(-2147483648,)]


def test_the_history_views_count_videos_only(analysed, web_store, web_db_url, tmp_path) -> None:
    from jobs.states import ErrorKind

    web_store.register_worker("w", host="h", pid=1, gpu=None, mode="warm")
    web_store.submit("/v.mp4")  # a second video, queued
    failing = web_store.claim("w", 30.0)
    assert failing is not None and failing.kind == "pose"
    web_store.release(failing, "w")
    sql(web_db_url, "UPDATE pose_jobs SET run_after = now() + interval '1 hour' WHERE kind = 'pose'")
    analysis = sql(web_db_url, "INSERT INTO pose_jobs (kind, source_job_id) VALUES ('analysis', %s) RETURNING id",
                   (analysed["job"],))[0][0]
    claimed = web_store.claim("w", 30.0)
    assert claimed is not None and claimed.id == analysis
    web_store.fail(claimed, "w", ErrorKind.PIPELINE_ERROR, "broken", retry_base_s=0, retry_cap_s=0)
    assert sql(web_db_url, "SELECT submitted, succeeded, pending FROM pose_job_daily_stats") == [(2, 1, 1)]
    assert sql(web_db_url, "SELECT count(*) FROM pose_job_failures") == [(0,)]


def test_an_analysis_of_nothing_is_bad_input(web_store, web_db_url, tmp_path) -> None:
    """A source job without stored keypoints (not succeeded, or its frames expired) refuses to stage:
    the worker fails the analysis job as bad_input (worker/analysis_job.py)."""
    from worker.input_staging import InputRefused

    queued = web_store.submit("/v.mp4")[0]
    sql(web_db_url, "INSERT INTO pose_jobs (kind, source_job_id, priority) VALUES ('analysis', %s, 10)", (queued.id,))
    web_store.register_worker("w", host="h", pid=1, gpu=None, mode="warm")
    job = web_store.claim("w", 30.0)
    assert job is not None and job.kind == "analysis"
    with pytest.raises(InputRefused, match="has not succeeded"), staged_input(web_store, job, tmp_path):
        pass
