"""Fixtures for the BlazePose model files, shared by every pipeline test.

Tests that need the real weights take ``model_paths`` (or one of the per-model fixtures) and fail,
with the command that fixes it, when the weights are absent: a parity suite that silently skips would
look green while proving nothing. ``make test`` runs ``pose-service models fetch`` first. The
directory is the one the service uses (``POSE_MODEL_DIR``, else ``$POSE_HOME/models``, else ``~/.pose-service/models``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import torch

from worker.pipeline import pose
from worker.pipeline.blazepose import weights


@pytest.fixture(scope="session")
def model_paths() -> dict[str, Path]:
    """Verified paths by name (``pose_detection``, ``pose_landmark_full``)."""
    try:
        return weights.model_paths(weights.default_model_dir())
    except weights.MissingModels as exc:
        pytest.fail(f"BlazePose weights not available: {exc}")


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


@pytest.fixture(scope="module")
def pipeline(model_paths: dict[str, Path]) -> Iterator[pose.PosePipeline]:
    """The pipeline with the service's thread settings, restored afterwards for other test modules."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    pose.configure_cpu_threads()
    yield pose.PosePipeline(model_dir=model_paths["pose_detection"].parent)
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)
