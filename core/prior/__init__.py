"""DPoser-hand: a diffusion pose prior over the 45-d hand pose vector (paper 003, DESIGN §7).

- `sde.SubVPSDE`: the sub-VP SDE (β 0.1 → 20), α(t), σ(t).
- `network.TimeMLP`: ε-prediction MLP with a sinusoidal time embedding (TimeFC-style).
- `model.DPoserPrior`: network + z-score normaliser; one-step denoiser, DDIM sampling, load/save.
- `tto`: test-time optimisation (paper Alg. 1) — schedules, completion, IK, 2D fitting.
- `choices`: the single source of the schedule kinds, priors, per-task ranges and run defaults every
  front end offers (`SCHEDULES`, `PRIORS`, `TASK_RANGES`, `DEFAULT_HYPOTHESES`, `DEFAULT_ITERS`).
"""
from core.prior.choices import DEFAULT_HYPOTHESES, DEFAULT_ITERS, PRIORS, SCHEDULES, TASK_RANGES

#: Public names loaded on first use (they import torch; `choices` above does not).
_LAZY = {"DPoserPrior": "model", "load_prior": "model", "SubVPSDE": "sde", "Schedule": "schedule", "TTOConfig": "tto",
         "TTOResult": "tto", "complete_pose": "tto", "fit_joints": "tto", "fit_2d": "tto"}

__all__ = [*_LAZY, "SCHEDULES", "PRIORS", "TASK_RANGES", "DEFAULT_HYPOTHESES", "DEFAULT_ITERS"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"core.prior.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'core.prior' has no attribute {name!r}")
