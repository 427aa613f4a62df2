"""DPoserPrior: the ε-network, the per-dimension z-score normaliser and the sub-VP SDE together.

All pose tensors given to / returned by the public methods are in the normalised space ("z") unless
the method name says otherwise (`sample_poses` returns radians).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.hand.pose_layout import POSE_DIM
from core.prior.network import TimeMLP
from core.prior.sde import SubVPSDE

WEIGHTS_NAME = "dposer_hand"


class DPoserPrior(nn.Module):
    def __init__(self, mean: torch.Tensor | np.ndarray | None = None, std: torch.Tensor | np.ndarray | None = None,
                 sde: SubVPSDE | None = None, **net_config: Any) -> None:
        super().__init__()
        net_config.setdefault("dim", POSE_DIM)
        self.net = TimeMLP(**net_config)
        dim = self.net.config["dim"]
        self.register_buffer("mean", torch.zeros(dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(dim) if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.sde = sde or SubVPSDE()

    @property
    def config(self) -> dict[str, Any]:
        return {**self.net.config, "beta_min": self.sde.beta_min, "beta_max": self.sde.beta_max}

    # -- normalisation ---------------------------------------------------------------------
    def normalize(self, pose: torch.Tensor) -> torch.Tensor:
        return (pose - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    # -- diffusion -------------------------------------------------------------------------
    def eps(self, z_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=z_t.dtype, device=z_t.device)
        if t.ndim == 0:
            t = t.expand(z_t.shape[0])
        return self.net(z_t, t)

    @torch.no_grad()
    def denoise(self, z_t: torch.Tensor, t: float) -> torch.Tensor:
        """One-step denoiser x̂0 = (x_t − σ ε_φ(x_t, t)) / α (paper eq. 6), without gradient."""
        a, s = self.sde.alpha_sigma(float(t))
        return (z_t - s * self.fast_eps(z_t, float(t))) / a

    def _time_terms(self, t: float) -> list[torch.Tensor]:
        """Per-t constants of the network (time-MLP output projected into every block), cached."""
        cache = self.__dict__.setdefault("_tcache", {})
        key = round(float(t), 7)
        hit = cache.get(key)
        if hit is None:
            from core.prior.network import timestep_embedding

            net = self.net
            with torch.no_grad():
                temb = net.time_mlp(timestep_embedding(torch.tensor([float(t)]), net.temb_dim))
            with torch.no_grad():
                hit = [blk.tproj(temb) + blk.fc1.bias for blk in net.blocks]
            if len(cache) > 4096:
                cache.clear()
            cache[key] = hit
        return hit

    def _weights(self) -> tuple:
        """Plain tensors of the network for `fast_eps` (module attribute look-ups cost more than the
        arithmetic at S = 10); cached with the per-t terms, cleared by train() / load_state_dict()."""
        cache = self.__dict__.setdefault("_tcache", {})
        w = cache.get("weights")
        if w is None:
            net = self.net
            w = (net.inp.weight, net.inp.bias, net.config["groups"],
                 tuple((b.fc1.weight, b.norm1.weight, b.norm1.bias, b.fc2.weight, b.fc2.bias, b.norm2.weight,
                        b.norm2.bias) for b in net.blocks),
                 net.out_norm.weight, net.out_norm.bias, net.out.weight, net.out.bias)
            cache["weights"] = w
        return w

    def fast_eps(self, z_t: torch.Tensor, t: float) -> torch.Tensor:
        """ε_φ(z_t, t) for one scalar t, evaluation mode: the same function as `eps` (checked in tests)
        written functionally with the time terms cached per t — the TTO loop calls it every iteration."""
        import torch.nn.functional as F

        if self.training:
            return self.eps(z_t, t)
        with torch.no_grad():
            tt = self._time_terms(t)
            w_in, b_in, g, blocks, onw, onb, w_out, b_out = self._weights()
            h = F.linear(z_t, w_in, b_in)
            for (w1, n1w, n1b, w2, b2, n2w, n2b), c in zip(blocks, tt):
                x = F.silu(F.group_norm(F.linear(h, w1) + c, g, n1w, n1b))
                x = F.silu(F.group_norm(F.linear(x, w2, b2), g, n2w, n2b))
                h = h + x
            h = F.silu(F.group_norm(h, g, onw, onb))
            return F.linear(h, w_out, b_out)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 20, t_max: float = 1.0, t_min: float = 1e-3,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Deterministic DDIM from N(0, I) at t_max down to t_min; returns normalised poses (n, D)."""
        dim = self.mean.shape[0]
        z = torch.randn(n, dim, generator=generator)
        ts = np.linspace(t_max, t_min, steps + 1)
        a0, s0 = self.sde.alpha_sigma(float(ts[0]))
        z = z * (a0 ** 2 + s0 ** 2) ** 0.5  # marginal std at t_max for unit-variance data
        for t, t_next in zip(ts[:-1], ts[1:]):
            a, s = self.sde.alpha_sigma(float(t))
            e = self.eps(z, float(t))
            x0 = (z - s * e) / a
            a2, s2 = self.sde.alpha_sigma(float(t_next))
            z = a2 * x0 + s2 * e
        a, s = self.sde.alpha_sigma(float(ts[-1]))
        return (z - s * self.eps(z, float(ts[-1]))) / a

    def sample_poses(self, n: int, steps: int = 20, seed: int | None = None) -> np.ndarray:
        """Random plausible poses (n, 45) in radians."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.denormalize(self.sample(n, steps, generator=g)).numpy()

    # -- weights ---------------------------------------------------------------------------
    def export_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items()}

    def load_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_tcache", None)
        return super().load_state_dict(*args, **kwargs)

    def train(self, mode: bool = True):
        self.__dict__.pop("_tcache", None)
        return super().train(mode)


def build_prior(config: dict[str, Any]) -> DPoserPrior:
    cfg = dict(config)
    sde = SubVPSDE(cfg.pop("beta_min", 0.1), cfg.pop("beta_max", 20.0))
    net_keys = {"dim", "width", "blocks", "temb", "dropout", "groups"}
    return DPoserPrior(sde=sde, **{k: v for k, v in cfg.items() if k in net_keys})


def load_prior(name: str = WEIGHTS_NAME) -> DPoserPrior:
    """Load the shipped prior (`resources/models/<name>.safetensors`); raises WeightsError if missing."""
    from core.weights import load_weights

    state, entry = load_weights(name)
    prior = build_prior(entry.get("config", {}))
    # Normaliser statistics are stored in float32 (the network weights may be fp16).
    prior.load_state_dict(state)
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior
