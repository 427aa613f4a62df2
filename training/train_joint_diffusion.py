"""Train the stage-1 joint diffusion model (paper 000 §3.2, supp. A.1) on synthetic Anny data.

    python -m training.train_joint_diffusion --out runs/joint_diffusion --iters 12000 --export

Data: `training/data/lifting.py` (canonical joint table of sampled poses/shapes built once and cached
under --out; random 3D orientation, camera placement, detector-like 2D noise, crop normalisation and
scale jitter on the fly). Loss: paper's L_DDPM = ‖J0 − Ĵ0‖² (x0 prediction), t ~ U{0..T-1}.
AdamW, linear warm-up then cosine decay, EMA of the weights (exported). Checkpoints every
--ckpt-every iterations to --out/ckpt.pt; rerunning the same command resumes. --export writes the
EMA weights (fp16) to resources/models/joint_diffusion.safetensors (or --models-dir) with its manifest
entry.

Multi-GPU / multi-process (DDP, training/distributed.py):

    torchrun --nproc_per_node 4 -m training.train_joint_diffusion --out runs/joint_diffusion --iters 12000 --export

--batch is per rank (effective batch = batch × processes); rank 0 builds the joint tables, the other
ranks load them; each rank draws its own batches (and diffusion times / noise); the network is wrapped
in DistributedDataParallel (the EMA, updated from the synchronised weights, is identical on every
rank); only rank 0 evaluates, checkpoints and exports. --check-sync verifies at the end that all ranks
hold identical weights (exit code 1 if not).
"""
from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import torch

from core.diffusion import GaussianDiffusion, make_schedule
from core.metrics import pa_mpjpe
from core.nets.joint_diffusion import JOINT_SCALE, JointDiffusionConfig, JointDiffusionNet
from core.stage1 import WEIGHTS_NAME
from training import checkpoint, distributed
from training.data.lifting import LiftingBatcher, make_joint_table
from training.loop import (Budget, add_common_args, ema_update, export_command, lr_at, make_ema, models_dir_kwargs,
                           optimiser_step, run_script, set_lr)

VAL_SEED = 987_654   # held-out split: poses/shapes/cameras/noise from this seed only


def get_table(out: pathlib.Path, n: int, seed: int, hand=None) -> np.ndarray:
    path = out / f"table_seed{seed}_n{n}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.time()
    table = make_joint_table(n, seed, hand=hand, progress=n > 20000)
    np.save(path, table)
    print(f"joint table {path.name}: {n} samples in {time.time() - t0:.0f} s", flush=True)
    return table


def val_batch(out: pathlib.Path, n: int = 512, hand=None, occlusion_input: bool = False) -> dict[str, torch.Tensor]:
    table = get_table(out, n, VAL_SEED, hand)
    return LiftingBatcher(table, seed=VAL_SEED, occlusion_input=occlusion_input).batch(n, idx=torch.arange(n))


def widen_condition(state: dict, cfg: JointDiffusionConfig) -> dict:
    """Warm start a network with more condition channels per joint (the occlusion flag) from one with
    fewer: the new input columns start at zero, so the warm-started model is unchanged at first."""
    old_cd = state["inp.weight"].shape[1] - 3
    new_cd = cfg.cond_dim
    if old_cd == new_cd:
        return state
    state = dict(state)
    w = state["inp.weight"]                               # columns [c2d (old_cd), x_t (3)]
    state["inp.weight"] = torch.cat([w[:, :old_cd], w.new_zeros(w.shape[0], new_cd - old_cd), w[:, old_cd:]], 1)
    if "pose_mlp.0.weight" in state:                      # columns [c2d flattened per joint, ctx]
        w = state["pose_mlp.0.weight"]
        n = cfg.num_joints
        per = w[:, :n * old_cd].reshape(w.shape[0], n, old_cd)
        per = torch.cat([per, per.new_zeros(w.shape[0], n, new_cd - old_cd)], 2).reshape(w.shape[0], -1)
        state["pose_mlp.0.weight"] = torch.cat([per, w[:, n * old_cd:]], 1)
    return state


