"""Pieces of the training loop that the five training scripts share: the common command-line flags,
the EMA of the weights, the learning-rate schedule and the wall-clock budget.

The checkpoint side (atomic save, resume) is `training/checkpoint.py`; the multi-process side
(DDP, rank seeds, agreeing on numbers across ranks) is `training/distributed.py`.
"""
from __future__ import annotations

import argparse
import copy
import math
import pathlib
import sys
import time
from typing import Callable, Iterable, Sequence

import torch

from training import distributed


def add_common_args(ap: argparse.ArgumentParser, *, out: str, iters: int, batch: int, lr: float, threads: int,
                    warmup: int | None = None, ema: float | None = None, ckpt_every: int | None = None,
                    eval_every: int | None = None, iters_aliases: Sequence[str] = (),
                    models_dir_help: str = "export into this folder instead of resources/models "
                                           "(a candidate to evaluate first)") -> None:
    """The flags every training script takes, with the script's own defaults. A flag whose default is
    None here (warm-up, EMA, checkpoint / evaluation period) is added only when the script uses it.

    Export is opt-in everywhere: `--export` (after training) or `--export-only` (the current
    checkpoint, no training), into `--models-dir` (default: resources/models, or $POSE_VIEWER_MODELS)."""
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(out),
                    help="run folder: checkpoint (resumed when it exists) and caches")
    ap.add_argument("--iters", *iters_aliases, dest="iters", type=int, default=iters,
                    help="optimiser steps (the length of the learning-rate schedule)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="wall-clock budget (0: none): training stops when either --iters or the budget is "
                         "reached; a resumed run counts the time already spent")
    ap.add_argument("--batch", type=int, default=batch, help="batch per process (torchrun: × processes)")
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    if warmup is not None:
        ap.add_argument("--warmup", type=int, default=warmup, help="linear learning-rate warm-up (iterations)")
    if ema is not None:
        ap.add_argument("--ema", type=float, default=ema, help="EMA decay of the exported weights")
    ap.add_argument("--threads", type=int, default=threads, help="torch CPU threads per process")
    ap.add_argument("--seed", type=int, default=0)
    if ckpt_every is not None:
        ap.add_argument("--ckpt-every", type=int, default=ckpt_every, help="checkpoint period (iterations)")
    if eval_every is not None:
        ap.add_argument("--eval-every", type=int, default=eval_every, help="evaluation period (iterations)")
    ap.add_argument("--export", action="store_true", help="write the weights to --models-dir after training")
    ap.add_argument("--export-only", action="store_true", help="export the current checkpoint and exit")
    ap.add_argument("--models-dir", type=pathlib.Path, default=None, help=models_dir_help)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: cuda:LOCAL_RANK under torchrun when CUDA is available, else CPU")
    ap.add_argument("--check-sync", action="store_true",
                    help="at the end, check that all DDP ranks hold identical weights (exit 1 if not)")
    ap.add_argument("--no-ddp-wrap", action="store_true", help=argparse.SUPPRESS)  # tests: ranks diverge


def run_script(ap: argparse.ArgumentParser, argv: list[str] | None,
               train: Callable[[argparse.Namespace, list[str] | None, distributed.DistEnv], int]) -> int:
    """Parse the flags, set the CPU threads, and run `train(args, argv, env)` under `distributed.run`
    after seeding torch with --seed and creating --out → the script's exit code."""
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    def start(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
        torch.manual_seed(args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        return train(args, argv, env)

    return distributed.run(start, args, argv, args.device)


def export_command(module: str, argv: list[str] | None, env: distributed.DistEnv) -> str:
    """The command line a manifest records for this run (`python -m …` or `torchrun … -m …`). An
    `--export-only` run re-exports a finished one, so it records the command that trains it."""
    argv = sys.argv[1:] if argv is None else argv
    return env.command(module, ["--export" if a == "--export-only" else a for a in argv])


def run_metrics(state: dict) -> dict:
    """Length of the run for a manifest entry: iterations done and minutes spent (resumes included)."""
    return {"iterations": state["it"], "minutes": round(state["elapsed"] / 60, 1)}


def models_dir_kwargs(args: argparse.Namespace) -> dict:
    """`save_weights` keyword for --models-dir (nothing when unset, so core.weights picks its default)."""
    return {} if args.models_dir is None else {"models_dir": args.models_dir}


# --- EMA ---------------------------------------------------------------------------------------------

def make_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` in eval mode, to be averaged with `ema_update`."""
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, it: int, decay: float) -> None:
    """θ_ema ← d·θ_ema + (1−d)·θ with d = min(decay, (1+it)/(10+it)): the ramp lets the early EMA
    follow the fast-changing weights. Parameters only (buffers are not averaged)."""
    d = min(decay, (1 + it) / (10 + it))
    for pe, pn in zip(ema.parameters(), model.parameters()):
        pe.mul_(d).add_(pn.detach(), alpha=1 - d)


# --- learning rate -----------------------------------------------------------------------------------

def lr_at(it: int, progress: float, base: float, warmup: int, decay_in_warmup: bool = False) -> float:
    """Linear warm-up over the first `warmup` iterations, then cosine decay over `progress` ∈ [0, 1]
    from `base` to 2 % of it. `decay_in_warmup`: the warm-up ramp multiplies the cosine factor instead
    of replacing it (the image encoder's and the LDM's schedule)."""
    if it < warmup and not decay_in_warmup:
        return base * (it + 1) / warmup
    p = min(1.0, max(0.0, progress))
    cosine = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p))
    if decay_in_warmup and warmup > 0:
        return base * min(1.0, (it + 1) / warmup) * cosine
    return base * cosine


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group gets `lr` times its "lr_scale" (1 when the group has none)."""
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


# --- optimiser step ----------------------------------------------------------------------------------

def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor, *clip: Iterable[torch.nn.Parameter],
                   max_norm: float = 1.0) -> None:
    """Backward pass and one optimiser step, the gradient norm of each parameter set in `clip` clipped
    to `max_norm` on its own."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for params in clip:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


# --- wall-clock budget -------------------------------------------------------------------------------

class Budget:
    """How far a run is: max(iteration / iters, elapsed / minutes). The elapsed seconds live in the
    checkpoint's loop state (`state["elapsed"]`, so a resumed run counts the time already spent) and
    are agreed on by all ranks (the largest), since they set the learning rate and the stop."""

    def __init__(self, state: dict, iters: int, minutes: float, env: distributed.DistEnv) -> None:
        self.state, self.iters, self.minutes, self.env = state, iters, minutes, env
        self._t_last = time.time()

    def tick(self) -> None:
        """Add the time since the last tick (or the start) to state["elapsed"]; call once per step."""
        now = time.time()
        self.state["elapsed"] = self.env.max_float(self.state["elapsed"] + now - self._t_last)
        self._t_last = now

    def advance(self) -> int:
        """One iteration done: count it and the time it took → the new iteration number."""
        self.state["it"] += 1
        self.tick()
        return self.state["it"]

    def progress(self) -> float:
        p = self.state["it"] / self.iters
        if self.minutes > 0:
            p = max(p, self.state["elapsed"] / (60 * self.minutes))
        return p

    def done(self) -> bool:
        return self.progress() >= 1.0

    @property
    def minutes_spent(self) -> float:
        return self.state["elapsed"] / 60
