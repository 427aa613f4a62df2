"""Noise schedules: ᾱ_t for t = 0..T-1 (float64 on CPU; moved to the data's device at use)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    kind: str
    betas: torch.Tensor            # (T,) float64
    alphas_cumprod: torch.Tensor   # (T,) float64, ᾱ_t

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])

    def config(self) -> dict:
        return {"kind": self.kind, "T": self.num_steps}


def make_schedule(kind: str = "linear", num_steps: int = 1000, beta_start: float = 1e-4,
                  beta_end: float = 1e-2, cosine_s: float = 8e-3) -> Schedule:
    """'linear': β linear in [beta_start, beta_end] (paper 000: 1e-4 → 1e-2, T = 1000).
    'cosine': Nichol & Dhariwal's ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped to 0.999 (D3DP)."""
    if num_steps < 1:
        raise ValueError("num_steps must be ≥ 1")
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    elif kind == "cosine":
        t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = (1 - abar[1:] / abar[:-1]).clamp(0, 0.999)
    else:
        raise ValueError(f"unknown schedule {kind!r} (linear, cosine)")
    return Schedule(kind, betas, torch.cumprod(1 - betas, 0))
