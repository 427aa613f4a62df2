"""DPoser-hand: a diffusion pose prior over the 45-d hand pose vector (paper 003, DESIGN §7).

- `sde.SubVPSDE`: the sub-VP SDE (β 0.1 → 20), α(t), σ(t).
- `network.TimeMLP`: ε-prediction MLP with a sinusoidal time embedding (TimeFC-style).
- `model.DPoserPrior`: network + z-score normaliser; one-step denoiser, DDIM sampling, load/save.
- `tto`: test-time optimisation (paper Alg. 1) — schedules, completion, IK, 2D fitting.
"""
from core.prior.model import DPoserPrior, load_prior
from core.prior.sde import SubVPSDE
from core.prior.tto import Schedule, TTOConfig, TTOResult, complete_pose, fit_2d, fit_joints


__all__ = ["DPoserPrior", "load_prior", "SubVPSDE", "Schedule", "TTOConfig", "TTOResult",
           "complete_pose", "fit_joints", "fit_2d"]
