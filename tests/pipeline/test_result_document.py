"""The result document (DESIGN.md section 5) and the run options and CLI around it.

Checks the shape a client relies on (schema, names, skeleton, per-person fields and units), that the
video section comes from the container (a 24 fps file says 24 fps; a phone video's display rotation is
applied and reported), and that ``pose-service run`` writes the document and fails cleanly.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from jobs.cli import run as cli_run
from jobs.sample_media import media_dir
from worker.pipeline import pose
from worker.pipeline.io.result_document import KEYPOINT_NAMES, SCHEMA, SKELETON, FrameResult, build_document
from worker.pipeline.io.video_source import VideoSource, upright
from worker.pipeline.tracking.tracker import Person

MEDIA = media_dir()
FIVE_FRAMES = MEDIA / "five_frames_720p.mp4"


@pytest.fixture(scope="module")
def five_frames_doc(pipeline: pose.PosePipeline) -> dict[str, Any]:
    return pipeline(str(FIVE_FRAMES), {}, lambda done, total: None)


def write_video(path: Path, frames: int, fps: float, size: tuple[int, int] = (96, 64)) -> Path:
    """A small synthetic video: a red square in the top-left quadrant on black."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for _ in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[: h // 2, : w // 2] = (0, 0, 255)
        writer.write(img)
    writer.release()
    return path


def set_mp4_rotation(path: Path, degrees: int) -> None:
    """Give an MP4 a display rotation, as phones do, by rewriting the first track header's matrix."""
    data = bytearray(path.read_bytes())

    def find(start: int, end: int, kind: bytes) -> tuple[int, int]:
        i = start
        while i + 8 <= end:
            size, typ = struct.unpack(">I4s", data[i : i + 8])
            if typ == kind:
                return i, size
            i += size
        raise AssertionError(f"no {kind!r} box")

    moov = find(0, len(data), b"moov")
    trak = find(moov[0] + 8, sum(moov), b"trak")
    tkhd = find(trak[0] + 8, sum(trak), b"tkhd")
    body = tkhd[0] + 8
    version = data[body]
    # flags, creation/modification times, track id, reserved, duration, reserved, layer, group, volume, pad
    matrix_at = body + 4 + (8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4) + 8 + 2 + 2 + 2 + 2
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]

    def fixed(v: int) -> int:
        return (v * 65536) & 0xFFFFFFFF

    matrix = [fixed(cos), fixed(sin), 0, fixed(-sin), fixed(cos), 0, 0, 0, 1 << 30]
    data[matrix_at : matrix_at + 36] = struct.pack(">9I", *matrix)
    path.write_bytes(bytes(data))


# -- document shape ---------------------------------------------------------------------------------------


def test_document_shape_and_units(five_frames_doc: dict[str, Any]) -> None:
    doc = five_frames_doc
    assert doc["schema"] == SCHEMA == "pose-service/result@1"
    video = doc["video"]
    assert (video["width"], video["height"], video["fps"], video["frames"]) == (1280, 720, 30.0, 5)
    assert video["rotation"] == 0 and video["skipped_frames"] == 0
    assert video["duration_s"] == pytest.approx(5 / 30.0, abs=1e-3)
    model = doc["model"]
    assert model["backend"] == "torch" and model["device"] in ("cpu", "cuda")
    assert len(model["weights_sha256"]) == 64 and "blazepose" in model["name"]
    assert doc["keypoint_names"] == list(KEYPOINT_NAMES) and len(KEYPOINT_NAMES) == 33
    assert doc["keypoint_names"][0] == "nose" and doc["keypoint_names"][32] == "right_foot_index"
    assert len(doc["skeleton"]) == 35
    assert all(0 <= a < 33 and 0 <= b < 33 and a != b for a, b in doc["skeleton"])
    assert {tuple(sorted(e)) for e in doc["skeleton"]} == {tuple(sorted(e)) for e in SKELETON}
    assert set(doc["timings"]) == {"decode_s", "inference_s", "total_s"}
    assert doc["timings"]["total_s"] >= doc["timings"]["inference_s"] > 0

    assert [f["index"] for f in doc["frames"]] == [0, 1, 2, 3, 4]
    assert [f["time_s"] for f in doc["frames"]] == pytest.approx([i / 30.0 for i in range(5)], abs=1e-3)
    for frame in doc["frames"]:
        assert len(frame["people"]) >= 1
        for person in frame["people"]:
            assert set(person) >= {"track_id", "bbox", "score", "keypoints", "world"}
            kp = np.array(person["keypoints"])
            world = np.array(person["world"])
            assert kp.shape == (33, 5) and world.shape == (33, 3)
            x0, y0, x1, y1 = person["bbox"]
            assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
            inside = (kp[:, 0] >= 0) & (kp[:, 0] <= 1280) & (kp[:, 1] >= 0) & (kp[:, 1] <= 720)
            assert inside.mean() > 0.8  # pixels, not normalised coordinates
            assert ((kp[:, 3:] >= 0) & (kp[:, 3:] <= 1)).all()  # visibility, presence
            assert 0.5 <= person["score"] <= 1
            # World landmarks: metres around the hip centre (a person is ~1-2 m tall).
            hips = world[[23, 24]].mean(axis=0)
            assert np.abs(hips).max() < 0.1 and 0.3 < np.ptp(world[:, 1]) < 2.5
    json.dumps(doc)  # plain JSON types only


