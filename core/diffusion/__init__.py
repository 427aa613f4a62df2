"""Generic diffusion engine shared by stage 1 (joints) and stage 2 (mesh latents).

`make_schedule` builds the noise schedule (linear β as in paper 000, cosine as in D3DP);
`GaussianDiffusion` noises data for training and samples with DDIM (x0-prediction, 1-1000 steps,
η, N hypotheses in one batch, seed, progress callback, cancel flag, recorded trajectory).
"""
from core.diffusion.ddim import DDIMResult, GaussianDiffusion, ddim_timesteps
from core.diffusion.schedules import Schedule, make_schedule

__all__ = ["DDIMResult", "GaussianDiffusion", "Schedule", "ddim_timesteps", "make_schedule"]
