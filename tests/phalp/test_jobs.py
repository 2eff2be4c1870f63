"""The phalp backend through the whole service: jobs in PostgreSQL, real worker daemons, their pipeline
children running the stand-in track.py (tests/phalp/standin_track.py) exactly as they would run the
operator's 4D-Humans, results read back the way every client reads them. Also the routing: the
``backend`` column a trigger fills from params, and claims that only a worker having the backend makes."""

from __future__ import annotations

import json
import os
import sys

import psycopg
import pytest

from jobs.result_stream import open_result
from jobs.states import JobState
from tests.conftest import wait_for
from tests.phalp.helpers import make_checkout, make_video
from tests.test_worker_outcomes import finished


def result(store, job_id: int) -> dict:
    pieces = open_result(store, job_id)
    assert pieces is not None
    return json.loads("".join(pieces))


def test_params_backend_is_a_column_filled_by_a_trigger_and_checked(database_url, store):
    with psycopg.connect(database_url, autocommit=True) as conn:  # what another service's INSERT does
        job_id = conn.execute("INSERT INTO pose_jobs (video_path, params) VALUES ('/v.mp4', '{\"backend\": "
                              "\"phalp\"}') RETURNING id").fetchone()[0]
        assert conn.execute("SELECT backend FROM pose_jobs WHERE id = %s", (job_id,)).fetchone() == ("phalp",)
        conn.execute("UPDATE pose_jobs SET params = '{}' WHERE id = %s", (job_id,))
        assert conn.execute("SELECT backend FROM pose_jobs WHERE id = %s", (job_id,)).fetchone() == (None,)
        with pytest.raises(psycopg.errors.CheckViolation, match="pose_jobs_backend_known"):
            conn.execute("INSERT INTO pose_jobs (video_path, params) VALUES ('/v.mp4', '{\"backend\": \"hmr\"}')")


def test_a_job_is_claimed_only_by_a_worker_that_has_its_backend(store):
    phalp, _ = store.submit("/v/a.mp4", params={"backend": "phalp"}, priority=5)
    plain, _ = store.submit("/v/b.mp4")
    # not registered (no backends): only the job that leaves the backend to its worker, despite priorities
    assert store.claim("unregistered", 10).id == plain.id and store.claim("unregistered", 10) is None
    store.register_worker("pose-only", host="h", pid=1, gpu=None, mode="warm", backends=["blazepose"])
    assert store.claim("pose-only", 10) is None
    store.register_worker("has-phalp", host="h", pid=2, gpu=None, mode="warm", backends=["blazepose", "phalp"])
    assert store.claim("has-phalp", 10).id == phalp.id


def test_a_worker_without_the_backend_never_claims_a_phalp_job(store, start_worker):
    worker = start_worker()  # no POSE_PHALP_DIR: blazepose (here the fake pipeline) only
    phalp, _ = store.submit("/videos/a.mp4", params={"backend": "phalp"}, priority=10)
    plain, _ = store.submit("/videos/b.mp4", params={"behave": "ok", "frames": 2})
    assert finished(store, plain.id).state == JobState.SUCCEEDED  # the lower-priority job ran, the other not
    job = store.get(phalp.id)
    assert job.state == JobState.QUEUED and job.attempt == 0 and job.worker_id is None
    with store.engine.connect() as conn:
        backends = conn.exec_driver_sql("SELECT backends FROM pose_workers").scalar_one()
    assert backends == ["blazepose"] and "backends: blazepose (default blazepose)" in worker.log()