def test_the_document_is_what_the_api_publishes(five_frames_doc: dict[str, Any]) -> None:
    """The REST API's Result schema (web/result_document.py, published in /openapi.json and checked by
    schemathesis) describes exactly what the real pipeline writes: no field missing, none unknown."""
    from web.result_document import Result

    Result.model_validate(json.loads(json.dumps(five_frames_doc)))


def test_document_from_parts_is_json_and_rounded() -> None:
    kp = np.tile(np.array([[10.123456, 20.987654, -3.3333333, 0.912345678, 0.5]]), (33, 1))
    person = Person(7, np.array([1.0, 2.0, 30.0, 40.0]), 0.987654321, kp, np.full((33, 3), 0.123456789))
    doc = build_document(
        width=64, height=48, fps=24.0, rotation=90, frames=[FrameResult(0, 0.0, [person]), FrameResult(1, 1 / 24, [])],
        skipped_frames=2, device="cpu", weights_sha256="0" * 64, decode_s=0.1, inference_s=0.2, total_s=0.3,
    )  # fmt: skip
    text = json.dumps(doc)
    assert json.loads(text) == doc
    p = doc["frames"][0]["people"][0]
    assert p["track_id"] == 7 and p["score"] == 0.9877
    assert p["keypoints"][0] == [10.12, 20.99, -3.33, 0.9123, 0.5]
    assert p["world"][0] == [0.1235, 0.1235, 0.1235]
    assert doc["video"]["duration_s"] == pytest.approx(2 / 24, abs=1e-6)
    assert doc["video"]["rotation"] == 90 and doc["video"]["skipped_frames"] == 2


# -- metadata from the container ----------------------------------------------------------------------


