"""Fixtures for the BlazePose model files, shared by every pipeline test.

Tests that need the real weights take ``model_paths`` (or one of the per-model fixtures) and are skipped,
with the command that fixes it, when the weights are absent. ``make test`` runs
``pose-service models fetch`` first, so in CI they always run. The directory is the one the service
uses (``POSE_MODEL_DIR``, else ``$POSE_HOME/models``, else ``~/.pose-service/models``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.pipeline import weights


@pytest.fixture(scope="session")
def model_paths() -> dict[str, Path]:
    """Verified paths by name (``pose_detection``, ``pose_landmark_full``); skips if the weights are absent."""
    try:
        return weights.model_paths(weights.default_model_dir())
    except weights.MissingModels as exc:
        pytest.skip(f"BlazePose weights not available: {exc}")


@pytest.fixture(scope="session")
def model_dir(model_paths: dict[str, Path]) -> Path:
    """The directory holding the verified weights (what ``PosePipeline(model_dir=...)`` takes)."""
    return model_paths["pose_detection"].parent


@pytest.fixture(scope="session")
def pose_detection_path(model_paths: dict[str, Path]) -> Path:
    """The detector, ``pose_detection.tflite`` (input 1x224x224x3 in [-1, 1])."""
    return model_paths["pose_detection"]


@pytest.fixture(scope="session")
def pose_landmark_path(model_paths: dict[str, Path]) -> Path:
    """The landmark model, ``pose_landmark_full.tflite`` (input 1x256x256x3 in [0, 1])."""
    return model_paths["pose_landmark_full"]
