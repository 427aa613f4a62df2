"""Resumable `ckpt.pt` of the stage-2 training scripts (mesh AE, image encoder, mesh LDM): the unwrapped
model ("model"), its EMA when the script keeps one ("ema"), the optimiser ("opt") and the loop state
("state": iteration "it", "elapsed" minutes, "log")."""
from __future__ import annotations

import pathlib

import torch


def resume(path: pathlib.Path, model: torch.nn.Module, env, ema: torch.nn.Module | None = None,
           extra: dict[str, torch.nn.Module] | None = None) -> tuple[dict, dict | None]:
    """Load `path` into `model` (and `ema`, and each `extra` module from its key) when it exists → (loop
    state, optimiser state or None). The optimiser is built after the DDP wrap, so the caller applies its
    state."""
    if not path.exists():
        return {"it": 0, "elapsed": 0.0, "log": []}, None
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    for key, module in (extra or {}).items():
        if key not in ck:
            raise SystemExit(f"error: {path} has no {key!r} (made by a run with other options?)")
        module.load_state_dict(ck[key])
    env.print0(f"resumed from {path} at iteration {ck['state']['it']}")
    return ck["state"], ck["opt"]