def test_fps_and_timestamps_come_from_the_container(tmp_path: Path, pipeline: pose.PosePipeline) -> None:
    video = write_video(tmp_path / "at24.mp4", frames=12, fps=24.0, size=(320, 240))
    doc = pipeline(str(video), {"mode": "static"}, lambda d, t: None)
    assert doc["video"]["fps"] == 24.0
    assert doc["video"]["frames"] == 12
    assert [f["time_s"] for f in doc["frames"]] == pytest.approx([i / 24 for i in range(12)], abs=1e-3)
    assert doc["video"]["duration_s"] == pytest.approx(0.5, abs=1e-3)
    assert all(f["people"] == [] for f in doc["frames"])  # nobody in a red square


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_video_comes_out_upright(tmp_path: Path, degrees: int) -> None:
    plain = write_video(tmp_path / "plain.mp4", frames=3, fps=30.0)
    rotated = write_video(tmp_path / f"rot{degrees}.mp4", frames=3, fps=30.0)
    set_mp4_rotation(rotated, degrees)
    with VideoSource(plain) as src:
        stored = next(iter(src)).image
    with VideoSource(rotated) as src:
        assert src.info.rotation == degrees
        frame = next(iter(src)).image
        w, h = (64, 96) if degrees in (90, 270) else (96, 64)
        assert (src.info.width, src.info.height) == (w, h)
    assert frame.shape == (h, w, 3)
    # The decoded pixels are the stored ones turned clockwise by the display rotation.
    expected = np.rot90(stored, k=-degrees // 90)
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 2


def test_upright_rotates_clockwise() -> None:
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[0, 0] = 255  # top-left marker
    assert upright(frame, 0) is frame
    assert upright(frame, 90).shape == (3, 2, 3) and upright(frame, 90)[0, 1, 0] == 255  # -> top-right
    assert upright(frame, 180)[1, 2, 0] == 255  # -> bottom-right
    assert upright(frame, 270)[2, 0, 0] == 255  # -> bottom-left


def test_rotation_is_reported_in_the_document(tmp_path: Path, pipeline: pose.PosePipeline) -> None:
    video = write_video(tmp_path / "phone.mp4", frames=2, fps=30.0, size=(320, 240))
    set_mp4_rotation(video, 90)
    doc = pipeline(str(video), {}, lambda d, t: None)
    assert (doc["video"]["width"], doc["video"]["height"], doc["video"]["rotation"]) == (240, 320, 90)


# -- options and the CLI -----------------------------------------------------------------------------


def test_unknown_or_invalid_params_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown pipeline params.*'colour'"):
        pose.RunOptions.from_params({"colour": "red"})
    for bad in ({"max_people": 0}, {"max_people": "4"}, {"device": "tpu"}, {"mode": "fast"}, {"smoothing": "yes"}):
        with pytest.raises(ValueError):
            pose.RunOptions.from_params(bad)
    opts = pose.RunOptions.from_params({"max_people": 2, "mode": "static", "smoothing": False, "device": "cpu"})
    assert (opts.max_people, opts.mode, opts.smoothing, opts.device) == (2, "static", False, "cpu")


def test_progress_is_reported_per_batch(pipeline: pose.PosePipeline) -> None:
    calls: list[tuple[int, int | None]] = []
    pipeline(str(FIVE_FRAMES), {"mode": "static"}, lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (5, 5)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


@pytest.mark.usefixtures("pipeline")  # its teardown restores the thread settings the CLI changes
def test_cli_writes_document_and_overlay(tmp_path: Path) -> None:
    out, overlay = tmp_path / "out" / "result.json", tmp_path / "overlay.mp4"
    code = cli_run.main([str(FIVE_FRAMES), "-o", str(out), "--overlay", str(overlay), "--device", "cpu", "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["video"]["frames"] == 5
    cap = cv2.VideoCapture(str(overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert math.isclose(cap.get(cv2.CAP_PROP_FPS), 30.0)
    ok, drawn = cap.read()
    cap.release()
    original = cv2.VideoCapture(str(FIVE_FRAMES)).read()[1]
    assert ok and np.abs(drawn.astype(int) - original.astype(int)).max() > 100  # something was drawn


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    assert cli_run.main([str(text), "-o", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unusable input" in err and "cannot be opened as a video" in err
    assert not (tmp_path / "r.json").exists()
    assert cli_run.main([str(text), "-o", str(tmp_path / "r.json"), "--max-people", "0"]) == 2
    assert cli_run.main([str(text)]) == 2  # -o is required


def test_service_jobs_cannot_write_an_overlay_on_the_worker(pipeline, tmp_path: Path) -> None:
    """Job params come from API clients: a path to write to on the worker's host is refused."""
    target = tmp_path / "planted.mp4"
    with pytest.raises(ValueError, match="only available to `pose-service run --overlay`"):
        pipeline(str(FIVE_FRAMES), {"overlay": str(target)}, lambda done, total: None)
    assert not target.exists()


def test_emitted_frames_are_the_document_frames(pipeline: pose.PosePipeline, five_frames_doc: dict[str, Any]) -> None:
    """In a worker's child the pipeline hands each frame on as it is done (``emit_frame``) and keeps
    none: the frames and the rest of the document are the same as when it returns them whole."""
    assert pipeline.emits_frames
    emitted: list[dict[str, Any]] = []
    streamed = pipeline(str(FIVE_FRAMES), {}, lambda done, total: None, emit_frame=emitted.append)
    assert "frames" not in streamed
    assert emitted == five_frames_doc["frames"]
    for key in ("schema", "video", "model", "keypoint_names", "skeleton"):
        assert streamed[key] == five_frames_doc[key], key
