"""Stage-1 denoiser (paper 000 §3.2, supp. A.1; D3DP with a MixSTE-style spatial transformer).

One token per joint: token_j = Linear([c2D_j (2), J_t,j (3)]) + joint embedding_j; with `cond_dim` 3,
c2D_j also carries a 0/1 flag "this keypoint is probably hidden" (core.stage1.JointLifter.condition). A stack of
pre-LN transformer blocks (self-attention over the 21 joint tokens + MLP), each modulated by adaLN
(shift / scale / gate) from the timestep embedding plus an embedding of the crop context (crop
centre ray and log crop size, which carry the perspective cue lost by crop normalisation) plus an
MLP embedding of the whole 2D pose (`global_cond`: measured to learn far faster on CPU budgets than
per-token conditioning alone, whose 2D evidence has to travel through attention).
Head: LayerNorm → Linear → 3. Predicts x0 (root-relative joints / JOINT_SCALE).

Size for CPU (DESIGN §10): width 128 × 4 blocks ≈ 33 MFLOP per hypothesis and step, i.e. ≈ 17 GFLOP
for 50 hypotheses × 10 DDIM steps.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.joints import NUM_JOINTS
from core.nets.layers import PlainLayerNorm, gated, mlp_activation, modulate

#: Joints are divided by this (metres) so a hand spans roughly ±2.
JOINT_SCALE = 0.1


@dataclass
class JointDiffusionConfig:
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    cond_dim: int = 2          # per-joint condition channels: crop-normalised u, v (+ "probably hidden" flag if 3)
    ctx_dim: int = 3           # per-sample context (crop centre ray x, y; log crop half-size)
    num_joints: int = NUM_JOINTS
    dropout: float = 0.0
    global_cond: bool = True   # also condition every block (adaLN) on an MLP embedding of the whole 2D pose

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = PlainLayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = PlainLayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), mlp_activation(), nn.Dropout(dropout),
                                 nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        s1, g1, a1, s2, g2, a2 = self.ada(c)[:, None].chunk(6, -1)
        h = modulate(self.norm1(x), s1, g1)
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = gated(x, 1 + a1, self.proj(h))
        h = modulate(self.norm2(x), s2, g2)
        return gated(x, 1 + a2, self.mlp(h))


class JointDiffusionNet(nn.Module):
    """x̂0 = f(J_t, t | c2D, ctx); shapes: J_t (B,21,3), t (B,), c2d (B,21,C), ctx (B,ctx_dim)."""

    def __init__(self, config: JointDiffusionConfig | None = None) -> None:
        super().__init__()
        cfg = config or JointDiffusionConfig()
        self.config = cfg
        w = cfg.width
        self.inp = nn.Linear(cfg.cond_dim + 3, w)
        self.joint_emb = nn.Parameter(torch.randn(cfg.num_joints, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.ctx_mlp = nn.Sequential(nn.Linear(cfg.ctx_dim, w), nn.SiLU(), nn.Linear(w, w))
        if cfg.global_cond:
            self.pose_mlp = nn.Sequential(nn.Linear(cfg.num_joints * cfg.cond_dim + cfg.ctx_dim, 2 * w), nn.SiLU(),
                                          nn.Linear(2 * w, 2 * w), nn.SiLU(), nn.Linear(2 * w, w))
        self.blocks = nn.ModuleList(Block(w, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(w, eps=1e-6)
        self.head = nn.Linear(w, 3)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c2d: torch.Tensor, ctx: torch.Tensor | None = None
                ) -> torch.Tensor:
        b = x_t.shape[0]
        if ctx is None:
            ctx = x_t.new_zeros(b, self.config.ctx_dim)
        h = self.inp(torch.cat([c2d, x_t], -1)) + self.joint_emb
        c = self.time_mlp(timestep_embedding(t, self.config.width)) + self.ctx_mlp(ctx)
        if self.config.global_cond:
            c = c + self.pose_mlp(torch.cat([c2d.flatten(1), ctx], -1))
        c = F.silu(c)
        for blk in self.blocks:
            h = blk(h, c)
        return self.head(self.norm(h))

    def flops_per_sample(self) -> int:
        """Multiply-adds × 2 of one forward for one hypothesis (matmuls only)."""
        cfg = self.config
        w, n = cfg.width, cfg.num_joints
        per_tok = 2 * (3 * w * w + w * w + 2 * w * int(w * cfg.mlp_ratio))
        attn = 2 * 2 * n * n * w
        glob = 2 * (2 * w * (n * cfg.cond_dim + cfg.ctx_dim) + 4 * w * w + 2 * w * w) if cfg.global_cond else 0
        return cfg.depth * (n * per_tok + attn + 2 * w * 6 * w) + n * 2 * w * (cfg.cond_dim + 3 + 3) + glob
