"""Pose files: our `.npz` (never unpickled) and a JSON of 21×3 joints in metres.

npz keys: `model` ('anny'|'mano'), `global_orient` (3,), `pose` (D,), optional `shape`,
optional `joints` (21,3) metres, optional `mask` (21,) bool (True = hidden), optional `side`.
JSON: `{"joints": [[x, y, z], ...21], "mask": [...] (optional, joint indices or 21 bools),
"side": "left"|"right" (optional, default right)}`.
"""
from __future__ import annotations

import json
import os
import pathlib
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.errors import InputError
from core.hand.pose_layout import POSE_DIM
from core.joints import FINGERS, FINGERTIPS, NUM_JOINTS, finger_joints

if TYPE_CHECKING:
    from core.results import MeshParams

MAX_POSE_FILE_BYTES = 20 * 1024 * 1024


@dataclass
class PoseFile:
    """What a pose file holds (arrays float32, metres / radians)."""

    model: str = "anny"
    global_orient: np.ndarray | None = None
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    joints: np.ndarray | None = None
    mask: np.ndarray | None = None
    side: str = "right"


def _array(value, name: str, shape: tuple[int, ...] | None, allow_nd: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"'{name}' is not numeric") from exc
    if shape is not None and arr.shape != shape:
        raise InputError(f"'{name}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"'{name}' contains NaN or Inf")
    return arr.astype(np.float32)


def _mask(value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or (arr.shape == (NUM_JOINTS,) and set(np.unique(arr).tolist()) <= {0, 1}):
        if arr.shape != (NUM_JOINTS,):
            raise InputError(f"'mask' has shape {arr.shape}, expected ({NUM_JOINTS},)")
        return arr.astype(bool)
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("not integers")
    except (TypeError, ValueError) as exc:
        raise InputError("'mask' must be 21 booleans or a list of joint indices") from exc
    if np.any(arr < 0) or np.any(arr >= NUM_JOINTS):   # before the cast: a huge index would overflow int64
        raise InputError("'mask' joint indices must be in 0..20")
    idx = arr.astype(np.int64)
    out = np.zeros(NUM_JOINTS, bool)
    out[idx] = True
    return out


def parse_mask(mask: str | None, preset: str | None, seed: int = 0) -> np.ndarray | None:
    """A hidden-joint mask from its command-line spelling (`pose-viewer complete` / `pose-viewer --mask`,
    the DPoser dock's presets): `mask` "4,8,12" (joint indices) or `preset` fingertips | finger:NAME |
    random:FRACTION → (21,) bool (True = hidden), or None when neither is given."""
    if mask is not None:
        out = np.zeros(NUM_JOINTS, bool)
        try:
            idx = [int(x) for x in mask.replace(" ", "").split(",") if x != ""]
        except ValueError as exc:
            raise InputError(f"--mask must be comma-separated joint indices 0..20, got {mask!r}") from exc
        if not idx or any(i < 0 or i >= NUM_JOINTS for i in idx):
            raise InputError(f"--mask indices must be in 0..20, got {mask!r}")
        out[idx] = True
        return out
    if preset is None:
        return None
    out = np.zeros(NUM_JOINTS, bool)
    if preset == "fingertips":
        out[list(FINGERTIPS)] = True
        return out
    if preset.startswith("finger:"):
        name = preset.split(":", 1)[1]
        if name not in FINGERS:
            raise InputError(f"--mask-preset finger:NAME needs one of {', '.join(FINGERS)}, got {name!r}")
        out[list(finger_joints(name))] = True
        return out
    if preset.startswith("random:"):
        try:
            frac = float(preset.split(":", 1)[1])
        except ValueError as exc:
            raise InputError(f"--mask-preset random:FRACTION needs a number, got {preset!r}") from exc
        if not 0 < frac < 1:
            raise InputError(f"--mask-preset random:FRACTION needs 0 < FRACTION < 1, got {frac}")
        k = max(1, int(round(frac * NUM_JOINTS)))
        out[np.random.default_rng(seed).choice(NUM_JOINTS, k, replace=False)] = True
        return out
    raise InputError(f"unknown --mask-preset {preset!r} (fingertips, finger:NAME, random:FRACTION)")


def _side(value) -> str:
    side = str(value).lower()
    if side not in ("left", "right"):
        raise InputError(f"'side' must be 'left' or 'right', got {value!r}")
    return side


def _check_joint_scale(joints: np.ndarray) -> None:
    extent = float(np.ptp(joints, axis=0).max())
    if extent > 1.0:
        raise InputError(f"joints span {extent:.1f} units: expected metres (a hand is ~0.2 m); millimetres?")
    if extent < 1e-3:
        raise InputError("joints are all at the same point")


def load_pose_file(path: str | os.PathLike) -> PoseFile:
    """Read and validate a pose file; raise InputError with a readable reason otherwise."""
    from core.io import check_input_file

    p = check_input_file(path, "a pose file", MAX_POSE_FILE_BYTES)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p)
    if suffix == ".json":
        return _load_json(p)
    raise InputError(f"unsupported pose file type '{suffix}' (use .npz or .json)")


def _load_npz(p: pathlib.Path) -> PoseFile:
    if not zipfile.is_zipfile(p):
        raise InputError("not a valid .npz archive (a pickle or a corrupt file?)")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise InputError("the .npz holds Python objects, which are never loaded (pickle)") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"cannot read the .npz ({exc})") from exc
    model = str(data["model"]) if "model" in data else "anny"
    if model not in ("anny", "mano"):
        raise InputError(f"'model' must be 'anny' or 'mano', got {model!r}")
    out = PoseFile(model=model)
    if "pose" in data:
        pose = np.asarray(data["pose"])
        dim = POSE_DIM
        out.pose = _array(pose.reshape(-1) if pose.ndim == 2 and pose.shape[0] == 1 else pose, "pose", (dim,))
        out.global_orient = _array(data.get("global_orient", np.zeros(3)), "global_orient", (3,))
    if "shape" in data:
        out.shape = _array(data["shape"], "shape", None)
        if out.shape.ndim != 1 or out.shape.size > 64:
            raise InputError(f"'shape' has shape {out.shape.shape}, expected a short vector")
    if "joints" in data:
        out.joints = _array(data["joints"], "joints", (NUM_JOINTS, 3))
        _check_joint_scale(out.joints)
    if "mask" in data:
        out.mask = _mask(data["mask"])
    if "side" in data:
        out.side = _side(data["side"])
    if out.pose is None and out.joints is None:
        raise InputError(f"no 'pose' or 'joints' key (found: {', '.join(sorted(data)) or 'nothing'})")
    return out


