"""`pose-service doctor`: per backend, usable or not and why, with the verdict the worker acts on."""

from __future__ import annotations

import sys

from jobs.cli import main
from tests.phalp.helpers import make_checkout


def test_doctor_says_why_a_backend_is_not_usable(tmp_path, capsys, monkeypatch):
    for name in ("POSE_PHALP_DIR", "POSE_PHALP_PYTHON", "POSE_SMPL_MODEL", "POSE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert main(["doctor", "--model-dir", str(tmp_path / "no-weights"), "--backend", "phalp"]) == 1
    out = capsys.readouterr().out
    assert "blazepose: NOT usable" in out and "pose_detection.tflite is missing" in out
    assert "phalp (default): NOT usable" in out and "why not: POSE_PHALP_DIR is not set" in out
    assert "mesh vertices (phalp, POSE_SMPL_MODEL): not configured" in out


def test_doctor_finds_a_checkout_usable_and_can_check_its_imports(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("POSE_SMPL_MODEL", raising=False)
    checkout = make_checkout(tmp_path)
    flags = ["doctor", "--backend", "phalp", "--phalp-dir", str(checkout.path), "--phalp-python", sys.executable]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert "phalp (default): usable" in out and f"track.py: {checkout.path / 'track.py'}" in out
    # this interpreter has no phalp package: the deeper check says so
    assert main([*flags, "--check-imports"]) == 1
    out = capsys.readouterr().out
    assert "cannot import joblib, phalp and hmr2: ModuleNotFoundError: No module named 'phalp'" in out
