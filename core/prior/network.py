"""ε-prediction MLP over the normalised pose vector (the reference `TimeFC`, sized for CPU).

in Linear(D → W) → N residual blocks [Linear + time projection → GroupNorm(32) → SiLU → dropout →
Linear, skip] → GroupNorm → SiLU → Linear(W → D). Time embedding: sinusoidal features of 999·t
followed by a 2-layer MLP.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 999.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) → (B, dim) of `scale`·t (DDPM-style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (scale * t.float())[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, width: int, temb: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.tproj = nn.Linear(temb, width)
        self.norm1 = nn.GroupNorm(groups, width)
        self.fc2 = nn.Linear(width, width)
        self.norm2 = nn.GroupNorm(groups, width)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.fc1(h) + self.tproj(temb)))
        x = self.drop(x)
        x = self.act(self.norm2(self.fc2(x)))
        return h + x


class TimeMLP(nn.Module):
    def __init__(self, dim: int = 45, width: int = 512, blocks: int = 2, temb: int = 128,
                 dropout: float = 0.1, groups: int = 32) -> None:
        super().__init__()
        self.config = dict(dim=dim, width=width, blocks=blocks, temb=temb, dropout=dropout, groups=groups)
        self.temb_dim = temb
        self.time_mlp = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([ResBlock(width, temb, dropout, groups) for _ in range(blocks)])
        self.out_norm = nn.GroupNorm(groups, width)
        self.out = nn.Linear(width, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        temb = self.time_mlp(timestep_embedding(t, self.temb_dim))
        h = self.inp(x)
        for blk in self.blocks:
            h = blk(h, temb)
        return self.out(self.act(self.out_norm(h)))
