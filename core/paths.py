"""Where the project keeps its files: shipped resources and the set-up cache (one source of truth)."""
from __future__ import annotations

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
RESOURCES = REPO_ROOT / "resources"
#: Shipped weights; `POSE_VIEWER_MODELS` points at another folder (your own retrained models).
MODELS_DIR = pathlib.Path(os.environ.get("POSE_VIEWER_MODELS", RESOURCES / "models"))
#: A photo-like render of an Anny right hand made by the project's renderer (first-launch hint, tests).
SAMPLE_IMAGE = RESOURCES / "samples" / "anny_right_256.jpg"


def cache_dir() -> pathlib.Path:
    """Project-controlled cache (Anny build, MediaPipe bundle); `POSE_VIEWER_CACHE` overrides."""
    return pathlib.Path(os.environ.get("POSE_VIEWER_CACHE", REPO_ROOT / ".cache"))


def anny_cache_dir() -> pathlib.Path:
    """Anny's asset cache; honours `ANNY_CACHE_DIR` when the user set it."""
    return pathlib.Path(os.environ.get("ANNY_CACHE_DIR", cache_dir() / "anny"))


def mediapipe_task_path() -> pathlib.Path:
    """The HandLandmarker bundle assembled by `scripts/setup.sh`."""
    return cache_dir() / "mediapipe" / "hand_landmarker.task"
