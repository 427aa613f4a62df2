"""Anatomically limited hand-pose sampler with finger coupling (Anny pose layout, core/hand/pose_layout).

Poses are a mixture of grasp / gesture synergies: each prototype sets a curl level per finger and a
thumb configuration; per-sample noise perturbs the curls, the PIP-DIP coupling (DIP ≈ 2/3 PIP) and
abduction shrink with curl, and a little independent noise is added per dimension before clipping
to joint limits. Used by the synthetic data generator, the DPoser prior's training and the viewer's
"random pose". Lives in core because the viewer samples from it too.
"""
from __future__ import annotations

import numpy as np

from core.hand.pose_layout import POSE_DIM

# Local bone axes of the Anny hand rig (checked visually with renders, see docs/synthetic_data.md):
# fingers: x = flexion (positive bends toward the palm), y = twist, z = sideways (positive moves the
# finger toward the pinky side, so spreading is negative for the index and positive for the pinky).
# Thumb CMC: x = flexion across the palm toward the pinky, z = adduction (positive presses the thumb
# against the index side, negative lifts it out of the palm plane: palmar abduction), y = twist
# (negative turns the thumb pad toward the finger pads: opposition).
# Joint limits in radians, per bone (proximal, middle, distal) and axis (x, y, z).
_FINGER_LIMITS = np.array([
    [[-0.35, 1.60], [-0.10, 0.10], [-0.35, 0.35]],   # MCP (finger k-1)
    [[-0.05, 1.90], [-0.05, 0.05], [-0.05, 0.05]],   # PIP
    [[-0.10, 1.40], [-0.05, 0.05], [-0.05, 0.05]],   # DIP
])
_THUMB_LIMITS = np.array([
    [[-0.80, 0.90], [-0.60, 0.60], [-0.70, 0.70]],   # CMC (finger1-1)
    [[-0.30, 1.00], [-0.15, 0.15], [-0.20, 0.20]],   # MCP
    [[-0.40, 1.40], [-0.10, 0.10], [-0.10, 0.10]],   # IP
])
LIMITS = np.concatenate([_THUMB_LIMITS] + [_FINGER_LIMITS] * 4).reshape(POSE_DIM, 2)

# Prototypes: curls for (index, middle, ring, pinky) in [0, 1], thumb (cmc_flex, palmar_abd, mcp, ip),
# spread in [-1, 1], and a sampling weight.
_PROTOTYPES = {
    "open":       ((0.0, 0.0, 0.0, 0.0), (-0.2, 0.0, 0.1, 0.1), 0.6, 2.0),
    "flat":       ((0.05, 0.05, 0.05, 0.05), (0.2, -0.3, 0.1, 0.1), -0.5, 1.0),
    "relaxed":    ((0.25, 0.3, 0.35, 0.4), (0.2, 0.1, 0.3, 0.3), 0.2, 2.0),
    "fist":       ((0.95, 0.95, 0.95, 0.95), (0.55, 0.4, 0.55, 0.7), -0.3, 1.5),
    "point":      ((0.0, 0.95, 0.95, 0.95), (0.55, 0.4, 0.55, 0.7), 0.0, 1.0),
    "peace":      ((0.0, 0.0, 0.95, 0.95), (0.6, 0.3, 0.6, 0.7), 0.8, 1.0),
    "three":      ((0.0, 0.0, 0.0, 0.95), (0.6, 0.3, 0.6, 0.7), 0.5, 0.7),
    "four":       ((0.0, 0.0, 0.0, 0.0), (0.8, 0.4, 0.6, 0.6), 0.5, 0.5),
    "thumbs_up":  ((0.95, 0.95, 0.95, 0.95), (-0.4, -0.4, 0.0, 0.0), -0.3, 1.0),
    "ok":         ((0.55, 0.1, 0.05, 0.0), (0.5, 0.4, 0.4, 0.5), 0.3, 1.0),
    "pinch":      ((0.5, 0.4, 0.4, 0.4), (0.5, 0.4, 0.4, 0.4), 0.0, 1.0),
    "rock":       ((0.0, 0.95, 0.95, 0.0), (0.55, 0.4, 0.55, 0.7), 0.4, 0.5),
    "call":       ((0.95, 0.95, 0.95, 0.0), (-0.5, 0.0, 0.0, 0.0), 0.4, 0.5),
    "cylinder":   ((0.6, 0.6, 0.6, 0.6), (0.4, 0.5, 0.3, 0.3), -0.2, 1.5),
    "sphere":     ((0.45, 0.45, 0.45, 0.45), (0.4, 0.5, 0.3, 0.3), 0.5, 1.0),
    "claw":       ((0.3, 0.3, 0.3, 0.3), (0.3, 0.3, 0.2, 0.6), 0.3, 0.7),
    "hook":       ((0.55, 0.55, 0.55, 0.55), (0.0, -0.2, 0.1, 0.1), -0.4, 0.5),
    "gun":        ((0.0, 0.95, 0.95, 0.95), (-0.5, 0.1, 0.0, 0.05), 0.0, 0.7),
    "ily":        ((0.0, 0.95, 0.95, 0.0), (-0.5, 0.1, 0.0, 0.05), 0.4, 0.5),
    "three_thumb": ((0.0, 0.0, 0.95, 0.95), (-0.5, 0.1, 0.0, 0.05), 0.6, 0.5),
}
PROTOTYPE_NAMES = tuple(_PROTOTYPES)