def _load_json(p: pathlib.Path) -> PoseFile:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})") from exc
    if isinstance(data, list):
        data = {"joints": data}
    if not isinstance(data, dict) or "joints" not in data:
        raise InputError("JSON must be an object with a 'joints' list of 21 [x, y, z] (metres)")
    joints = _array(data["joints"], "joints", (NUM_JOINTS, 3))
    _check_joint_scale(joints)
    out = PoseFile(model="anny", joints=joints)
    if data.get("mask") is not None:
        out.mask = _mask(data["mask"])
    if data.get("side") is not None:
        out.side = _side(data["side"])
    return out


def save_pose_npz(path: str | os.PathLike, global_orient: np.ndarray, pose: np.ndarray,
                  shape: np.ndarray | None = None, joints: np.ndarray | None = None, model: str = "anny") -> None:
    """Write our pose `.npz` (atomically)."""
    from core.io.export import atomic_write

    arrays = {"model": np.array(model), "global_orient": np.asarray(global_orient, np.float32),
              "pose": np.asarray(pose, np.float32)}
    if shape is not None:
        arrays["shape"] = np.asarray(shape, np.float32)
    if joints is not None:
        arrays["joints"] = np.asarray(joints, np.float32)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def pose_file_arrays(params: MeshParams, index: int | None = None, side: str = "right") -> dict[str, np.ndarray]:
    """One mesh hypothesis of a result (`index`; None: the aggregate) as our pose `.npz` arrays, the
    format `load_pose_file` reads (`pose-viewer` and `pose-viewer complete` open it): model 'anny',
    global_orient (3,), pose (45,), shape (10,) — the right-hand model's, as the result holds them —,
    side, and joints (21,3) metres in the result's frame (mirrored for a left hand) when the parameters'
    Anny meshes were computed."""
    side = _side(side)
    n = params.hyp_pose.shape[0]
    if index is not None and not -n <= index < n:
        raise InputError(f"hypothesis {index} does not exist (the result has {n})")
    pick = (lambda hyp, agg: agg) if index is None else (lambda hyp, agg: hyp[index])
    out = {"model": np.array("anny"), "side": np.array(side),
           "global_orient": np.asarray(pick(params.hyp_global_orient, params.global_orient), np.float32),
           "pose": np.asarray(pick(params.hyp_pose, params.pose), np.float32),
           "shape": np.asarray(pick(params.hyp_shape, params.shape), np.float32)}
    if params.joints is not None:
        out["joints"] = np.asarray(pick(params.hyp_joints, params.joints), np.float32)
    return out