def test_phalp_jobs_run_track_py_and_their_results_are_result_documents(store, start_worker, tmp_path):
    checkout = make_checkout(tmp_path)
    # default backend blazepose (the fake pipeline), phalp configured; DEBUG: the child's output in the log
    worker = start_worker(env={**checkout.env(), "POSE_LOG_LEVEL": "DEBUG"})
    long_video = make_video(tmp_path / "long.mp4", frames=12, width=48, height=64, fps=12.5)
    short_video = make_video(tmp_path / "short.mp4", frames=3, width=48, height=64, fps=12.5)
    avi = make_video(tmp_path / "clip.avi", frames=4, width=64, height=48, fps=10, fourcc="MJPG")

    first, _ = store.submit(str(long_video), params={"backend": "phalp"}, max_attempts=1)
    done = finished(store, first.id, timeout=60)
    assert done.state == JobState.SUCCEEDED, done.error_message
    run = checkout.runs()[0]
    work = os.path.dirname(run["argv"][1].partition("=")[2])  # video.source is <work dir>/input.mp4
    assert run["argv"][0].endswith("/track.py") and run["argv"][1:] == [
        f"video.source={work}/input.mp4", f"video.output_dir={work}/out", "render.enable=false",
        "video.end_frame=12", "hydra.job.chdir=false", "hydra.output_subdir=null", f"hydra.run.dir={work}"]
    assert run["cwd"] == work and not os.path.exists(work)  # the private directory is gone afterwards
    assert "backends: blazepose, phalp (default blazepose)" in worker.log()
    doc = result(store, first.id)
    assert doc["model"]["backend"] == "phalp" and doc["video"]["fps"] == 12.5  # the container's, not 30
    assert doc["video"]["frames"] == 12 and [f["time_s"] for f in doc["frames"][:3]] == [0.0, 0.08, 0.16]
    people = doc["frames"][0]["people"]
    assert [p["track_id"] for p in people] == [7] and people[0]["bbox"] == [12.0, 16.0, 22.0, 36.0]
    assert people[0]["keypoints"][0][:2] == [-7.36, 32.0] and people[0]["joints_2d_px"][0] == [-7.36, 32.0]
    assert len(people[0]["keypoints"]) == 33 and len(people[0]["world"]) == 33 and len(people[0]["joints_3d"]) == 45
    last = doc["frames"][-1]["people"]
    assert [(p["track_id"], p["ghost"]) for p in last] == [(7, False), (9, True)]
    with store.engine.connect() as conn:  # the standard columns queryable by SQL, PHALP's fields in extra
        row = conn.exec_driver_sql(
            f"SELECT bbox, extra->'ghost', jsonb_array_length(extra->'joints_3d') FROM pose_frame_rows "
            f"WHERE job_id = {first.id} AND frame_index = 11 AND track_id = 9").one()
    assert list(row[0]) == [12.0, 16.0, 33.0, 36.0] and row[1] is True and row[2] == 45
    with store.engine.connect() as conn:  # docs/phalp.md's example query
        pelvis = conn.exec_driver_sql(
            "SELECT f.frame_index, (f.extra->'joints_3d'->39->>1)::real AS pelvis_y_m, (f.extra->>'ghost')::boolean "
            "FROM pose_frame_rows AS f JOIN pose_jobs AS j ON j.id = f.job_id AND f.attempt = j.attempt "
            f"WHERE f.job_id = {first.id} AND f.track_id = 9 ORDER BY f.frame_index").all()
    assert [tuple(r) for r in pelvis] == [(11, -0.5, True)]

    checkout.set_mode("ok")
    short, _ = store.submit(str(short_video), params={"backend": "phalp"}, max_attempts=1)
    converted, _ = store.submit(str(avi), params={"backend": "phalp"}, max_attempts=1)
    for job in (short, converted):
        done = finished(store, job.id, timeout=60)
        assert done.state == JobState.SUCCEEDED, done.error_message
    short_run, avi_run = checkout.runs()[1:3]
    assert "phalp.n_init=3" in short_run["argv"] and "video.end_frame=3" in short_run["argv"]
    assert [len(f["people"]) for f in result(store, short.id)["frames"]] == [1, 1, 2]
    # the AVI became an MP4 named input.mp4 with every frame, its size and rate kept
    assert avi_run["source_is_mp4"] and (avi_run["frames"], avi_run["width"], avi_run["height"]) == (4, 64, 48)
    avi_doc = result(store, converted.id)
    assert avi_doc["video"]["fps"] == 10 and avi_doc["frames"][0]["people"][0]["bbox"][:2] == [16.0, 12.0]
    assert "track.py: Tracking : input 4 frames" in worker.log()  # track.py's output is in the worker's log