@torch.no_grad()
def evaluate_val(net, diffusion, vb, n_hyp: int = 10, steps: int = 10, eta: float = 0.0, limit: int = 256
                 ) -> dict[str, float]:
    net.eval()
    dev = next(net.parameters()).device
    b = min(limit, vb["c2d"].shape[0])
    c2d = vb["c2d"][:b].repeat_interleave(n_hyp, 0).to(dev)
    ctx = vb["ctx"][:b].repeat_interleave(n_hyp, 0).to(dev)
    res = diffusion.ddim_sample(net, (b * n_hyp, 21, 3), steps=steps, eta=eta, seed=0, record=False,
                                device=dev, c2d=c2d, ctx=ctx)
    hyps = res.x0.reshape(b, n_hyp, 21, 3).cpu().numpy() * JOINT_SCALE * 1000
    gt = vb["joints"][:b].numpy() * 1000
    per = pa_mpjpe(hyps, gt[:, None])                     # (b, n_hyp)
    mean = pa_mpjpe(hyps.mean(1), gt)
    net.train()
    return {"pa_mpjpe_mean_mm": float(mean.mean()), "pa_mpjpe_best_mm": float(per.min(1).mean()),
            "pa_mpjpe_single_mm": float(per.mean())}


def load_init(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """Warm-start weights: the EMA weights of a training checkpoint (ckpt.pt), or exported weights
    (`*.safetensors`, loaded without pickle, as float32; checked against the sha256 of a manifest.json
    next to it when that has an entry for the file)."""
    if path.suffix == ".safetensors":
        from core.weights import load_weights, read_manifest
        if path.stem in read_manifest(path.parent):
            return load_weights(path.stem, path.parent)[0]
        from safetensors.torch import load_file
        return {k: v.float() for k, v in load_file(str(path)).items()}
    torch.serialization.add_safe_globals([pathlib.PosixPath])   # older checkpoints stored Path args
    return torch.load(path, map_location="cpu", weights_only=True)["ema"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, out="runs/joint_diffusion", iters=12000, batch=256, lr=1e-3, threads=1, warmup=300,
                    ema=0.999, ckpt_every=250, eval_every=1000)
    ap.add_argument("--export-dir", dest="models_dir", type=pathlib.Path, help=argparse.SUPPRESS)  # old spelling
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--table-size", type=int, default=200_000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    ap.add_argument("--sigma-max", type=float, default=0.05, help="max 2D noise σ (fraction of the hand box side)")
    ap.add_argument("--outlier-prob", type=float, default=0.03)
    ap.add_argument("--occlusion-noise", type=float, default=1.5,
                    help="self-occluded joints get 2D noise σ × (1 + this) and 3× the outlier rate")
    ap.add_argument("--occluded-outlier-prob", type=float, default=None,
                    help="outlier probability of a self-occluded keypoint (default 3 × --outlier-prob; "
                         "needs --occlusion-noise > 0), see training/data/lifting.py detector_noise")
    ap.add_argument("--occluded-parent-jump", type=float, default=0.0,
                    help="fraction of the occluded outliers that slide along the finger (towards the parent "
                         "joint) instead of jumping in a random direction")
    ap.add_argument("--eta", type=float, default=0.0, help="default DDIM η stored in the manifest")
    ap.add_argument("--init", type=pathlib.Path,
                    help="warm-start (non-strict) from another run's ckpt.pt (its EMA weights) or from exported "
                         "weights <name>.safetensors (read without pickle, e.g. the shipped model)")
    ap.add_argument("--no-global-cond", action="store_true", help="per-token 2D conditioning only")
    ap.add_argument("--occlusion-input", action="store_true",
                    help="a third condition channel per keypoint: 'probably hidden' (capsule test; estimated "
                         "by a first lifting pass at inference, core.stage1.JointLifter.estimate_occlusion)")
    return run_script(ap, argv, _train)


def _train(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
    from core.hand.anny_hand import AnnyHand
    hand = AnnyHand()
    with env.main_first():   # rank 0 builds and saves the joint table, the other ranks load it
        table = get_table(args.out, args.table_size, args.seed, hand)
    vb = val_batch(args.out, hand=hand, occlusion_input=args.occlusion_input) if env.is_main else None

    cfg = JointDiffusionConfig(width=args.width, depth=args.depth, heads=args.heads, mlp_ratio=args.mlp_ratio,
                               global_cond=not args.no_global_cond, cond_dim=3 if args.occlusion_input else 2)
    net = JointDiffusionNet(cfg)
    if args.init and not (args.out / "ckpt.pt").exists():
        if cfg.global_cond:   # new pathway starts silent: the warm-started model is unchanged at first
            torch.nn.init.zeros_(net.pose_mlp[-1].weight)
            torch.nn.init.zeros_(net.pose_mlp[-1].bias)
        init = widen_condition(load_init(args.init), cfg)
        missing, unexpected = net.load_state_dict(init, strict=False)
        env.print0(f"warm start from {args.init}: missing {missing}, unexpected {unexpected}")
    ema = make_ema(net)
    diffusion = GaussianDiffusion(make_schedule(args.schedule))
    ckpt_path = args.out / "ckpt.pt"
    state, opt_state = checkpoint.resume(ckpt_path, net, env, ema)
    # DDP: rank 0's weights (and EMA) are broadcast, gradients averaged, so all replicas stay identical.
    model = net.to(env.device) if args.no_ddp_wrap else distributed.wrap(net, env)
    ema.to(env.device)
    distributed.broadcast_module(ema, env)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    env.print0(f"params {sum(p.numel() for p in net.parameters())/1e6:.2f} M, "
               f"{net.flops_per_sample() * 500 / 1e9:.1f} GFLOP per image (50 hyps x 10 steps)")
    env.print_setup(args.batch)
    if env.rank:   # different diffusion times / noise per rank (rank 0 keeps a single process's stream)
        torch.manual_seed(distributed.rank_int_seed(args.seed, env))

    def save_ckpt():
        checkpoint.save(ckpt_path, env, state, net, opt, args, ema)

    batcher = LiftingBatcher(table, seed=distributed.rank_int_seed(args.seed * 1_000_003 + state["it"], env),
                             sigma_range=(0.005, args.sigma_max),
                             outlier_prob=args.outlier_prob, occlusion_noise=args.occlusion_noise,
                             occlusion_input=args.occlusion_input,
                             occluded_outlier_prob=args.occluded_outlier_prob,
                             occluded_parent_jump=args.occluded_parent_jump)
    budget = Budget(state, args.iters, args.minutes, env)
    running = 0.0
    net.train()
    dev = env.device
    while not budget.done() and not args.export_only:
        it = state["it"]
        b = batcher.batch(args.batch)
        set_lr(opt, lr_at(it, budget.progress(), args.lr, args.warmup))
        loss = diffusion.training_loss(model, b["x0"].to(dev), c2d=b["c2d"].to(dev), ctx=b["ctx"].to(dev))
        optimiser_step(opt, loss, net.parameters())
        ema_update(ema, net, it, args.ema)
        it = budget.advance()
        running = 0.98 * running + 0.02 * loss.item() if it > 1 else loss.item()
        if it % 50 == 0:
            (running_all,) = env.all_reduce_mean([running])
            env.print0(f"it {it} loss {running_all:.4f} lr {opt.param_groups[0]['lr']:.2e} {state['elapsed']:.0f}s")
        last = budget.done()
        if env.is_main and (it % args.eval_every == 0 or last):   # the EMA is the same on every rank
            m = evaluate_val(ema, diffusion, vb)
            state["log"].append({"iter": it, "loss": running, "minutes": budget.minutes_spent, **m})
            print(f"val it {it}: " + " ".join(f"{k} {v:.2f}" for k, v in m.items()), flush=True)
        if it % args.ckpt_every == 0 or last:
            save_ckpt()

    synced = env.check_sync(net, ema, note="model and EMA") if args.check_sync else True
    if (args.export or args.export_only) and env.is_main:
        from core.weights import save_weights

        m = evaluate_val(ema, diffusion, vb, n_hyp=10)
        config = {"net": cfg.to_dict(), "schedule": diffusion.schedule.config(), "joint_scale": JOINT_SCALE,
                  "eta": args.eta, "crop": "rays K^-1 uv, square bbox, pad 0.25",
                  "data": {"table_size": args.table_size, "seed": args.seed, "val_seed": VAL_SEED,
                           "sigma_max": args.sigma_max, "outlier_prob": args.outlier_prob,
                           "occlusion_noise": args.occlusion_noise, "occlusion_input": args.occlusion_input,
                           "occluded_outlier_prob": (3 * args.outlier_prob if args.occluded_outlier_prob is None
                                                     else args.occluded_outlier_prob),
                           "occluded_parent_jump": args.occluded_parent_jump},
                  "iters_done": state["it"], "batch": args.batch}
        cmd = export_command("training.train_joint_diffusion", argv, env)
        path = save_weights(WEIGHTS_NAME, ema.state_dict(), config, cmd, {"synthetic_val_10hyp_10steps": m},
                            **models_dir_kwargs(args))
        print(f"exported {path}: {m}", flush=True)
    return 0 if synced else 1


if __name__ == "__main__":
    raise SystemExit(main())
