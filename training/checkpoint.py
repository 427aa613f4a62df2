"""Resumable `ckpt.pt` of the stage-2 training scripts (mesh AE, image encoder, mesh LDM): the unwrapped
model ("model"), its EMA when the script keeps one ("ema"), the optimiser ("opt") and the loop state
("state": iteration "it", "elapsed" minutes, "log")."""
from __future__ import annotations

import pathlib

import torch


def resume(path: pathlib.Path, model: torch.nn.Module, env, ema: torch.nn.Module | None = None
           ) -> tuple[dict, dict | None]:
    """Load `path` into `model` (and `ema`) when it exists → (loop state, optimiser state or None). The
    optimiser is built after the DDP wrap, so the caller applies its state."""
    if not path.exists():
        return {"it": 0, "elapsed": 0.0, "log": []}, None
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    env.print0(f"resumed from {path} at iteration {ck['state']['it']}")
    return ck["state"], ck["opt"]
