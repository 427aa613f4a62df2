"""The neutral hand the window shows first, read from a shipped resource without torch or the hand model.

The window process only draws meshes it is sent (issue 27: a GUI without torch). Its first hand — the
Anny hand in the rest pose, palm to the camera — comes from `resources/mesh/anny_neutral.npz`, written
by `scripts/make_neutral_hand.py` from the hand model itself (`neutral_arrays`) and checked against it
by the tests. This module imports numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import WeightsError
from core.paths import RESOURCES

NEUTRAL_HAND = RESOURCES / "mesh" / "anny_neutral.npz"
REBUILD = "ANNY_CACHE_DIR=.cache/anny .venv/bin/python scripts/make_neutral_hand.py"


@dataclass(frozen=True)
class NeutralHand:
    """vertices (V,3) and joints (21,3) in metres (camera frame), faces (F,3), and the global
    orientation (3,) axis-angle that turns the rest pose to the camera."""

    vertices: np.ndarray
    joints: np.ndarray
    faces: np.ndarray
    global_orient: np.ndarray


def load_neutral_hand(path=None) -> NeutralHand:
    """Read and check the shipped neutral hand; a missing or damaged file names the rebuild command."""
    path = NEUTRAL_HAND if path is None else path
    try:
        with np.load(path, allow_pickle=False) as z:
            hand = NeutralHand(np.asarray(z["vertices"], np.float32), np.asarray(z["joints"], np.float32),
                               np.asarray(z["faces"], np.int64), np.asarray(z["global_orient"], np.float32))
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable neutral hand ({type(exc).__name__}); rebuild it: {REBUILD}") from None
    v, f = hand.vertices, hand.faces
    if (v.ndim != 2 or v.shape[1] != 3 or hand.joints.shape != (21, 3) or f.ndim != 2 or f.shape[1] != 3
            or f.min() < 0 or f.max() >= len(v) or not np.isfinite(v).all() or hand.global_orient.shape != (3,)):
        raise WeightsError(f"{path}: malformed neutral hand; rebuild it: {REBUILD}")
    return hand


def neutral_arrays() -> dict[str, np.ndarray]:
    """The resource's content computed from the Anny hand model (imports torch; scripts and tests only)."""
    import torch

    from core.hand import load_hand_model
    from core.hand.base import FACING_CAMERA_ORIENT

    hand = load_hand_model("anny")
    orient = torch.tensor([FACING_CAMERA_ORIENT], dtype=torch.float32)
    with torch.inference_mode():
        out = hand.forward(orient)
    return {"vertices": out.vertices[0].numpy().astype(np.float32), "joints": out.joints[0].numpy().astype(np.float32),
            "faces": np.asarray(hand.faces, np.int32), "global_orient": orient[0].numpy()}
