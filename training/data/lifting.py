"""Stage-1 training data: (crop-normalised noisy 2D keypoints, crop context) → root-relative 3D joints.

Generated on the fly from the Anny hand (no renders needed):
1. `make_joint_table` — once: poses / shapes from `core.pose_sampler`, joints in the canonical frame
   (no global orientation, wrist at the origin) from `AnnyHand.joints`, (N,21,3) metres.
2. `LiftingBatcher.batch` — per training step, in torch: a random 3D rotation (uniform, re-weighted
   towards palm/back-facing views), a random camera placement (hand 0.3-1.0 m away, anywhere within a
   ±0.35 ray-offset field of view), perspective projection to normalised image rays (K⁻¹·uv, so no
   intrinsics are needed), detector-like 2D noise (`detector_noise`), and the crop normalisation that
   inference uses (`core.stage1.normalise_rays`) with a 0.9-1.1 scale jitter. In-plane rotation
   augmentation (paper ±60°) is subsumed by the uniformly random 3D orientation.

The 2D noise is matched to MediaPipe's measured error on real photos (mean ≈ 3.5 % of the hand's
bounding-box side, heavier at wrist / thumb base, occasional outliers), and larger on self-occluded
joints (capsule-hand occlusion test `joint_occlusion`), see docs/results.md.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core.joints import NUM_JOINTS, PARENTS
from core.nets.joint_diffusion import JOINT_SCALE
from core.occlusion import joint_occlusion
from core.stage1 import normalise_rays

#: Per-joint multiplier of the 2D noise σ (wrist and thumb CMC are placed least reliably).
JOINT_NOISE_WEIGHT = torch.tensor([1.8, 1.6, 1.2, 1.0, 1.0, 1.1, 0.8, 0.8, 1.1, 1.2, 0.8, 0.9, 1.1,
                                   1.3, 0.8, 0.9, 1.1, 1.3, 0.9, 0.9, 1.1])
PALM_NORMAL = torch.tensor([-1.0, 0.0, 0.0])   # canonical Anny right hand: palm faces −x


def make_joint_table(n: int, seed: int, batch: int = 256, hand=None, progress: bool = False) -> np.ndarray:
    """(n,21,3) float32 canonical root-relative joints (metres) of sampled poses and shapes."""
    from core.hand.anny_hand import AnnyHand
    from core.pose_sampler import sample_poses, sample_shapes

    hand = hand or AnnyHand()
    rng = np.random.default_rng(seed)
    poses = sample_poses(n, rng)
    shapes = sample_shapes(n, rng)
    out = np.empty((n, NUM_JOINTS, 3), np.float32)
    zero = torch.zeros(batch, 3)
    with torch.no_grad():
        for i in range(0, n, batch):
            p = torch.from_numpy(poses[i:i + batch])
            s = torch.from_numpy(shapes[i:i + batch])
            j = hand.joints(zero[:len(p)], p, s)
            j = j - j[:, :1]
            out[i:i + len(p)] = j.numpy()
            if progress and (i // batch) % 100 == 0:
                print(f"  table {i}/{n}", flush=True)
    return out


def random_rotations(n: int, gen: torch.Generator, face_bias: float = 0.5) -> torch.Tensor:
    """(n,3,3) uniform rotations, kept with probability 1 − face_bias·(1 − |palm normal·z|)."""
    out = []
    count = 0
    while count < n:
        q = torch.randn(2 * n, 4, generator=gen)
        q = q / q.norm(dim=-1, keepdim=True)
        r = quat_to_matrix(q)
        nz = (r @ PALM_NORMAL)[:, 2].abs()
        keep = torch.rand(2 * n, generator=gen) < 1 - face_bias * (1 - nz)
        out.append(r[keep])
        count += int(keep.sum())
    return torch.cat(out)[:n]


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(q.shape[:-1] + (3, 3))


def rotation_z(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(angle.shape + (3, 3))


def detector_noise(rays: torch.Tensor, gen: torch.Generator, sigma_range=(0.005, 0.05),
                   outlier_prob: float = 0.03, finger_corr: float = 0.5, occluded: torch.Tensor | None = None,
                   occlusion_noise: float = 0.0, occluded_outlier_prob: float | None = None,
                   occluded_parent_jump: float = 0.0) -> torch.Tensor:
    """Detector-like noise on clean 2D points (B,21,2) (any unit): σ = s · bbox side, s ~ U(sigma_range)
    per sample, × per-joint weights; a correlated per-finger offset (detectors err finger-wise) and
    per-joint outliers (jumps of 8-30 % of the hand size in a uniformly random direction).

    Self-occluded joints (`occluded` (B,21), only when `occlusion_noise` > 0) get σ × (1 + occlusion_noise)
    and outlier probability `occluded_outlier_prob` (None: 3 × outlier_prob, the original behaviour):
    detectors guess hidden joints, and a large outlier rate there (≈ 0.3) makes the 2D of a flagged joint
    honestly unreliable. A fraction `occluded_parent_jump` of those occluded outliers (0: none, the
    original behaviour) is not a random-direction jump but a slide along the finger: the keypoint lands at
    p + u·(parent − p) + the Gaussian noise, u ~ U(0.5, 2) (halfway to its parent joint up to about its
    grandparent), as a detector does when it folds a hidden finger onto its visible base."""
    b = rays.shape[0]
    side = (rays.max(1).values - rays.min(1).values).max(-1).values            # (B,)
    s = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * torch.rand(b, generator=gen)
    sigma = (s * side)[:, None] * JOINT_NOISE_WEIGHT[None]                     # (B,21)
    p_out = torch.full((b, NUM_JOINTS), outlier_prob)
    if occluded is not None and occlusion_noise > 0:
        sigma = sigma * (1 + occlusion_noise * occluded.float())
        p_occ = 3 * outlier_prob if occluded_outlier_prob is None else occluded_outlier_prob
        p_out = torch.where(occluded, p_occ, p_out)
    eps = torch.randn(b, NUM_JOINTS, 2, generator=gen)
    finger = torch.randn(b, 5, 2, generator=gen) * finger_corr
    idx = torch.tensor([0] + [k for k in range(5) for _ in range(4)])
    fing = finger[:, idx]
    fing[:, 0] = 0
    noise = (eps + fing) * sigma[..., None]
    out_mask = torch.rand(b, NUM_JOINTS, generator=gen) < p_out
    ang = 2 * math.pi * torch.rand(b, NUM_JOINTS, generator=gen)
    mag = (0.08 + 0.22 * torch.rand(b, NUM_JOINTS, generator=gen)) * side[:, None]
    jump = torch.stack([torch.cos(ang), torch.sin(ang)], -1) * mag[..., None]
    if occluded is not None and occlusion_noise > 0 and occluded_parent_jump > 0:
        parent = torch.as_tensor(np.maximum(PARENTS, 0))
        u = 0.5 + 1.5 * torch.rand(b, NUM_JOINTS, generator=gen)
        slide = u[..., None] * (rays[:, parent] - rays) + noise
        along = occluded & (torch.rand(b, NUM_JOINTS, generator=gen) < occluded_parent_jump)
        along[:, 0] = False                                                   # the wrist has no parent
        jump = torch.where(along[..., None], slide, jump)
    noise = torch.where(out_mask[..., None], jump, noise)
    return rays + noise


class LiftingBatcher:
    """Random (c2d, ctx, x0) batches from a canonical joint table (see module doc)."""

    def __init__(self, table: np.ndarray | torch.Tensor, seed: int = 0, depth_range=(0.3, 1.0),
                 offset: float = 0.35, scale_jitter=(0.9, 1.1), noise: bool = True,
                 sigma_range=(0.005, 0.05), outlier_prob: float = 0.03, face_bias: float = 0.5,
                 occlusion_noise: float = 0.0, occlusion_input: bool = False, flag_flip: float = 0.08,
                 flag_blank: float = 0.15, occluded_outlier_prob: float | None = None,
                 occluded_parent_jump: float = 0.0) -> None:
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.gen = torch.Generator().manual_seed(seed)
        self.depth_range = depth_range
        self.offset = offset
        self.scale_jitter = scale_jitter
        self.noise = noise
        self.sigma_range = sigma_range
        self.outlier_prob = outlier_prob
        self.face_bias = face_bias
        self.occlusion_noise = occlusion_noise
        self.occluded_outlier_prob = occluded_outlier_prob    # see `detector_noise`
        self.occluded_parent_jump = occluded_parent_jump
        # The network's third condition channel (`occlusion_input`): the capsule-test flags, with a fraction
        # `flag_flip` flipped (inference estimates them from a first pass and errs) and a fraction of
        # samples `flag_blank` with none set (that first pass runs with no flag).
        self.occlusion_input = occlusion_input
        self.flag_flip = flag_flip
        self.flag_blank = flag_blank

    def batch(self, b: int, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        g = self.gen
        if idx is None:
            idx = torch.randint(0, len(self.table), (b,), generator=g)
        j = self.table[idx]                                                   # (B,21,3) canonical
        r = random_rotations(b, g, self.face_bias)
        j = j @ r.transpose(1, 2)                                             # camera axes, wrist at 0
        centre = (j.max(1).values + j.min(1).values) / 2
        z = self.depth_range[0] + (self.depth_range[1] - self.depth_range[0]) * torch.rand(b, generator=g)
        off = (2 * torch.rand(b, 2, generator=g) - 1) * self.offset
        pos = torch.cat([off * z[:, None], z[:, None]], -1)
        cam = j - centre[:, None] + pos[:, None]
        cam_z = cam[..., 2:].clamp_min(0.05)
        rays = cam[..., :2] / cam_z
        clean = rays
        occluded = joint_occlusion(cam)
        if self.noise:
            rays = detector_noise(rays, g, self.sigma_range, self.outlier_prob, occluded=occluded,
                                  occlusion_noise=self.occlusion_noise,
                                  occluded_outlier_prob=self.occluded_outlier_prob,
                                  occluded_parent_jump=self.occluded_parent_jump)
        c2d, ctx = normalise_rays(rays)
        lo, hi = self.scale_jitter
        c2d = c2d * (lo + (hi - lo) * torch.rand(b, 1, 1, generator=g))
        if self.occlusion_input:
            flags = occluded ^ (torch.rand(b, NUM_JOINTS, generator=g) < self.flag_flip)
            flags = flags & (torch.rand(b, 1, generator=g) >= self.flag_blank)
            c2d = torch.cat([c2d, flags.float()[..., None]], -1)
        return {"c2d": c2d, "ctx": ctx, "x0": j / JOINT_SCALE, "joints": j, "cam": cam, "rays_clean": clean,
                "rays": rays, "R": r, "shift": pos - centre, "idx": idx, "occluded": occluded}
