"""The resumable training checkpoint of every training script (`--out/ckpt.pt`, DPoser's `--out/last.pt`).

One format: the unwrapped model ("model"), its EMA when the script keeps one ("ema"), the optimiser
("opt"), the loop state ("state": iteration "it", "elapsed" seconds, "log" list), the arguments
("args", paths as strings) and "world_size", plus script-specific entries (DPoser's normalisation
"mean"/"std", the LDM's fine-tuned "encoder"/"ema_encoder"). Written atomically by rank 0.
Checkpoints of the older joint-diffusion ("net", "iter") and DPoser ("step") layouts still resume.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import torch


def fresh_state() -> dict:
    """The loop state of a run that starts from scratch."""
    return {"it": 0, "elapsed": 0.0, "log": []}


def plain_args(args: argparse.Namespace) -> dict:
    """vars(args) with paths as strings (what a checkpoint can store and `weights_only` can read back)."""
    return {k: (str(v) if isinstance(v, pathlib.PurePath) else v) for k, v in vars(args).items()}


def atomic_save(obj: dict, path: pathlib.Path) -> None:
    """torch.save to a temporary file next to `path`, then rename: an interrupted save never leaves a
    truncated checkpoint behind."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save(path: pathlib.Path, env, state: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
         args: argparse.Namespace | None = None, ema: torch.nn.Module | None = None, unit: str = "iteration",
         **extra) -> None:
    """Rank 0 writes the checkpoint (the others return at once). `extra` entries that are modules are
    stored as their state dicts, anything else as is. Under DDP the save is logged with the rank."""
    if not env.is_main:
        return
    ck = {"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "world_size": env.world_size}
    if args is not None:
        ck["args"] = plain_args(args)
    if ema is not None:
        ck["ema"] = ema.state_dict()
    ck.update({k: (v.state_dict() if isinstance(v, torch.nn.Module) else v) for k, v in extra.items()})
    atomic_save(ck, path)
    if env.world_size > 1:
        print(f"[rank {env.rank}] saved {path} at {unit} {state['it']}", flush=True)


def load(path: pathlib.Path) -> dict | None:
    """The checkpoint at `path` in the current layout (older layouts converted), None when there is none."""
    if not path.exists():
        return None
    torch.serialization.add_safe_globals([pathlib.PosixPath])   # older checkpoints stored Path args
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if "state" in ck:
        return ck
    ck = dict(ck)
    if "net" in ck:      # joint diffusion before the shared format: "net", "iter", "elapsed", "log" (JSON)
        ck["model"] = ck.pop("net")
        ck["state"] = {"it": int(ck.pop("iter")), "elapsed": float(ck.pop("elapsed", 0.0)),
                       "log": json.loads(ck.pop("log", "[]"))}
    elif "step" in ck:   # DPoser before the shared format: "step", no elapsed time
        ck["state"] = {"it": int(ck.pop("step")), "elapsed": 0.0, "log": []}
    else:
        raise SystemExit(f"error: {path} is not a training checkpoint of these scripts (no loop state)")
    return ck


def restore(ck: dict | None, path: pathlib.Path, model: torch.nn.Module, env, ema: torch.nn.Module | None = None,
            extra: dict[str, torch.nn.Module] | None = None, unit: str = "iteration") -> tuple[dict, dict | None]:
    """Load a checkpoint from `load` into `model` (and `ema`, and each `extra` module from its key) →
    (loop state, optimiser state or None). Without a checkpoint: (fresh state, None). The optimiser is
    built after the DDP wrap, so the caller applies its state."""
    if ck is None:
        return fresh_state(), None
    model.load_state_dict(ck["model"])
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    for key, module in (extra or {}).items():
        if key not in ck:
            raise SystemExit(f"error: {path} has no {key!r} (made by a run with other options?)")
        module.load_state_dict(ck[key])
    env.print0(f"resumed from {path} at {unit} {ck['state']['it']}")
    return ck["state"], ck["opt"]


def resume(path: pathlib.Path, model: torch.nn.Module, env, ema: torch.nn.Module | None = None,
           extra: dict[str, torch.nn.Module] | None = None, unit: str = "iteration") -> tuple[dict, dict | None]:
    """`restore(load(path), …)`: resume from `path` when it exists."""
    return restore(load(path), path, model, env, ema, extra, unit)
