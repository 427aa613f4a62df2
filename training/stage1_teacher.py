"""The frozen stage-1 model as the mesh LDM's teacher: loaded from the shipped weights or from a
joint-diffusion training checkpoint, and sampled for joint hypotheses of many images at once
(the LDM's `--cond stage1` training condition and the stage-2 evaluation)."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

from core.diffusion import GaussianDiffusion, make_schedule
from core.nets.joint_diffusion import JOINT_SCALE


def load_stage1(ckpt: pathlib.Path | None):
    """JointLifter from the shipped weights, or from a training checkpoint's EMA."""
    from core.stage1 import JointLifter

    if ckpt is None:
        return JointLifter.from_weights("cpu")
    from core.nets.joint_diffusion import JointDiffusionConfig, JointDiffusionNet

    torch.serialization.add_safe_globals([pathlib.PosixPath])   # older checkpoints stored Path args
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    a = ck["args"]
    cfg = JointDiffusionConfig(width=a["width"], depth=a["depth"], heads=a["heads"], mlp_ratio=a["mlp_ratio"],
                               cond_dim=3 if a.get("occlusion_input") else 2)
    net = JointDiffusionNet(cfg)
    net.load_state_dict(ck["ema"])
    diffusion = GaussianDiffusion(make_schedule(a.get("schedule", "linear")))
    return JointLifter(net, diffusion, "cpu", {"eta": a.get("eta", 0.0)})


@torch.no_grad()
def stage1_samples(lifter, kp2d: np.ndarray, K: np.ndarray, m: int, steps: int = 10, seed: int = 0,
                   batch: int = 128) -> np.ndarray:
    """(n,21,2) px + (n,3,3) → (n, m, 21, 3) root-relative joint hypotheses (metres, camera axes)."""
    from core.stage1 import pixels_to_rays

    out = []
    for s in range(0, len(kp2d), batch):
        rays = torch.from_numpy(np.stack([pixels_to_rays(kp2d[i], K[i]) for i in range(s, min(s + batch, len(kp2d)))])
                                ).float()
        out.append(lifter.sample_rays(rays, m, steps, seed=seed + s).numpy() * JOINT_SCALE)
    return np.concatenate(out).astype(np.float32)
