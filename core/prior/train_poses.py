"""Training poses for the DPoser-hand prior: the shared pose sampler, optionally widened ("wide").

`core.pose_sampler.sample_poses` (used unchanged by stage 1, the mesh AE and the viewer) ties the thumb
to ~20 prototype configurations with 0.12 rad of noise: thumb MCP and IP flexion never leave roughly
[-0.25, 0.95] rad and IP is independent of MCP given the prototype, so a real thumb whose MCP/IP pair is
not one of the prototypes lies outside the training support and the prior's denoiser has nothing to
say about its hidden tip. The DIP/PIP coupling is also a single narrow band (DIP = PIP × U(0.5, 0.8)).

`sample_prior_poses(n, rng, wide_frac)` keeps the shared sampler's poses for a fraction 1 − wide_frac
and, for the rest, redraws the thumb from a broad anatomical model and widens the distal coupling of
the fingers. Ranges come from active range-of-motion literature, not from any evaluation data:
- thumb IP: flexion 0-80°, hyperextension to about -20° (AAOS; Hume et al. 1990, J Hand Surg 15A);
- thumb MCP: flexion 0-50° typical (up to ~60°), hyperextension ~10-15°; small abduction/rotation;
- thumb CMC: flexion-extension and palmar abduction arcs of ~50-60° each, axial rotation coupled with
  flexion (opposition) — drawn nearly uniformly inside the rig's limits;
- MCP/IP flexion of the thumb are positively but loosely coupled (r ≈ 0.4-0.6 in grasping data) and
  grow with the fingers' curl (a fist flexes the thumb, an open hand extends it);
- finger DIP ≈ 2/3 PIP on average with an individual ratio of roughly 0.4-0.95 (Rijpkema & Girard
  1991; Hahn et al. 1995), DIP hyperextension a few degrees.
Everything is clipped to `core.pose_sampler.LIMITS` (the rig's anatomical limits, unchanged).
With wide_frac = 0 the output is exactly `sample_poses(n, rng)`.
"""
from __future__ import annotations

import numpy as np

from core.pose_sampler import LIMITS, sample_poses

SAMPLERS = ("default", "wide")
DEFAULT_WIDE_FRAC = 0.5

# Pose-vector indices (core/hand/pose_layout: bone b, axis a → 3b + a; thumb bones 0-2, then 3 per finger).
_CMC, _MCP, _IP = 0, 3, 6


def _wide_thumb(k: int, finger_curl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(k, 9) thumb rotations (CMC, MCP, IP × x, y, z) from the broad anatomical model."""
    out = np.zeros((k, 9))
    # Overall thumb curl in [0, 1]: about a third from the fingers' curl (synergy), the rest free.
    c = np.clip(0.35 * finger_curl + 0.65 * rng.uniform(0, 1, k) + rng.normal(0, 0.1, k), 0, 1)
    cmc_flex = np.clip(-0.6 + 1.3 * c + rng.normal(0, 0.25, k), -0.75, 0.85)
    out[:, 0] = cmc_flex
    out[:, 1] = -0.4 * np.clip(cmc_flex, 0, None) + rng.normal(0, 0.18, k)     # opposition twist
    out[:, 2] = rng.uniform(-0.6, 0.55, k)                                       # −palmar abduction
    # MCP ~ 0-57° flexion with some hyperextension, IP ~ -23-80°, loosely coupled through c.
    out[:, 3] = 0.85 * c - 0.1 + rng.normal(0, 0.22, k)
    out[:, 4] = rng.normal(0, 0.06, k)
    out[:, 5] = rng.normal(0, 0.08, k)
    out[:, 6] = 1.3 * c - 0.2 + rng.normal(0, 0.3, k)
    out[:, 7] = rng.normal(0, 0.04, k)
    out[:, 8] = rng.normal(0, 0.04, k)
    return out


def sample_prior_poses(n: int, rng: np.random.Generator | int | None = None, sampler: str = "default",
                       wide_frac: float = DEFAULT_WIDE_FRAC) -> np.ndarray:
    """(n, 45) training poses in radians. sampler "default" = `sample_poses`; "wide" = see module doc."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    rng = np.random.default_rng(rng)
    pose = sample_poses(n, rng).astype(np.float64)
    if sampler == "default" or wide_frac <= 0:
        return pose.astype(np.float32)
    wide = np.flatnonzero(rng.uniform(0, 1, n) < wide_frac)
    k = len(wide)
    if k:
        p = pose[wide].reshape(k, 15, 3)
        # Finger curl proxy from the four fingers' MCP + PIP flexion (full curl ≈ 1.45 + 1.75 rad).
        curl = np.clip((p[:, 3::3, 0][:, :4].sum(1) + p[:, 4::3, 0][:, :4].sum(1)) / (4 * 3.2), 0, 1)
        p[:, 0:3] = _wide_thumb(k, curl, rng).reshape(k, 3, 3)
        # Distal coupling: redraw DIP from the PIP with a wider individual ratio.
        for f in range(4):
            pip = p[:, 4 + 3 * f, 0]
            p[:, 5 + 3 * f, 0] = (np.clip(pip, 0, None) * rng.uniform(0.4, 0.95, k)
                                  + rng.normal(0, 0.08, k))
        pose[wide] = p.reshape(k, -1)
    return np.clip(pose, LIMITS[:, 0], LIMITS[:, 1]).astype(np.float32)
