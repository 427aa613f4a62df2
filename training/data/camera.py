"""Camera sampling for synthetic crops, and detector-like noise on 2D keypoints.

A sample places a posed hand (wrist-rooted, canonical frame rotated by a global orientation) in the
OpenCV camera frame (x right, y down, z forward) so that its 2D extent fills a random 40-80 % of a
256-pixel crop, at a random in-plane offset, seen by a pinhole camera with f ≈ 300-600 px and the
principal point at the crop centre. Orientations are biased towards palm- or back-facing views.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import project
from core.pose_sampler import sample_global_orient

CROP_SIZE = 256
FOCAL_RANGE = (300.0, 600.0)
FILL_RANGE = (0.4, 0.8)
#: Palm normal of the Anny right hand in its canonical frame (the palm faces −x, fingers along +y).
PALM_NORMAL = np.array([-1.0, 0.0, 0.0])


@dataclass
class CameraSample:
    """One hand placed in front of one camera."""

    K: np.ndarray            # (3,3) intrinsics
    global_orient: np.ndarray  # (3,) axis-angle of the hand in the camera frame (about the wrist)
    transl: np.ndarray       # (3,) camera-frame position of the wrist, metres
    joints_cam: np.ndarray   # (21,3) metres
    vertices_cam: np.ndarray | None  # (V,3) metres, when vertices were given
    kp2d: np.ndarray         # (21,2) pixels


def sample_intrinsics(rng: np.random.Generator, size: int = CROP_SIZE, pp_jitter: float = 0.25) -> np.ndarray:
    """K (3,3) with f ~ U(300, 600) px (for a 256 crop, scaled with `size`). Half of the time the
    principal point is the crop centre; otherwise it is shifted by up to `pp_jitter`·size, as in crops
    cut out of a larger image (the real hgc crops have e.g. (66, 104) for a 256 crop)."""
    f = rng.uniform(*FOCAL_RANGE) * size / CROP_SIZE
    c = size / 2 + (rng.uniform(-pp_jitter, pp_jitter, 2) * size if rng.random() < 0.5 else np.zeros(2))
    return np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1]], dtype=np.float64)


def sample_orientations(n: int, rng: np.random.Generator, face_bias: float = 0.7) -> np.ndarray:
    """Global orientations (n,3) from the pose sampler, re-weighted towards palm/back facing the camera.

    A rotation is kept with probability 1 − face_bias·(1 − |n_z|), n the rotated palm normal: edge-on
    views (n_z ≈ 0) are kept 30 % as often as frontal ones with the default bias.
    """
    out = np.empty((0, 3), dtype=np.float32)
    while len(out) < n:
        cand = sample_global_orient(2 * (n - len(out)) + 8, rng)
        nz = Rotation.from_rotvec(cand).apply(PALM_NORMAL)[:, 2]
        keep = rng.uniform(0, 1, len(cand)) < 1 - face_bias * (1 - np.abs(nz))
        out = np.concatenate([out, cand[keep]])
    return out[:n]


def place_in_camera(joints: np.ndarray, vertices: np.ndarray | None, K: np.ndarray,
                    rng: np.random.Generator, size: int = CROP_SIZE,
                    fill_range: tuple[float, float] = FILL_RANGE) -> tuple[np.ndarray, float]:
    """Translation (3,) for wrist-rooted, already rotated points (vertices if given, else joints) so
    that their projected bounding box spans a random fraction `fill` of the crop (longer side) at a
    random position inside it (a 3 % margin may be crossed, as in real crops). Returns (transl, fill)."""
    pts = vertices if vertices is not None else joints
    fill = rng.uniform(*fill_range)
    f, c = float(K[1, 1]), K[:2, 2]
    centre3 = 0.5 * (pts.min(0) + pts.max(0))
    extent = float(np.max(pts.max(0)[:2] - pts.min(0)[:2]))
    zc = extent * f / (fill * size)  # depth of the box centre
    aim = c.copy()  # pixel that the 3D box centre is projected to
    wanted = None   # pixel for the centre of the projected box
    for _ in range(5):  # fixed point: perspective shifts and scales the projected box a little
        transl = np.append((aim - c) / f * zc - centre3[:2], zc - centre3[2])
        uv = project(pts + transl, K)
        lo, hi = uv.min(0), uv.max(0)
        if wanted is None:  # a random position that keeps the box inside (up to a small margin)
            half, margin = 0.5 * (hi - lo) * fill * size / np.max(hi - lo), 0.03 * size
            wanted = np.array([rng.uniform(min(half[i] - margin, size / 2), max(size - half[i] + margin, size / 2))
                               for i in range(2)])
        aim += wanted - 0.5 * (lo + hi)
        zc *= float(np.max(hi - lo)) / (fill * size)
    transl = np.append((aim - c) / f * zc - centre3[:2], zc - centre3[2])
    return transl, fill


def sample_camera(joints: np.ndarray, vertices: np.ndarray | None, global_orient: np.ndarray,
                  rng: np.random.Generator, size: int = CROP_SIZE) -> CameraSample:
    """Place one hand posed with `global_orient` (joints (21,3)/vertices (V,3) wrist at origin, already
    rotated) in a random camera; returns intrinsics, translation and camera-frame geometry."""
    K = sample_intrinsics(rng, size)
    transl, _ = place_in_camera(joints, vertices, K, rng, size)
    jc = joints + transl
    vc = vertices + transl if vertices is not None else None
    return CameraSample(K, np.asarray(global_orient, np.float64), transl, jc, vc, project(jc, K))


# --- detector-like noise --------------------------------------------------------------------------

#: Joints of the same rank on the neighbouring finger(s), used to simulate a snapped detection.
def _neighbour_joint(j: int, rng: np.random.Generator) -> int:
    if j == 0:
        return int(rng.choice([1, 5, 17]))
    finger, part = divmod(j - 1, 4)
    options = [f for f in (finger - 1, finger + 1) if 0 <= f <= 4]
    return 1 + 4 * int(rng.choice(options)) + part


#: Per-joint σ multipliers, from MediaPipe's error against the real hgc annotations (median per joint
#: relative to the all-joint median, smoothed): wrist and thumb base worst, PIP/DIP best.
JOINT_NOISE_WEIGHT = np.array([1.9, 1.8, 1.3, 0.9, 1.0,
                               1.1, 0.7, 0.75, 1.2,
                               1.3, 0.7, 0.75, 1.2,
                               1.3, 0.7, 0.75, 1.2,
                               1.4, 0.7, 0.75, 1.2])
_FINGER_OF_JOINT = np.array([0] + [k for k in range(5) for _ in range(4)])


def add_keypoint_noise(kp2d: np.ndarray, rng: np.random.Generator,
                       sigma_rel: tuple[float, float] = (0.012, 0.036), outlier_prob: float = 0.15,
                       finger_corr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 2D keypoints (n,21,2) and confidences (n,21) in [0,1] from clean ones (n,21,2) pixels.

    Gaussian noise with σ = s·(longer side of the keypoint box)·JOINT_NOISE_WEIGHT, s ~ U(sigma_rel)
    per sample, plus a shared offset per finger (`finger_corr`·σ; detectors err finger-wise). The
    median error is ≈ 3 % of the box side (4 px for a 135 px box), like MediaPipe's on the real hgc
    crops (2.9 %, see training/data/check_mediapipe.py).
    With probability `outlier_prob` a sample gets 1-2 outlier joints: snapped to the same joint of a
    neighbouring finger, or a random jump of 8-25 % of the hand size; outliers get a low confidence
    (0.05-0.45), the other joints 0.5-1.0, decreasing with their own noise.
    """
    kp = np.asarray(kp2d, dtype=np.float64)
    single = kp.ndim == 2
    kp = kp[None] if single else kp
    n = kp.shape[0]
    size = (kp.max(1) - kp.min(1)).max(-1)  # (n,) longer side of the keypoint box
    sigma = rng.uniform(*sigma_rel, n)[:, None] * size[:, None] * JOINT_NOISE_WEIGHT[None]
    eps = rng.normal(0, 1, (n, 21, 2))
    finger = rng.normal(0, finger_corr, (n, 5, 2))[:, _FINGER_OF_JOINT]
    finger[:, 0] = 0
    noisy = kp + (eps + finger) * sigma[..., None]
    conf = np.clip(rng.uniform(0.85, 1.0, (n, 21)) - 0.05 * np.linalg.norm(eps, axis=-1), 0.5, 1.0)
    for i in np.nonzero(rng.uniform(0, 1, n) < outlier_prob)[0]:
        for j in rng.choice(np.arange(1, 21), size=int(rng.integers(1, 3)), replace=False):
            if rng.random() < 0.5:
                noisy[i, j] = kp[i, _neighbour_joint(int(j), rng)] + rng.normal(0, sigma[i, j], 2)
            else:
                ang = rng.uniform(0, 2 * np.pi)
                noisy[i, j] = kp[i, j] + rng.uniform(0.08, 0.25) * size[i] * np.array([np.cos(ang), np.sin(ang)])
            conf[i, j] = rng.uniform(0.05, 0.45)
    noisy, conf = noisy.astype(np.float32), conf.astype(np.float32)
    return (noisy[0], conf[0]) if single else (noisy, conf)