def _finger_bones(curl: np.ndarray, rng: np.random.Generator, hook: np.ndarray) -> np.ndarray:
    """(B,) curls → (B,3 bones,3 axes) rotations with PIP-DIP coupling; `hook` shifts curl from MCP to PIP."""
    b = curl.shape[0]
    out = np.zeros((b, 3, 3))
    mcp = curl * 1.45 * (1 - hook) + rng.normal(0, 0.12, b)
    pip = curl * 1.75 + hook * 0.6 + rng.normal(0, 0.12, b)
    dip = np.clip(pip, 0, None) * rng.uniform(0.5, 0.8, b) + rng.normal(0, 0.05, b)
    out[:, 0, 0], out[:, 1, 0], out[:, 2, 0] = mcp, pip, dip
    return out


def sample_poses(n: int, rng: np.random.Generator | int | None = None,
                 prototypes: tuple[str, ...] | None = None) -> np.ndarray:
    """Sample `n` plausible hand poses (n, 45) in radians (pose-vector layout of core/hand/pose_layout)."""
    rng = np.random.default_rng(rng)
    names = prototypes or PROTOTYPE_NAMES
    weights = np.array([_PROTOTYPES[k][3] for k in names], dtype=np.float64)
    which = rng.choice(len(names), size=n, p=weights / weights.sum())
    curls = np.array([_PROTOTYPES[names[i]][0] for i in which])           # (n,4)
    thumb = np.array([_PROTOTYPES[names[i]][1] for i in which])           # (n,4)
    spread = np.array([_PROTOTYPES[names[i]][2] for i in which])          # (n,)
    # Per-sample variation: a shared curl offset (synergy) plus per-finger noise, neighbours coupled.
    shared = rng.normal(0, 0.12, (n, 1))
    own = rng.normal(0, 0.10, (n, 4))
    own[:, 1:] = 0.6 * own[:, 1:] + 0.4 * own[:, :-1]
    curls = np.clip(curls + shared + own, -0.15, 1.05)
    hook = np.clip(rng.normal(0, 0.15, (n, 1)), 0, 0.6) * np.ones((n, 4))
    pose = np.zeros((n, 15, 3))
    for f in range(4):
        pose[:, 3 + 3 * f: 6 + 3 * f] = _finger_bones(curls[:, f], rng, hook[:, f])
    # Abduction: spread > 0 fans the fingers out (index toward the thumb, pinky away), spread < 0 closes
    # them; the rest pose is already a little spread, so closing is weaker. Fades with curl.
    spread = np.clip(spread + rng.normal(0, 0.3, n), -1, 1)[:, None]
    fan_out = np.array([-0.28, -0.05, 0.12, 0.30])
    close_in = np.array([0.14, 0.02, -0.08, -0.18])
    abd = np.where(spread > 0, spread * fan_out, -spread * close_in) * (1 - 0.7 * np.clip(curls, 0, 1))
    pose[:, 3::3, 2][:, :4] = abd + rng.normal(0, 0.04, (n, 4))
    # Thumb.
    thumb = thumb + rng.normal(0, 0.12, thumb.shape)
    pose[:, 0, 0] = thumb[:, 0]
    pose[:, 0, 2] = -thumb[:, 1]                                    # palmar abduction = −z
    pose[:, 0, 1] = -0.4 * np.clip(thumb[:, 0], 0, None) + rng.normal(0, 0.1, n)  # opposition twist
    pose[:, 1, 0] = thumb[:, 2]
    pose[:, 2, 0] = thumb[:, 3]
    pose = pose.reshape(n, -1) + rng.normal(0, 0.03, (n, POSE_DIM))
    return np.clip(pose, LIMITS[:, 0], LIMITS[:, 1]).astype(np.float32)


def sample_shapes(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Anny shape vectors (n, 10): 6 phenotypes in [0, 1] and 4 local hand changes in [-1, 1].

    Tuned so the hand length (wrist → middle fingertip) is about 185 ± 13 mm for adults, with ~12 %
    children/teenagers (down to ~150 mm): height and the local scale/finger-length changes dominate
    the size and are kept near neutral (height 0 → 1 alone spans 143 → 229 mm); Anny's adult hands
    also grow with age (186 mm at age 0.5, 211 mm at 0.7), which the height compensates.
    """
    rng = np.random.default_rng(rng)
    pheno = rng.beta(2.0, 2.0, (n, 6))
    pheno[:, 0] = rng.uniform(0, 1, n)                                  # gender
    child = rng.uniform(0, 1, n) < 0.12
    pheno[:, 1] = np.where(child, rng.uniform(0.36, 0.48, n), rng.uniform(0.48, 1.0, n))  # age
    growth_mm = np.interp(pheno[:, 1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0, 16, 25, 21, 17, 13])
    pheno[:, 4] = np.clip(rng.normal(0.5, 0.1, n) - growth_mm / 86.0, 0.1, 0.8)  # height (86 mm per unit)
    local = np.stack([
        np.clip(rng.normal(0, 0.25, n), -0.6, 0.6),    # finger length
        np.clip(rng.normal(0, 0.12, n), -0.3, 0.3),    # hand scale
        np.clip(rng.normal(0, 0.4, n), -1, 1),         # finger diameter
        np.clip(rng.normal(0, 0.4, n), -1, 1),         # finger distance
    ], 1)
    return np.concatenate([pheno, local], 1).astype(np.float32)


def sample_global_orient(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Uniformly random 3D rotations as axis-angle (n,3)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(rng)
    return Rotation.random(n, random_state=rng).as_rotvec().astype(np.float32)
