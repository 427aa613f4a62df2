"""Pre-train the stage-2 image encoder on synthetic renders (no pretrained weights can be downloaded).

    python -m training.train_image_encoder --data runs/stage2/train --test runs/stage2/test \
        --out runs/image_encoder --minutes 25 --export

Data: shards of `python -m training.data.make_dataset` (images 256², K, kp2d, kp2d_noisy, joints_cam, …).
Each image is cut to the square crop of `core.detector.crop_box(kp2d_noisy)` — the same box the cascade
uses at inference on detected keypoints — and resized to 128² (`core.nets.image_encoder.crop_image`).
Pretext losses: 21 keypoint heatmaps at 32² (Gaussian σ = 1 cell, MSE) + root-relative 3D joints from
the pooled top level (L1, units of 0.1 m). Augmentation: brightness / contrast / colour jitter.
Reported on the test split: 2D keypoint error of the heatmap arg-max (px in the 128 crop) and 3D
joint PA-MPJPE (mm) of the pretext head. --export writes resources/models/image_encoder.safetensors.

Multi-GPU / multi-process (DDP, training/distributed.py):

    torchrun --nproc_per_node 4 -m training.train_image_encoder --data runs/stage2/train \
        --test runs/stage2/test --out runs/image_encoder --minutes 25 --export

--batch is per rank (effective batch = batch × processes); every rank reads the training shards and
draws its own batches and augmentations; the encoder is wrapped in DistributedDataParallel; only
rank 0 evaluates, checkpoints and exports. --check-sync verifies at the end that all ranks hold
identical weights (exit code 1 if not).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

from core.nets.image_encoder import CROP_RES, ImageEncoder, ImageEncoderConfig
from training import checkpoint, distributed
from training.data.renders import load_render_shards, to_float
from training.loop import (Budget, add_common_args, export_command, lr_at, models_dir_kwargs, optimiser_step,
                           run_metrics, run_script, set_lr)

WEIGHTS_NAME = "image_encoder"
TRAIN_COMMAND = ("python -m training.train_image_encoder --data runs/stage2/train --test runs/stage2/test "
                 "--out runs/image_encoder --minutes 25 --export")
HEATMAP_RES = CROP_RES // 4


def heatmap_targets(kp_crop: torch.Tensor, res: int = HEATMAP_RES, crop: int = CROP_RES, sigma: float = 1.0
                    ) -> torch.Tensor:
    """(B,21,2) crop pixels → (B,21,res,res) Gaussians (peak 1) at the heatmap cell centres."""
    c = (kp_crop * res / crop - 0.5)                                  # cell coordinates
    g = torch.arange(res, dtype=torch.float32)
    dx = (g[None, None, None, :] - c[..., 0, None, None]) ** 2
    dy = (g[None, None, :, None] - c[..., 1, None, None]) ** 2
    return torch.exp(-(dx + dy) / (2 * sigma ** 2))


def heatmap_argmax(hm: torch.Tensor, crop: int = CROP_RES) -> torch.Tensor:
    b, j, h, w = hm.shape
    idx = hm.flatten(2).argmax(-1)
    return torch.stack([(idx % w).float() + 0.5, (idx // w).float() + 0.5], -1) * crop / w


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    bright = 1 + 0.3 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
    contrast = 1 + 0.3 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
    colour = 1 + 0.1 * (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 2
    m = x.mean((1, 2, 3), keepdim=True)
    return ((x - m) * contrast + m) * bright * colour


@torch.no_grad()
def evaluate(enc: ImageEncoder, data: dict[str, np.ndarray], batch: int = 128) -> dict[str, float]:
    from core.metrics import pa_mpjpe

    enc.eval()
    dev = next(enc.parameters()).device
    e2d, pa = [], []
    for s in range(0, len(data["crops"]), batch):
        _, hm, j = enc(to_float(data["crops"][s:s + batch]).to(dev))
        kp = heatmap_argmax(hm).cpu()
        e2d.append((kp - torch.from_numpy(data["kp_crop"][s:s + batch])).norm(dim=-1).mean(1))
        pa.append(pa_mpjpe(j.cpu().numpy() * 0.1, data["joints_rr"][s:s + batch]) * 1000)
    enc.train()
    return {"kp2d_err_px128": float(torch.cat(e2d).mean()), "pretext_pa_mpjpe_mm": float(np.concatenate(pa).mean()),
            "n": int(len(data["crops"]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=pathlib.Path, default=pathlib.Path("runs/stage2/train"))
    ap.add_argument("--test", type=pathlib.Path, default=pathlib.Path("runs/stage2/test"))
    add_common_args(ap, out="runs/image_encoder", iters=20000, batch=48, lr=2e-3, threads=2, warmup=100,
                    ckpt_every=100, eval_every=500)
    ap.add_argument("--w-joints", type=float, default=1.0)
    ap.add_argument("--w-heatmap", type=float, default=100.0)
    ap.add_argument("--reload-every", type=int, default=1000, help="re-read --data (new shards) every N iterations")
    return run_script(ap, argv, _train)


def _train(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
    ckpt_path = args.out / "ckpt.pt"
    cfg = ImageEncoderConfig()
    enc = ImageEncoder(cfg)
    state, opt_state = checkpoint.resume(ckpt_path, enc, env)
    # DDP: rank 0's weights are broadcast; gradients are averaged, so all replicas stay identical.
    model = enc.to(env.device) if args.no_ddp_wrap else distributed.wrap(enc, env)
    opt = torch.optim.AdamW(enc.parameters(), lr=args.lr, weight_decay=1e-4)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    env.print_setup(args.batch)
    test = load_render_shards(args.test, 512) if env.is_main else None   # rank 0 evaluates
    train = None if args.export_only else load_render_shards(args.data)
    if train is not None:
        env.print0(f"train crops: {len(train['crops'])}")
    gen = torch.Generator().manual_seed(distributed.rank_int_seed(args.seed + state["it"], env))

    def save_ckpt():
        checkpoint.save(ckpt_path, env, state, enc, opt, args)

    budget = Budget(state, args.iters, args.minutes, env)
    dev = env.device
    while not args.export_only and not budget.done():
        idx = torch.randint(0, len(train["crops"]), (args.batch,), generator=gen).numpy()
        x = augment(to_float(train["crops"][idx]), gen).to(dev)
        kp = torch.from_numpy(train["kp_crop"][idx])
        _, hm, j = model(x)
        l_hm = F.mse_loss(hm, heatmap_targets(kp).to(dev))
        l_j = (j - torch.from_numpy(train["joints_rr"][idx]).to(dev) / 0.1).abs().mean()
        loss = args.w_heatmap * l_hm + args.w_joints * l_j
        lr = lr_at(state["it"], budget.progress(), args.lr, args.warmup, decay_in_warmup=True)
        set_lr(opt, lr)
        optimiser_step(opt, loss, enc.parameters(), max_norm=2.0)
        budget.advance()
        if state["it"] % 50 == 0:
            lhm, lj = env.all_reduce_mean([l_hm.item(), l_j.item()])
            env.print0(f"it {state['it']} hm {lhm:.5f} j {lj:.4f} lr {lr:.2e} {state['elapsed'] / 60:.1f} min")
        if state["it"] % args.eval_every == 0 and env.is_main:
            m = evaluate(enc, test)
            state["log"].append({"it": state["it"], **m})
            print(f"  test: {m}", flush=True)
        if state["it"] % args.ckpt_every == 0:
            save_ckpt()
        if state["it"] % args.reload_every == 0:
            n_old = len(train["crops"])
            train = load_render_shards(args.data)
            if len(train["crops"]) != n_old:
                env.print0(f"train crops: {len(train['crops'])}")
    if not args.export_only:
        save_ckpt()
    synced = env.check_sync(enc) if args.check_sync else True
    if not env.is_main:
        return 0 if synced else 1
    m = evaluate(enc, test)
    print(f"final test: {m}", flush=True)
    if args.export or args.export_only:
        from core.weights import save_weights

        cmd = export_command("training.train_image_encoder", argv, env)
        path = save_weights(WEIGHTS_NAME, enc.state_dict(), {"net": cfg.to_dict()}, cmd,
                            {"test_split_seed2026": m, **run_metrics(state),
                             "train_samples": None if train is None else int(len(train["crops"]))},
                            **models_dir_kwargs(args))
        print(f"exported {path}", flush=True)
    return 0 if synced else 1


if __name__ == "__main__":
    sys.exit(main())