def test_track_py_without_a_proper_result_fails_the_job_and_a_hanging_one_is_killed(store, start_worker, tmp_path):
    checkout = make_checkout(tmp_path)
    # phalp as the worker's default backend, set by flags: jobs without params run on it. A stall guard of
    # 1 s would kill every run here (track.py reports no progress): phalp jobs have only their deadline
    start_worker("--backend", "phalp", "--phalp-dir", str(checkout.path), "--phalp-python", sys.executable,
                 "--stall-s", "1", env={k: v for k, v in checkout.env().items() if k.startswith("STANDIN")})
    video = make_video(tmp_path / "v.mp4", frames=2, width=48, height=64, fps=25)
    expected = {"no_output": "track.py wrote no results/demo_input.pkl", "bad_shape": "3d_joints has shape (44, 3)",
                "exit1": "track.py exited with status 1"}  # a missing key: test_units.py
    for mode, message in expected.items():
        checkout.set_mode(mode)
        job, _ = store.submit(str(video), max_attempts=1)
        done = finished(store, job.id, timeout=60)
        assert done.state == JobState.FAILED and done.error_kind == "pipeline_error", (mode, done.error_message)
        assert message in done.error_message and "Tracking : input 2 frames" in done.error_message  # its output
        assert open_result(store, job.id) is None  # never an empty success

    checkout.set_mode("hang")
    job, _ = store.submit(str(video), timeout_s=3, max_attempts=1)
    wait_for(lambda: len(checkout.runs()) == len(expected) + 1, 30, what="track.py to start")
    pid = checkout.runs()[-1]["pid"]
    done = finished(store, job.id, timeout=60)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert done.error_message.startswith("ran past its deadline of 3s")

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as fh:  # killed but not yet reaped counts as gone
            return fh.read().split(") ", 1)[1].startswith("Z")

    wait_for(gone, 10, what=f"track.py {pid} to be killed")


def test_two_concurrent_jobs_never_read_each_others_output(store, start_worker, tmp_path):
    checkout = make_checkout(tmp_path)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    env = {**checkout.env(), "STANDIN_RENDEZVOUS": str(rendezvous)}  # each run waits until both are running
    start_worker(env=env)
    start_worker(env=env)
    small = make_video(tmp_path / "small.mp4", frames=3, width=48, height=64, fps=25)
    large = make_video(tmp_path / "large.mp4", frames=6, width=96, height=64, fps=25)
    a, _ = store.submit(str(small), params={"backend": "phalp"}, max_attempts=1)
    b, _ = store.submit(str(large), params={"backend": "phalp"}, max_attempts=1)
    for job in (a, b):
        assert finished(store, job.id, timeout=90).state == JobState.SUCCEEDED
    assert len(os.listdir(rendezvous)) == 2  # both were inside track.py at the same time
    runs = checkout.runs()
    assert len({r["cwd"] for r in runs}) == 2  # two private directories
    small_doc, large_doc = result(store, a.id), result(store, b.id)
    assert small_doc["video"]["frames"] == 3 and large_doc["video"]["frames"] == 6
    # each pickle's boxes start at (W/4, H/4) of its own input
    assert small_doc["frames"][0]["people"][0]["bbox"][:2] == [12.0, 16.0]
    assert large_doc["frames"][0]["people"][0]["bbox"][:2] == [24.0, 16.0]


def test_the_command_line_submits_a_phalp_job_and_refuses_an_unknown_backend(database_url, store, tmp_path,
                                                                              monkeypatch, capsys):
    from jobs.cli import main

    monkeypatch.setenv("POSE_DATABASE_URL", database_url)
    monkeypatch.setenv("POSE_HOME", str(tmp_path))
    video = make_video(tmp_path / "clip.mp4", frames=2, width=48, height=64, fps=25)
    assert main(["submit", str(video), "--params", '{"backend": "hmr"}']) == 2
    assert "--params: backend must be one of 'blazepose', 'phalp', got 'hmr'" in capsys.readouterr().err
    assert main(["submit", str(video), "--params", '{"backend": "phalp"}']) == 0
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT backend FROM pose_jobs").all() == [("phalp",)]
