"""Rotations, projection and mirroring helpers (torch and numpy), used across the engine.

torch is imported inside the torch functions: the window process uses the numpy ones (projection,
intrinsics) and must not load torch (issue 27)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (...,3) axis-angle → (...,3,3); smooth at zero (Taylor terms), differentiable."""
    import torch

    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (...,1,1)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """(...,3,3) rotation → (...,3) axis-angle (angle in [0, π])."""
    import roma

    return roma.rotmat_to_rotvec(r)


def mirror_axis_angle(aa: np.ndarray | torch.Tensor):
    """Global orientation of the mirror image across x = 0: R → M R M with M = diag(-1, 1, 1)."""
    out = np.array(aa, copy=True) if isinstance(aa, (np.ndarray, list, tuple)) else aa.clone()   # numpy or torch
    out[..., 1] *= -1
    out[..., 2] *= -1
    return out


def intrinsics_from_size(width: int, height: int) -> np.ndarray:
    """Default camera when K is unknown (DESIGN §3): focal = max(w, h), principal point at the centre."""
    f = float(max(width, height))
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], dtype=np.float64)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (...,3) → pixels (...,2)."""
    p = points @ np.asarray(K).T
    return p[..., :2] / p[..., 2:3]
