"""The phalp backend's parts on their own: the pixel conversion (by hand), the joint mapping, the pickle
reader (on pickles the stand-in track.py builds), the exact command line, the settings check, the SMPL
vertices on a synthetic model and the refusals, and the params check at submit. No database, no worker."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.phalp import standin_track
from tests.phalp.helpers import make_checkout
from worker.pipeline.io.keypoints import KEYPOINT_NAMES
from worker.pipeline.io.video_source import VideoInfo
from worker.pipeline.params import InvalidParams, schema_for_job
from worker.pipeline.phalp import results
from worker.pipeline.phalp.config import PhalpConfig
from worker.pipeline.phalp.invocation import PreparedInput, hydra_value, track_command
from worker.pipeline.phalp.joints import PHALP_JOINT_NAMES, blazepose_points, joints_to_pixels
from worker.pipeline.phalp.pipeline import person
from worker.pipeline.phalp.results import PhalpOutputError
from worker.pipeline.phalp.smpl import SmplModel, SmplModelError

KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def test_pixels_are_the_normalised_joints_times_the_padded_side_minus_the_padding():
    # portrait 48 x 64: S = 64, padding ((64 - 48) // 2, 0) = (8, 0)
    flat = np.tile([0.5, 0.25], 45)
    flat[0:2] = (0.01, 0.5)
    px = joints_to_pixels(flat, 48, 64)
    assert px.shape == (45, 2)
    assert px[1].tolist() == [0.5 * 64 - 8, 0.25 * 64 - 0] == [24.0, 16.0]
    assert px[0].tolist() == pytest.approx([0.01 * 64 - 8, 32.0])  # -7.36: PHALP's joints may leave the frame
    # landscape 101 x 64, odd padding: S = 101, ((101 - 101) // 2, (101 - 64) // 2) = (0, 18)
    assert joints_to_pixels(np.full(90, 0.5), 101, 64)[7].tolist() == [50.5, 50.5 - 18]


def test_the_45_joints_are_named_and_33_keypoints_come_from_them():
    assert len(PHALP_JOINT_NAMES) == 45 and PHALP_JOINT_NAMES[0] == "op_nose" and PHALP_JOINT_NAMES[44] == "zero"
    assert PHALP_JOINT_NAMES[25] == "j19_right_ankle" and PHALP_JOINT_NAMES[38] == "j19_head_top_lsp"
    keypoints, world = blazepose_points(standin_track.joints_3d(), np.zeros((45, 2)), np.array([0, 0, 10.0]), 64, 64)
    assert keypoints.shape == (33, 5) and world.shape == (33, 3)
    # world is hip-centred: the hips' midpoint (0, 0, 0) here; left hip is OpenPose joint 12
    assert world[KP["left_hip"]].tolist() == pytest.approx([0.1, 0.0, 0.02])
    assert world[KP["right_knee"]].tolist() == pytest.approx([-0.1, 0.45, 0.1])
    # z in pixels at the hips' depth: 0.02 m x 5000 x 64 / (256 x 10 m) = 2.5 px
    assert keypoints[KP["left_hip"], 2] == pytest.approx(2.5)
    unmapped = [KP[n] for n in ("left_eye_inner", "mouth_left", "left_pinky", "right_thumb")]
    assert (keypoints[unmapped, 3:] == 0).all() and (keypoints[KP["left_knee"], 3:] == 1).all()


def _pickle(tmp_path: Path, frames: int, width: int, height: int, mode: str = "ok") -> Path:
    images = [np.zeros((height, width, 3), np.uint8) for _ in range(frames)]
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    joblib.dump(standin_track.build(images, str(out), mode), out / "results" / "demo_input.pkl", compress=3)
    return out


def test_the_pickle_is_read_in_frame_order_with_ghosts_marked(tmp_path):
    out = _pickle(tmp_path, frames=12, width=48, height=64)  # 12 frames: keys 000001 ... 000012 sort as frames
    frames = list(results.frames(results.load(out)))
    assert len(frames) == 12
    assert [t[0].bbox_xywh[2] for t in frames] == [10 + t for t in range(12)]  # w = 10 + t: frame order
    assert [[(x.track_id, x.ghost) for x in f] for f in frames[-2:]] == [[(7, False)], [(7, False), (9, True)]]
    first = person(frames[0][0], 48, 64)
    assert first["bbox"] == [12.0, 16.0, 22.0, 36.0]  # [W/4, H/4, w, h] as x0, y0, x1, y1
    assert first["score"] == 0.9 and first["ghost"] is False and first["track_id"] == 7
    assert first["keypoints"][KP["nose"]][:2] == [-7.36, 32.0]  # joint 0 at (0.01, 0.5): 0.01 x 64 - 8, 0.5 x 64
    assert first["keypoints"][KP["left_hip"]][:2] == [24.0, 16.0]
    assert first["joints_2d_px"][1] == [24.0, 16.0] and len(first["joints_2d_px"]) == 45
    assert np.array(first["smpl"]["body_pose"]).shape == (23, 3, 3) and len(first["smpl"]["betas"]) == 10
    assert np.array(first["joints_3d"]).shape == (45, 3) and first["camera"] == [0.01, 0.02, 10.0]


def test_a_short_clip_with_raw_images_in_the_pickle_is_read(tmp_path):
    out = _pickle(tmp_path, frames=3, width=48, height=64)  # clips of <= n_init frames keep "frame" (images)
    assert "frame" in joblib.load(out / "results" / "demo_input.pkl")[next(iter(joblib.load(
        out / "results" / "demo_input.pkl")))]
    assert [len(f) for f in results.frames(results.load(out))] == [1, 1, 2]


@pytest.mark.parametrize(("mode", "message"), [
    ("bad_shape", "3d_joints has shape (44, 3), expected (45, 3)"),
    ("missing_key", "has no 'smpl'"),
])
def test_a_pickle_of_the_wrong_structure_is_an_error(tmp_path, mode, message):
    out = _pickle(tmp_path, frames=2, width=48, height=64, mode=mode)
    with pytest.raises(PhalpOutputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(results.frames(results.load(out)))


def test_only_results_demo_input_pkl_is_read(tmp_path):
    out = _pickle(tmp_path, frames=2, width=48, height=64)
    (out / "results" / "demo_input.pkl").rename(out / "results" / "demo_other.pkl")  # a stale or foreign file
    with pytest.raises(PhalpOutputError, match="wrote no results/demo_input.pkl"):
        results.load(out)
    joblib.dump([1, 2], out / "results" / "demo_input.pkl", compress=3)
    with pytest.raises(PhalpOutputError, match="holds a list"):
        results.load(out)
    (out / "results" / "demo_input.pkl").write_bytes(b"not a pickle")
    with pytest.raises(PhalpOutputError, match="cannot be read with joblib.load"):
        results.load(out)


def test_the_command_line_is_the_exact_argument_list(tmp_path):
    checkout = make_checkout(tmp_path)
    config = PhalpConfig(checkout.path, Path(sys.executable), "phalp.low_th_c=0.7 'device=cuda:1'")
    work = tmp_path / "work dir"  # a space: quoted for Hydra, and no shell ever sees it
    info = VideoInfo(width=48, height=64, fps=12.5, frame_count=2000, rotation=0)
    prepared = PreparedInput(work / "input.mp4", info, 2000, converted=False)
    command = track_command(config, prepared, work / "out", work)
    assert command[:4] == [sys.executable, "-m", "worker.pipeline.phalp.launch", "--"]
    assert command[4:6] == [sys.executable, str((checkout.path / "track.py").resolve())]
    assert command[6:] == [
        f"video.source='{work.resolve()}/input.mp4'", f"video.output_dir='{work.resolve()}/out'",
        "render.enable=false", "video.end_frame=2000",  # the whole video, not track.py's default 1300
        "hydra.job.chdir=false", "hydra.output_subdir=null", f"hydra.run.dir='{work.resolve()}'",
        "phalp.low_th_c=0.7", "device=cuda:1"]
    short = track_command(config, PreparedInput(work / "input.mp4", info, 3, converted=True), work / "out", work)
    assert "phalp.n_init=3" in short  # a clip shorter than PHALP's n_init of 5 still gets its tracks
    assert hydra_value("/plain/path-1.mp4") == "/plain/path-1.mp4" and hydra_value("a'b") == r"'a\'b'"


def test_the_settings_say_why_the_backend_is_unusable(tmp_path):
    assert PhalpConfig(None, None).problems() == [
        "POSE_PHALP_DIR is not set (a 4D-Humans checkout, the directory holding track.py)",
        "POSE_PHALP_PYTHON is not set (the interpreter of the environment 4D-Humans is installed in)"]
    assert "has no track.py" in PhalpConfig(tmp_path, Path(sys.executable)).problems()[0]
    checkout = make_checkout(tmp_path)
    assert PhalpConfig(checkout.path, Path(sys.executable)).problems() == []
    assert "is not an executable file" in PhalpConfig(checkout.path, checkout.path / "track.py").problems()[0]
    taken = PhalpConfig(checkout.path, Path(sys.executable), "video.output_dir=/tmp/x +hydra.run.dir=/").problems()
    assert taken == ["POSE_PHALP_OVERRIDES may not set hydra.run.dir, video.output_dir: the service sets them for "
                     "every job"]


def _synthetic_smpl(path: Path, vertices: int = 12) -> Path:
    """An SMPL-shaped model with random numbers (the real one is licensed): enough to check the skinning."""
    rng = np.random.default_rng(3)
    weights = rng.random((vertices, 24))
    np.savez(path, v_template=rng.normal(size=(vertices, 3)), shapedirs=rng.normal(size=(vertices, 3, 10)),
             posedirs=rng.normal(size=(vertices, 3, 207)), J_regressor=rng.random((24, vertices)) / vertices,
             weights=weights / weights.sum(axis=1, keepdims=True),
             kintree_table=np.array([[-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
                                     list(range(24))]), f=np.array([[0, 1, 2], [2, 3, 4]]))
    return path


def test_smpl_vertices_follow_the_skinning_rules(tmp_path):
    model = SmplModel.load(_synthetic_smpl(tmp_path / "smpl.npz"))
    identity, rest = np.eye(3)[None], np.tile(np.eye(3), (23, 1, 1))
    betas = np.linspace(-1, 1, 10)
    # rest pose: the template moved by the shape blend shapes only
    at_rest = model.vertices(identity, rest, betas)
    assert np.allclose(at_rest, model.v_template + model.shapedirs @ betas)
    # a global rotation turns the whole rest body about its root joint
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    root = (model.j_regressor @ (model.v_template + model.shapedirs @ betas))[0]
    assert np.allclose(model.vertices(turn[None], rest, betas), (at_rest - root) @ turn.T + root)


def test_an_unusable_smpl_model_is_refused_with_the_reason(tmp_path):
    with pytest.raises(SmplModelError, match="is not a file"):
        SmplModel.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(SmplModelError, match="is not an SMPL model: it needs"):
        SmplModel.load(tmp_path / "partial.npz")
    # an original SMPL pickle holds chumpy objects: unpickling needs a package that is not installed
    chumpy_like = tmp_path / "basicModel_neutral.pkl"
    chumpy_like.write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00)\x81q\x01.")
    with pytest.raises(SmplModelError, match="needs the chumpy package .* convert it to .npz"):
        SmplModel.load(chumpy_like)
    with open(tmp_path / "arrays.pkl", "wb") as fh:  # a pickle of plain arrays is fine
        pickle.dump(dict(np.load(_synthetic_smpl(tmp_path / "s.npz"))), fh)
    assert SmplModel.load(tmp_path / "arrays.pkl").faces.shape == (2, 3)


def test_params_name_a_known_backend_and_phalp_jobs_take_phalp_params():
    pose = "worker.pipeline.pose:create"
    with pytest.raises(InvalidParams, match="backend must be one of 'blazepose', 'phalp', got 'hmr'"):
        schema_for_job(pose, {"backend": "hmr"}).validate({"backend": "hmr"})  # type: ignore[union-attr]
    phalp = schema_for_job(pose, {"backend": "phalp"})
    assert phalp is not None and phalp.validate({"backend": "phalp", "mesh": True}) == {"mesh": True}
    with pytest.raises(InvalidParams, match="unknown pipeline params"):
        phalp.validate({"backend": "phalp", "max_people": 2})
    blazepose = schema_for_job(pose, {"backend": "blazepose", "max_people": 2})
    assert blazepose is not None and blazepose.validate({"backend": "blazepose", "max_people": 2})["max_people"] == 2


def test_a_killed_attempts_directory_is_removed_by_the_next_job(tmp_path, monkeypatch):
    from worker.pipeline.phalp.invocation import make_work_dir

    monkeypatch.setenv("POSE_PHALP_WORK_DIR", str(tmp_path / "worker-scratch"))
    first = make_work_dir()
    (first / "out").mkdir()
    assert first.parent == tmp_path / "worker-scratch" and (first.stat().st_mode & 0o777) == 0o700
    second = make_work_dir()  # the first was never cleaned up (its child was killed)
    assert second.is_dir() and not first.exists()


def test_the_migration_knows_the_same_backends_as_the_params():
    import importlib.util

    from tests.conftest import REPO
    from worker.pipeline.params import BACKENDS

    spec = importlib.util.spec_from_file_location("m0010", REPO / "migrations" / "versions" / "0010_backends.py")
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.KNOWN == BACKENDS and migration.revision == "0010_backends"
