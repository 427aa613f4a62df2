"""Train the DPoser-hand prior (DESIGN §7) on poses drawn on the fly from `core.pose_sampler`.

    python -m training.train_dposer --minutes 50 --out runs/dposer --export

ε-prediction with unweighted MSE, t ~ U(1e-5, 1) on the sub-VP SDE (β 0.1 → 20), RAdam with linear
warm-up + cosine decay, gradient clipping at 1, EMA of the weights. Poses are z-score normalised per
dimension with statistics from a fixed-seed sample. The held-out split is a fixed-seed pose set
(seed 2024_11, never used for training: training draws from seeds derived from the step number with
a different base). Checkpoints (`runs/dposer/last.pt`, resumable; `--minutes` counts the time of
earlier runs) are torch files under runs/ (gitignored); with --export the final EMA weights go to
resources/models/dposer_hand.safetensors (or --models-dir) via save_weights.

Real data: when the MANO backend is configured, `--poses FILE.npz` (key `pose`, (N,45) axis-angle in
our pose layout — MANO's 15 joints in the same finger order) replaces the sampler; a random 5% of it is
held out.

Training-pose sampler: `--sampler default` (the shared `core.pose_sampler.sample_poses`, as the shipped
model of 2026-11-22) or `--sampler wide` (`core.prior.train_poses`: a fraction `--wide-frac` of the
poses gets a broad anatomical thumb and a wider DIP/PIP coupling; the rest are the shared sampler's).
`--init` warm-starts from weights (a `resources/models` name such as dposer_hand, a .safetensors file
or a last.pt checkpoint) and keeps their normalisation statistics, so that the TTO's noise start and
its L2 / no-prior baselines (which use the prior's mean/std) stay the same.

Multi-GPU / multi-process (DDP, training/distributed.py):

    torchrun --nproc_per_node 4 -m training.train_dposer --out runs/dposer --minutes 50 --export

--batch is per rank (effective batch = batch × processes); each rank draws its own poses; the
network is wrapped in DistributedDataParallel (the EMA, updated from the synchronised weights, is
identical on every rank); only rank 0 evaluates, checkpoints and exports. --check-sync verifies at
the end that all ranks hold identical weights (exit code 1 if not).
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import time

import numpy as np
import torch

from core.hand.pose_layout import POSE_DIM
from core.prior.train_poses import SAMPLERS, sample_prior_poses
from core.prior.model import WEIGHTS_NAME, DPoserPrior
from training import checkpoint, distributed
from training.loop import (Budget, add_common_args, ema_update, export_command, lr_at, make_ema, models_dir_kwargs,
                           optimiser_step, run_script, set_lr)

HELDOUT_SEED = 202411
STATS_SEED = 7
TRAIN_SEED_BASE = 10_000_000


class PoseSource:
    """Training batches: from the synthetic sampler (default) or from a real pose file."""

    def __init__(self, poses_file: str | None, seed: int,
                 env: distributed.DistEnv | None = None, sampler: str = "default",
                 wide_frac: float = 0.5) -> None:
        self.file_poses = None
        self.sampler, self.wide_frac = sampler, wide_frac
        self.env = env or distributed.DistEnv()
        self.rng = np.random.default_rng(distributed.rank_seed(seed, self.env))
        if poses_file:
            data = np.load(poses_file, allow_pickle=False)
            poses = np.asarray(data["pose"], np.float32).reshape(-1, POSE_DIM)
            perm = np.random.default_rng(0).permutation(len(poses))
            n_test = max(1, len(poses) // 20)
            self.heldout = poses[perm[:n_test]]
            self.file_poses = poses[perm[n_test:]]
        else:
            self.heldout = self._sample(4096, HELDOUT_SEED)

    def _sample(self, n: int, seed) -> np.ndarray:
        return sample_prior_poses(n, seed, self.sampler, self.wide_frac)

    def stats_sample(self) -> np.ndarray:
        if self.file_poses is not None:
            return self.file_poses
        return self._sample(200_000, STATS_SEED)

    def batch(self, n: int, step: int) -> np.ndarray:
        if self.file_poses is not None:
            return self.file_poses[self.rng.integers(0, len(self.file_poses), n)]
        # Rank 0 (and a single process) draws exactly the poses of seed TRAIN_SEED_BASE + step.
        return self._sample(n, distributed.rank_seed(TRAIN_SEED_BASE + step, self.env))


def diffusion_loss(prior: DPoserPrior, z0: torch.Tensor, gen: torch.Generator | None = None,
                   net: torch.nn.Module | None = None) -> torch.Tensor:
    """`net`: the (DDP-wrapped) prior.net to call instead of prior.eps, so that DDP sees the forward."""
    b = z0.shape[0]
    t = (torch.rand(b, generator=gen) * (1 - prior.sde.eps) + prior.sde.eps).to(z0.device)
    noise = torch.randn(z0.shape, generator=gen).to(z0.device)
    zt = prior.sde.perturb(z0, t, noise)
    eps = prior.eps(zt, t) if net is None else net(zt, t)
    return ((eps - noise) ** 2).mean()


@torch.no_grad()
def heldout_metrics(prior: DPoserPrior, heldout: np.ndarray) -> dict[str, float]:
    """ε-MSE on held-out poses (fixed noise) at several t, and the one-step x̂0 error in radians."""
    if next(prior.parameters()).device.type != "cpu":
        prior = copy.deepcopy(prior).cpu()   # (the prior's cached fast path is CPU-only)
    prior.eval()
    g = torch.Generator().manual_seed(0)
    z0 = prior.normalize(torch.from_numpy(heldout))
    out = {}
    losses = []
    for t in (0.05, 0.1, 0.15, 0.3, 0.5, 0.8):
        noise = torch.randn(z0.shape, generator=g)
        zt = prior.sde.perturb(z0, torch.full((len(z0),), t), noise)
        e = prior.eps(zt, t)
        losses.append(float(((e - noise) ** 2).mean()))
        if t in (0.1, 0.3):
            x0 = prior.denormalize(prior.denoise(zt, t))
            out[f"x0_rmse_rad_t{t}"] = float(((x0 - torch.from_numpy(heldout)) ** 2).mean().sqrt())
    out["heldout_eps_mse"] = float(np.mean(losses))
    # Random-t loss like training, fixed seed.
    out["heldout_loss"] = float(diffusion_loss(prior, z0, torch.Generator().manual_seed(1)))
    prior.train()
    return out


def load_init(spec: str) -> dict[str, torch.Tensor]:
    """State dict (network + mean/std) for --init: a last.pt checkpoint (its EMA), a .safetensors
    file or the name of a shipped model."""
    path = pathlib.Path(spec)
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)["ema"]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from core.weights import load_weights

    return load_weights(spec)[0]


def _data_desc(args: argparse.Namespace) -> str:
    if args.sampler == "default":
        return "core.pose_sampler.sample_poses on the fly"
    return (f"core.prior.train_poses.sample_prior_poses(sampler={args.sampler!r}, wide_frac={args.wide_frac}) "
            "on the fly" + (f", warm start from {args.init}" if args.init else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, out="runs/dposer", iters=30000, batch=1024, lr=2e-4 * 4, threads=1, warmup=500, ema=0.999,
                    iters_aliases=("--steps",))
    ap.add_argument("--no-export", action="store_true", help=argparse.SUPPRESS)  # old spelling: now the default
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--poses", default=None, help="optional real pose file (.npz with 'pose' (N,45)) instead of the sampler")
    ap.add_argument("--sampler", default="default", choices=SAMPLERS,
                    help="training poses: default = core.pose_sampler; wide = core.prior.train_poses")
    ap.add_argument("--wide-frac", type=float, default=0.5, help="share of widened poses (--sampler wide)")
    ap.add_argument("--init", default=None,
                    help="warm start (weights + normalisation) from a models name, .safetensors or last.pt")
    return run_script(ap, argv, _train)


def _train(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
    ckpt_path = args.out / "last.pt"

    source = PoseSource(args.poses, args.seed, env, args.sampler, args.wide_frac)
    init_state = None
    ckpt = checkpoint.load(ckpt_path)
    if ckpt is not None:
        mean, std = ckpt["mean"], ckpt["std"]
    elif args.init:
        init_state = load_init(args.init)
        mean, std = init_state["mean"].float(), init_state["std"].float()
    else:
        stats = source.stats_sample()
        mean = torch.from_numpy(stats.mean(0)).float()
        std = torch.from_numpy(stats.std(0)).float().clamp_min(1e-3)
    prior = DPoserPrior(mean, std, width=args.width, blocks=args.blocks, dropout=args.dropout)
    ema = make_ema(prior)
    state, opt_state = checkpoint.restore(ckpt, ckpt_path, prior, env, ema, unit="step")
    if init_state is not None:
        prior.load_state_dict({k: v.float() for k, v in init_state.items()})
        ema.load_state_dict({k: v.float() for k, v in init_state.items()})
        env.print0(f"warm start from {args.init}")
    del ckpt, init_state
    prior.to(env.device)
    ema.to(env.device)
    # DDP wraps the network (the part with parameters); rank 0's weights are broadcast, gradients averaged.
    net = prior.net if args.no_ddp_wrap else distributed.wrap(prior.net, env)
    distributed.broadcast_module(ema, env)
    opt = torch.optim.RAdam(prior.net.parameters(), lr=args.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    n_params = sum(p.numel() for p in prior.net.parameters())
    env.print0(f"params {n_params/1e6:.2f} M, batch {args.batch}"
               + (f" per rank × {env.world_size} processes ({env.backend}, {env.device.type})"
                  if env.world_size > 1 else "") + f", steps {args.iters}")
    if env.world_size > 1:
        torch.manual_seed(args.seed + env.rank)   # different diffusion times / noise / dropout per rank

    def save_ckpt():
        checkpoint.save(ckpt_path, env, state, prior, opt, args, ema, unit="step", mean=mean, std=std)

    # --minutes stops the run; the learning rate follows the steps only (cosine after the warm-up).
    budget = Budget(state, args.iters, args.minutes, env)
    last_save = time.time()
    running = None
    while not budget.done() and not args.export_only:
        step = state["it"]
        set_lr(opt, lr_at(step, (step - args.warmup) / max(1, args.iters - args.warmup), args.lr, args.warmup))
        z0 = prior.normalize(torch.from_numpy(source.batch(args.batch, step)).to(env.device))
        loss = diffusion_loss(prior, z0, net=net if env.distributed else None)   # (None: as before)
        optimiser_step(opt, loss, prior.net.parameters())
        ema_update(ema, prior, step, args.ema)
        step = budget.advance()
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if step % 200 == 0:
            (running_all,) = env.all_reduce_mean([running])
            env.print0(f"step {step} loss {running_all:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                       f"{budget.minutes_spent:.1f} min")
        if step % 2000 == 0 and env.is_main:   # the EMA is the same on every rank
            m = heldout_metrics(ema, source.heldout)
            print(f"  heldout(ema) {m}", flush=True)
        if time.time() - last_save > 120:
            save_ckpt()
            last_save = time.time()
    if args.minutes and budget.done() and state["it"] < args.iters:
        env.print0("time limit reached")
    save_ckpt()
    synced = True
    if args.check_sync:
        diff = max(env.params_max_diff(prior.net), env.params_max_diff(ema))
        synced = diff == 0.0
        env.print0(f"sync check: max |weight difference| (model and EMA) over {env.world_size} ranks = "
                   f"{diff:.3g} ({'in sync' if synced else 'NOT IN SYNC'})")
    if not env.is_main:
        return 0 if synced else 1
    ema.eval()
    metrics = heldout_metrics(ema, source.heldout)
    metrics["steps"] = state["it"]
    print(f"final heldout(ema) {metrics}", flush=True)
    if args.export or args.export_only:
        from core.weights import save_weights

        cmd = export_command("training.train_dposer", argv, env)
        path = save_weights(WEIGHTS_NAME, ema.export_state(), ema.config, cmd, metrics,
                            extra={"data": args.poses or _data_desc(args),
                                   "heldout": (f"sample_prior_poses(4096, seed={HELDOUT_SEED}, "
                                               f"{args.sampler!r}, {args.wide_frac})"
                                               if args.sampler != "default"
                                               else f"sample_poses(4096, seed={HELDOUT_SEED})")},
                            **models_dir_kwargs(args))
        print(f"wrote {path}", flush=True)
    return 0 if synced else 1


if __name__ == "__main__":
    raise SystemExit(main())
