"""Analysis jobs end to end on a real worker (issue 13): the analysis a pose job gets when it
succeeds, a re-analysis with other params beside it, uploaded result@1 and TRC files, the stored
document against ``analyze()`` of the same keypoints, and the exports parsed back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest

from jobs.analyses import find_analysis, stream_document, submit_analysis
from jobs.analysis_export import ExportFormat, TrackRequired, export
from jobs.result_stream import FrameWindow, ResultFormat, open_result
from jobs.store import JobStore
from tests.conftest import wait_for
from worker.pipeline.analysis import analyze

SYNTHETIC = "bench.synthetic_pipeline:create"


def _analysis_jobs(url: str, source: int) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT id, state FROM pose_jobs WHERE kind = 'analysis' AND source_job_id = %s ORDER BY id", (source,))]


def _state(url: str, job_id: int) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state, error_message FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    assert row[0] != "failed", row[1]
    return str(row[0])


def _document(store: JobStore, job_id: int, **window: Any) -> dict[str, Any]:
    return json.loads("".join(stream_document(store, find_analysis(store, job_id, visible_to=None), **window)))


def _result(store: JobStore, job_id: int) -> dict[str, Any]:
    pieces = open_result(store, job_id, visible_to=None, fmt=ResultFormat.JSON, window=FrameWindow())
    assert pieces is not None
    return json.loads("".join(pieces))


def _upload(store: JobStore, data: bytes) -> int:
    return store.store_upload([data], filename="keypoints", content_type=None, max_bytes=1 << 30)


@pytest.fixture
def analysed(store: JobStore, database_url: str, start_worker: Any) -> dict[str, Any]:
    """A two-person synthetic pose job, its automatic analysis done, by one worker (kept running)."""
    start_worker(pipeline=SYNTHETIC)
    job, _ = store.submit("/synthetic.mp4", params={"frames": 120, "people": 2, "fps": 30})
    wait_for(lambda: _analysis_jobs(database_url, job.id) and _state(database_url, _analysis_jobs(
        database_url, job.id)[0][0]) == "succeeded", timeout=60, what="the automatic analysis")
    return {"job": job, "result": _result(store, job.id)}


def test_automatic_analysis_matches_analyze_and_reanalysis_keeps_the_first(
        store: JobStore, database_url: str, analysed: dict[str, Any]) -> None:
    job = analysed["job"]
    expected = analyze(analysed["result"], {}, source=f"job {job.id}")
    document = _document(store, job.id)
    assert document == expected
    assert [t["track_id"] for t in document["tracks"]] == [1, 2]

    # windows and tracks: the same numbers, cut
    part = _document(store, job.id, first=10, stop=20, tracks=[1])
    (track,) = part["tracks"]
    full = next(t for t in expected["tracks"] if t["track_id"] == 1)
    assert track["frames"] == list(range(10, 20))
    assert track["angles"]["left_knee"] == full["angles"]["left_knee"][10:20]
    assert track["yaw"] == full["yaw"][10:20]

    # re-analysis with other params: a second analysis, the latest served, the first kept
    second = submit_analysis(store, source_job_id=job.id, params={"cutoff_hz": 3.0, "stance": "goofy"})
    wait_for(lambda: _state(database_url, second.id) == "succeeded", timeout=60, what="the re-analysis")
    latest = _document(store, job.id)
    assert latest == analyze(analysed["result"], {"cutoff_hz": 3.0, "stance": "goofy"}, source=f"job {job.id}")
    assert latest != document
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT params->>'cutoff_hz' FROM pose_analyses WHERE source_job_id = %s ORDER BY id",
                            (job.id,)).fetchall()
    assert [r[0] for r in rows] == ["6.0", "3.0"]
    first_job = _analysis_jobs(database_url, job.id)[0][0]
    assert _document(store, first_job) == document  # an analysis job serves its own


def _parse_csv(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def test_exports_parse_back(store: JobStore, analysed: dict[str, Any]) -> None:
    job = analysed["job"]
    ref = find_analysis(store, job.id, visible_to=None)
    expected = {t["track_id"]: t for t in analyze(analysed["result"], {})["tracks"]}
    header, rows = _parse_csv("".join(export(store, ref, ExportFormat.CSV)))
    assert header[:4] == ["frame_index", "time_s", "track_id", "left_knee_deg"]
    assert "left_knee_world_x_m" in header and "nose_x_px" in header and "yaw_deg" in header
    assert len(rows) == 240 and all(len(r) == len(header) for r in rows)
    knee, yaw = header.index("left_knee_deg"), header.index("yaw_deg")
    for row in rows:
        track, frame = expected[int(row[2])], int(row[0])
        i = track["frames"].index(frame)
        assert float(row[knee]) == pytest.approx(track["angles"]["left_knee"][i], abs=0.006)
        assert float(row[yaw]) == pytest.approx(track["yaw"][i], abs=0.006)

    with pytest.raises(TrackRequired):
        export(store, ref, ExportFormat.MOT)
    mot = "".join(export(store, ref, ExportFormat.MOT, 1)).splitlines()
    end = mot.index("endheader")
    assert mot[1:end] == ["version=1", "nRows=120", f"nColumns={1 + len(ref.angle_names) + 3}", "inDegrees=yes"]
    columns = mot[end + 1].split("\t")
    assert columns[0] == "time" and columns[1:len(ref.angle_names) + 1] == ref.angle_names
    data = np.array([[float(v) for v in line.split("\t")] for line in mot[end + 2:]])
    assert data.shape == (120, len(columns))
    assert data[:, 0] == pytest.approx(np.arange(120) / 30, abs=1e-6)
    knee = np.array(expected[1]["angles"]["left_knee"], dtype=float)
    assert data[:, columns.index("left_knee")] == pytest.approx(knee, abs=0.006)

    trc = "".join(export(store, ref, ExportFormat.TRC, 1))
    lines = trc.splitlines()
    assert lines[0].split("\t")[:3] == ["PathFileType", "4", "(X/Y/Z)"]
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    assert keys == ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                    "OrigDataStartFrame", "OrigNumFrames"]
    info = dict(zip(keys, values, strict=True))
    assert (info["DataRate"], info["NumFrames"], info["NumMarkers"], info["Units"]) == ("30", "120", "33", "m")
    assert lines[3].split("\t")[:3] == ["Frame#", "Time", "nose"]
    assert lines[4].split("\t")[2:5] == ["X1", "Y1", "Z1"] and lines[5] == ""
    frames = [f for f in analysed["result"]["frames"] for p in f["people"] if p["track_id"] == 1]
    first = lines[6].split("\t")
    person = next(p for p in frames[0]["people"] if p["track_id"] == 1)
    assert int(first[0]) == frames[0]["index"] + 1
    assert [float(v) for v in first[2:5]] == pytest.approx(
        [person["world"][0][0], -person["world"][0][1], -person["world"][0][2]], abs=1e-5)

    # the TRC analyses like the stored keypoints do (3D angles; a TRC has no image, so 2D ones are null)
    upload = submit_analysis(store, upload_id=_upload(store, trc.encode()))
    wait_for(lambda: _state(store_url(store), upload.id) == "succeeded", timeout=60, what="the TRC analysis")
    (from_trc,) = _document(store, upload.id)["tracks"]
    assert from_trc["frames"] == expected[1]["frames"]
    assert np.array(from_trc["angles"]["left_knee"], dtype=float) == pytest.approx(knee, abs=0.05)
    assert all(v is None for v in from_trc["angles"]["left_knee_2d"])


def store_url(store: JobStore) -> str:
    return store.engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg", "postgresql")


def test_uploaded_result_analyses_like_the_document(store: JobStore, analysed: dict[str, Any]) -> None:
    result = analysed["result"]
    upload = submit_analysis(store, upload_id=_upload(store, json.dumps(result).encode()), params={"stance": "regular"})
    wait_for(lambda: _state(store_url(store), upload.id) == "succeeded", timeout=60, what="the upload's analysis")
    document = _document(store, upload.id)
    expected = analyze(result, {"stance": "regular"}, source=f"upload {upload.upload_id}")
    assert document == expected



def test_the_analysis_child_loads_no_pose_model_whatever_the_default_backend() -> None:
    from worker.analysis_job import PIPELINE, child_slot
    from worker.pipeline.analysis.pipeline import AnalysisPipeline
    from worker.pipeline.backends import BACKEND_ENV, BackendPipelines

    slot = child_slot({BACKEND_ENV: "phalp", "POSE_LOG_LEVEL": "INFO"}, recycle_after=10, kill_grace_s=1.0)
    assert slot.pipeline == PIPELINE and slot.env[BACKEND_ENV] == "blazepose"
    assert isinstance(BackendPipelines(PIPELINE, slot.env[BACKEND_ENV]).get(), AnalysisPipeline)
