"""Gaussian diffusion with an x0-predicting denoiser: training noise and DDIM sampling.

The denoiser is any callable `denoiser(x_t, t, **cond) -> x0_hat` where `x_t` has the batch on the
first axis (any trailing shape) and `t` is a (B,) long tensor of timesteps in [0, T). Conditions are
passed through untouched (they must already be batched to B, e.g. repeated per hypothesis).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.device import inference_precision
from core.diffusion.schedules import Schedule, make_schedule
from core.errors import raise_if_cancelled

ProgressFn = Callable[[int, int], None]   # (steps done, total steps)


@dataclass
class DDIMResult:
    """Final sample and, when recorded, the trajectory (step 0 = the initial noise)."""

    x0: torch.Tensor                                  # (B, ...)
    timesteps: list[int]                              # t of each step, high → low (len S)
    xs: torch.Tensor | None = None                    # (S+1, B, ...) x_T … x_0
    x0_preds: torch.Tensor | None = None              # (S, B, ...) x̂0 predicted at each step
    extra: dict = field(default_factory=dict)


def ddim_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """`steps` evenly spaced timesteps from T-1 down to 0 (D3DP / DDIM 'uniform' spacing)."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"DDIM steps must be in [1, {num_train_steps}], got {steps}")
    ts = torch.linspace(num_train_steps - 1, 0, steps + 1)[:-1] if steps > 1 else torch.tensor([num_train_steps - 1.0])
    return [int(round(float(t))) for t in ts]


class GaussianDiffusion:
    """DDPM forward process q(x_t | x_0) and DDIM reverse sampling with x0 prediction (paper eq. 3)."""

    def __init__(self, schedule: Schedule | None = None) -> None:
        self.schedule = schedule or make_schedule("linear")
        abar = self.schedule.alphas_cumprod
        self._sqrt_abar = abar.sqrt().float()
        self._sqrt_1m_abar = (1 - abar).sqrt().float()
        self._abar = abar

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    def _gather(self, table: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        v = table.to(t.device)[t]
        return v.reshape(t.shape + (1,) * (ndim - 1))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε."""
        if noise is None:
            noise = torch.randn_like(x0)
        a = self._gather(self._sqrt_abar, t, x0.ndim).to(x0.dtype)
        s = self._gather(self._sqrt_1m_abar, t, x0.ndim).to(x0.dtype)
        return a * x0 + s * noise

    def sample_timesteps(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.num_steps, (batch,), device=device, generator=generator)

    def training_loss(self, denoiser: Callable, x0: torch.Tensor, **cond) -> torch.Tensor:
        """Paper's L_DDPM: ‖x0 − x̂0‖² with t ~ U{0..T-1}."""
        t = self.sample_timesteps(x0.shape[0], x0.device)
        xt = self.q_sample(x0, t)
        return ((denoiser(xt, t, **cond) - x0) ** 2).mean()

    @torch.no_grad()
    def ddim_sample(self, denoiser: Callable, shape: tuple[int, ...], *, steps: int = 10, eta: float = 0.0,
                    seed: int | None = None, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None, record: bool = True,
                    progress: ProgressFn | None = None, cancel=None, **cond) -> DDIMResult:
        """DDIM from pure noise of `shape` (batch first) down to t = 0.

        steps: number of denoiser calls (1 = one-shot x0 prediction from x_T). eta: 0 deterministic
        DDIM, 1 DDPM-like stochasticity. `cancel` is a threading.Event or a callable → bool, checked
        before every step (raises `core.errors.Cancelled`). `progress(done, total)` after every step.
        """
        if generator is None:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(0 if seed is None else int(seed))
        dev = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))

        def randn(shp):
            return torch.randn(shp, generator=generator, dtype=dtype).to(dev)

        x = x_T.to(dev, dtype) if x_T is not None else randn(shape)
        ts = ddim_timesteps(self.num_steps, steps)
        abar = self._abar
        xs = [x.cpu()] if record else None
        preds = [] if record else None
        b = x.shape[0]
        with inference_precision(dev, b):   # bf16 matmuls on CPUs that have them; the update stays fp32
            for i, t in enumerate(ts):
                raise_if_cancelled(cancel)
                t_prev = ts[i + 1] if i + 1 < len(ts) else -1
                tt = torch.full((b,), t, dtype=torch.long, device=dev)
                x0_hat = denoiser(x, tt, **cond).to(dtype)
                a_t = float(abar[t])
                a_prev = float(abar[t_prev]) if t_prev >= 0 else 1.0
                eps = (x - a_t ** 0.5 * x0_hat) / max(1 - a_t, 1e-12) ** 0.5
                sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5 if t_prev >= 0 else 0.0
                dir_coef = max(1 - a_prev - sigma ** 2, 0.0) ** 0.5
                x = a_prev ** 0.5 * x0_hat + dir_coef * eps
                if sigma > 0:
                    x = x + sigma * randn(x.shape)
                if record:
                    xs.append(x.cpu())
                    preds.append(x0_hat.cpu())
                if progress is not None:
                    progress(i + 1, len(ts))
        return DDIMResult(x0=x, timesteps=ts,
                          xs=torch.stack(xs) if record else None,
                          x0_preds=torch.stack(preds) if record else None)
