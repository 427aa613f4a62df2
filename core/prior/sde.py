"""Sub-VP SDE of Song et al. (2021) as used by DPoser: linear β(t) from β0 = 0.1 to β1 = 20.

x_t = α(t) x_0 + σ(t) ε with α(t) = exp(−¼ t² (β1 − β0) − ½ t β0) and σ(t) = 1 − α(t)²
(σ is the standard deviation of the perturbation, not a variance).
"""
from __future__ import annotations

import math

import torch


class SubVPSDE:
    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-5) -> None:
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.eps = float(eps)  # smallest t used in training / optimisation

    def log_alpha(self, t):
        return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t):
        if isinstance(t, torch.Tensor):
            return torch.exp(self.log_alpha(t))
        return math.exp(self.log_alpha(t))

    def sigma(self, t):
        if isinstance(t, torch.Tensor):
            return -torch.expm1(2 * self.log_alpha(t))
        return -math.expm1(2 * self.log_alpha(t))

    def alpha_sigma(self, t):
        return self.alpha(t), self.sigma(t)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = α(t) x0 + σ(t) ε; `t` is (B,) or a scalar tensor."""
        a, s = self.alpha_sigma(t)
        if a.ndim == 1:
            a, s = a[:, None], s[:, None]
        return a * x0 + s * noise

    def dposer_weight(self, t):
        """w_t = ½·sqrt(1 + α/σ) (DPoser reference code; DESIGN §7)."""
        a, s = self.alpha_sigma(t)
        if isinstance(a, torch.Tensor):
            return 0.5 * torch.sqrt(1 + a / s)
        return 0.5 * math.sqrt(1 + a / s)
