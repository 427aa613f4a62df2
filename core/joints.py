"""The 21-keypoint convention (MediaPipe / FreiHAND order) — the single source of truth.

0 wrist; thumb 1 CMC, 2 MCP, 3 IP, 4 tip; index 5 MCP, 6 PIP, 7 DIP, 8 tip; middle 9-12;
ring 13-16; pinky 17-20. Coordinates are metres, OpenCV camera axes (x right, y down, z forward).
Root-relative means the wrist (joint 0) is at the origin.
"""
from __future__ import annotations

import numpy as np

NUM_JOINTS = 21
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
JOINT_NAMES = ("wrist",) + tuple(
    f"{finger}_{part}"
    for finger, parts in zip(FINGERS, [("cmc", "mcp", "ip", "tip")] + [("mcp", "pip", "dip", "tip")] * 4)
    for part in parts
)
#: Parent of each joint in the kinematic tree (wrist is the root, parent -1).
PARENTS = np.array([-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19])
#: (parent, child) pairs for drawing the skeleton.
BONES = [(int(p), c) for c, p in enumerate(PARENTS) if p >= 0]
FINGERTIPS = (4, 8, 12, 16, 20)


def finger_joints(finger: str) -> tuple[int, ...]:
    """The four keypoints of a finger, base to tip."""
    k = FINGERS.index(finger)
    return tuple(range(1 + 4 * k, 5 + 4 * k))


def root_relative(joints: np.ndarray) -> np.ndarray:
    """Subtract the wrist (…,21,3)."""
    return joints - joints[..., :1, :]


def mirror_x(points: np.ndarray) -> np.ndarray:
    """Mirror 3D points (or 2D camera-frame points) across the x = 0 plane: left hand ↔ right hand (the
    models are right hands, DESIGN §3). The one mirroring of results; pair meshes with `mirror_faces`."""
    out = np.array(points, dtype=np.float64 if np.asarray(points).dtype == np.float64 else np.float32, copy=True)
    out[..., 0] *= -1
    return out


def mirror_faces(faces: np.ndarray) -> np.ndarray:
    """Faces of a mesh mirrored with `mirror_x`: the winding reversed so the normals still point outwards."""
    return np.ascontiguousarray(np.asarray(faces)[:, ::-1])
