"""Hand-model parameters for every mesh hypothesis (issue 25, DESIGN §6).

A small MLP (`ParamHead`) maps a mesh-AE latent (whitened, as the mesh LDM samples it) to Anny
parameters — global orientation (3, axis-angle, camera frame about the wrist), the 45-d articulated
pose and the 10-d shape — so that `AnnyHand(global_orient, pose, shape)` reproduces the decoded mesh
in the decoder's root-relative frame (wrist at the origin, metres). Trained on synthetic Anny meshes
whose parameters are known (`python -m training.train_mesh_params`). Rotations are predicted in the
continuous 6-d representation (two columns, Gram-Schmidt) and returned as axis-angle.

For 50 hypotheses the parameters are one MLP pass over a (50, 168) batch (well under a millisecond);
the parametric meshes need one Anny forward (`parametric_meshes`). Meshes without a latent go through
the frozen AE encoder first (`params_from_vertices`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from core.geometry import matrix_to_axis_angle
from core.hand.pose_layout import POSE_DIM
from core.results import MeshParams  # noqa: F401 - numpy-only home (unpickled in the window, issue 27)

WEIGHTS_NAME = "mesh_params"
N_BONES = POSE_DIM // 3          # 15 articulated bones
SHAPE_DIM = 10
OUT_DIM = 6 + 6 * N_BONES + SHAPE_DIM
#: Neutral Anny shape (core.hand.anny_hand.NEUTRAL_SHAPE); the head predicts an offset from it.
_NEUTRAL = (0.5,) * 6 + (0.0,) * 4


@dataclass
class ParamHeadConfig:
    latent_dim: int = 168
    hidden: int = 512
    depth: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(...,6) → (...,3,3): the two 3-vectors are the first two columns before Gram-Schmidt."""
    a, b = x[..., :3], x[..., 3:]
    c1 = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b = b - (c1 * b).sum(-1, keepdim=True) * c1
    c2 = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    c3 = torch.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], -1)


def matrix_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """(...,3,3) → (...,6): the first two columns."""
    return torch.cat([r[..., :, 0], r[..., :, 1]], -1)


class ParamHead(nn.Module):
    """Whitened mesh latent (B,168) → rotation matrices and shape (see `forward`)."""

    def __init__(self, config: ParamHeadConfig | None = None) -> None:
        super().__init__()
        cfg = config or ParamHeadConfig()
        self.config = cfg
        layers, d = [], cfg.latent_dim
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.hidden), nn.SiLU()]
            d = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(d, OUT_DIM)
        nn.init.zeros_(self.out.weight)
        eye6 = torch.tensor([1.0, 0, 0, 0, 1, 0])
        with torch.no_grad():
            self.out.bias.copy_(torch.cat([eye6.repeat(1 + N_BONES), torch.zeros(SHAPE_DIM)]))
        self.register_buffer("neutral_shape", torch.tensor(_NEUTRAL))

    def forward(self, zn: torch.Tensor) -> dict[str, torch.Tensor]:
        """→ {"orient_rotmat" (B,3,3), "pose_rotmat" (B,15,3,3), "shape" (B,10)} (differentiable)."""
        y = self.out(self.body(zn))
        rots = rot6d_to_matrix(y[:, :6 * (1 + N_BONES)].reshape(-1, 1 + N_BONES, 6))
        return {"orient_rotmat": rots[:, 0], "pose_rotmat": rots[:, 1:],
                "shape": self.neutral_shape + y[:, 6 * (1 + N_BONES):]}


def to_axis_angle(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ParamHead output → {"global_orient" (B,3), "pose" (B,45), "shape" (B,10)} (HandModel inputs)."""
    b = out["shape"].shape[0]
    return {"global_orient": matrix_to_axis_angle(out["orient_rotmat"]),
            "pose": matrix_to_axis_angle(out["pose_rotmat"]).reshape(b, POSE_DIM),
            "shape": out["shape"]}


@torch.no_grad()
def hypothesis_params(head: ParamHead, latents: torch.Tensor) -> dict[str, np.ndarray]:
    """Anny parameters of meshes given by their whitened mesh-AE latents (N,168) (the LDM's output
    space; `MeshAE.normalise_latent` of a raw latent) → {"global_orient" (N,3), "pose" (N,45),
    "shape" (N,10)} float32 numpy."""
    z = torch.as_tensor(latents, dtype=torch.float32)
    if z.ndim != 2 or z.shape[1] != head.config.latent_dim:
        raise ValueError(f"latents must be (N,{head.config.latent_dim}), got {tuple(z.shape)}")
    p = to_axis_angle(head(z))
    return {k: v.float().numpy() for k, v in p.items()}


@torch.no_grad()
def params_from_vertices(head: ParamHead, ae, verts_m: torch.Tensor) -> dict[str, np.ndarray]:
    """Anny parameters of arbitrary meshes with the template connectivity (N,V,3) metres (any
    translation): the frozen AE encoder gives their latents, the head their parameters."""
    v = torch.as_tensor(verts_m, dtype=torch.float32)
    if v.ndim != 3 or v.shape[1:] != (ae.num_vertices, 3):
        raise ValueError(f"vertices must be (N,{ae.num_vertices},3), got {tuple(v.shape)}")
    return hypothesis_params(head, ae.normalise_latent(ae.encode_metres(v)))


@torch.no_grad()
def parametric_meshes(hand, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Anny meshes of `params` (as returned by `hypothesis_params`) → (vertices (N,V,3), joints
    (N,21,3)) metres, wrist at the origin (the decoder's root-relative frame)."""
    out = hand(torch.as_tensor(params["global_orient"]), torch.as_tensor(params["pose"]),
               torch.as_tensor(params["shape"]))
    return out.vertices.float().numpy(), out.joints.float().numpy()


def load_param_head(name: str = WEIGHTS_NAME, models_dir=None) -> ParamHead:
    """The shipped parameter head (eval mode)."""
    from core.weights import load_network

    return load_network(name, lambda cfg: ParamHead(ParamHeadConfig(**cfg["net"])), models_dir)[0]


def params_for_latents(head: ParamHead, ae, latents: np.ndarray, latent_mean: np.ndarray, hand=None) -> MeshParams:
    """One hand's stage-2 latents — raw AE space, as `Stage2Output.latents` (N,168) and `.latent_mean`
    (168,) — → `MeshParams`; with `hand` (an AnnyHand) also their Anny meshes (model frame, right hand:
    mirror them for a left hand like the decoded meshes)."""
    z = torch.as_tensor(np.concatenate([np.asarray(latents).reshape(-1, head.config.latent_dim),
                                        np.asarray(latent_mean).reshape(1, -1)]), dtype=torch.float32,
                        device=ae.latent_mean.device)
    with torch.no_grad():   # the head (and `hand`) run on the CPU: one small batch, cheaper than a transfer
        p = hypothesis_params(head, ae.normalise_latent(z).cpu())
    out = MeshParams(p["global_orient"][:-1], p["pose"][:-1], p["shape"][:-1],
                     p["global_orient"][-1], p["pose"][-1], p["shape"][-1])
    if hand is not None:
        v, j = parametric_meshes(hand, p)
        out.hyp_vertices, out.vertices, out.hyp_joints, out.joints = v[:-1], v[-1], j[:-1], j[-1]
    return out
