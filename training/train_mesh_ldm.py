"""Train the stage-2 mesh latent diffusion model (paper 000 §3.3-3.5, supp. A.3) on synthetic renders.

    python -m training.train_mesh_ldm --data runs/stage2/train --test runs/stage2/test \
        --out runs/mesh_ldm --cond stage1 --minutes 35 --export

Needs the frozen mesh AE (resources/models/mesh_ae), image encoder (resources/models/image_encoder)
and, for --cond stage1/mean, the frozen stage-1 joint diffusion model (resources/models/joint_diffusion,
or --stage1-ckpt runs/joint_diffusion/ckpt.pt for its EMA weights).

Per training image (precomputed once, cached in --out/cache_*.pt): the crop's image tokens (frozen
encoder), the GT mesh (Anny, camera axes) and its whitened latent x0 (frozen AE, μ), and
--stage1-samples joint hypotheses drawn from the frozen stage-1 model for the image's noisy 2D
keypoints (DDIM 10 steps). The joint condition of a training step (--cond):
  stage1  one of the stage-1 samples at random (the paper's key idea, default),
  mean    the mean of the stage-1 samples,
  gt      the ground-truth joints (Table 4 ablation).
Loss (eq. 8/11): 1 · ‖x0 − x̂0‖² + 10 · L1(V, D(x̂0)) + 5 · L1(J, R·D(x̂0)) with the frozen decoder D
and joint regressor R (mean-centred meshes, units of 0.1 m). AdamW, warm-up + cosine, EMA of the
weights (exported). Resumable from --out/ckpt.pt.

--encoder-lr LR (> 0) fine-tunes the image encoder with the LDM instead of keeping it frozen (its
tokens are then computed per batch from the crops, not cached; an EMA of the encoder is kept like the
LDM's and exported as `image_encoder_ldm`, which the exported LDM's manifest entry then names).
Single process only.

Evaluation (--eval-only, or at the end): on the held-out test renders, stage-1 hypotheses (N per
image) → stage 2 → PA-MPJPE / PA-MPVPE / F@5 / F@15 (mm) of the paper aggregate and best-of-N.

Multi-GPU / multi-process (DDP, training/distributed.py):

    torchrun --nproc_per_node 4 -m training.train_mesh_ldm --data runs/stage2/train --test runs/stage2/test \
        --out runs/mesh_ldm --cond stage1 --minutes 35 --export

--batch is per rank (effective batch = batch × processes); rank 0 builds the training cache, the other
ranks then load it, and each rank draws its own batches, conditions, times and noise; the LDM is
wrapped in DistributedDataParallel (the EMA, updated from the synchronised weights, is identical on
every rank); only rank 0 evaluates, checkpoints and exports. --check-sync verifies at the end that all
ranks hold identical weights (exit code 1 if not).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

from core.diffusion import GaussianDiffusion, make_schedule
from core.nets.joint_diffusion import JOINT_SCALE
from core.nets.mesh_ae import MESH_SCALE
from core.nets.mesh_ldm import MeshLDM, MeshLDMConfig
from training import checkpoint, distributed
from training.data.meshes import gt_vertices
from training.data.renders import load_render_shards, to_float
from training.loop import (Budget, add_common_args, ema_update, export_command, lr_at, make_ema, models_dir_kwargs,
                           optimiser_step, run_metrics, run_script, set_lr)
from training.stage1_teacher import load_stage1, stage1_samples

WEIGHTS_NAME = "mesh_ldm"
FINETUNED_ENCODER_NAME = "image_encoder_ldm"   # the image encoder fine-tuned with the LDM (--encoder-lr)
TRAIN_COMMAND = ("python -m training.train_mesh_ldm --data runs/stage2/train --test runs/stage2/test "
                 "--out runs/mesh_ldm --cond stage1 --minutes 35 --export")


# --- training cache ------------------------------------------------------------------------------

@torch.no_grad()
def build_cache(data: dict[str, np.ndarray], ae, encoder, lifter, m: int, seed: int, hand=None) -> dict:
    t0 = time.time()
    verts = gt_vertices(data, hand)
    vc = torch.from_numpy(verts)
    vc = (vc - vc.mean(1, keepdim=True)) / MESH_SCALE
    lat = torch.cat([ae.normalise_latent(ae.encode(vc[s:s + 256])[0]) for s in range(0, len(vc), 256)])
    toks = None
    for s in range(0, len(verts), 128):
        t = encoder.features(to_float(data["crops"][s:s + 128]))
        if toks is None:
            toks = [[] for _ in t]
        for i, x in enumerate(t):
            toks[i].append(x.half())
    toks = [torch.cat(x) for x in toks]
    t1 = time.time()
    hyps = stage1_samples(lifter, data["kp2d_noisy"], data["K"], m, seed=seed) if lifter is not None else None
    print(f"cache: {len(verts)} samples, latents+features {t1 - t0:.0f} s, stage-1 samples {time.time() - t1:.0f} s",
          flush=True)
    return {"verts": vc.half(), "latents": lat, "tokens": toks, "hyps": None if hyps is None else torch.from_numpy(hyps),
            "joints_rr": torch.from_numpy(data["joints_rr"])}


def condition(cache: dict, idx: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Joint condition (B,21,3) in network units (÷ JOINT_SCALE)."""
    if mode == "gt":
        j = cache["joints_rr"][idx]
    elif mode == "mean":
        j = cache["hyps"][idx].mean(1)
    elif mode == "stage1":
        h = cache["hyps"][idx]
        pick = torch.randint(0, h.shape[1], (len(idx),), generator=gen)
        j = h[torch.arange(len(idx)), pick]
    else:
        raise ValueError(mode)
    return j.float() / JOINT_SCALE


# --- evaluation ------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(ldm, ae, diffusion, cache: dict, n_images: int = 64, n_hyp: int = 10, steps: int = 10,
             cond: str = "stage1", seed: int = 0, f_scores: bool = True) -> dict[str, float]:
    """Paper aggregate and best-of-N on the first `n_images` cached test images.

    cond 'stage1': cloud = each stage-1 hypothesis → one mesh; paper = mean hypothesis → N latents
    → mean latent. 'gt' / 'mean': every latent is conditioned on the GT / mean joints."""
    from core.metrics import f_score, pa_mpjpe, procrustes_align

    ldm.eval()
    dev = next(ldm.parameters()).device
    rows = {k: [] for k in ("pa_mpjpe", "pa_mpvpe", "f5", "f15", "best_pa_mpjpe", "best_pa_mpvpe",
                            "cloud_mean_pa_mpjpe", "stage1_mean_pa_mpjpe", "stage1_best_pa_mpjpe")}
    for i in range(n_images):
        hyps = cache["hyps"][i, :n_hyp].float() if cache.get("hyps") is not None else None
        gt_j = cache["joints_rr"][i].numpy().astype(np.float64)
        gt_v = cache["verts"][i].float().numpy() * MESH_SCALE
        gt_v = gt_v - (ae.joint_regressor.cpu().numpy() @ gt_v)[0]    # root-relative like the output
        if cond == "stage1":
            c = torch.cat([hyps, hyps.mean(0, keepdim=True).expand(n_hyp, -1, -1)])
        elif cond == "mean":
            c = hyps.mean(0, keepdim=True).expand(2 * n_hyp, -1, -1)
        else:
            c = torch.from_numpy(gt_j).float()[None].expand(2 * n_hyp, -1, -1)
        ctx = ldm.prepare_context([t[i:i + 1].float().to(dev) for t in cache["tokens"]])
        res = diffusion.ddim_sample(ldm, (2 * n_hyp, 168), steps=steps, seed=seed + i, record=False, device=dev,
                                    joints=(c / JOINT_SCALE).to(dev), context=ctx)
        z = ae.denormalise_latent(res.x0)
        zz = torch.cat([z[:n_hyp], z[n_hyp:].mean(0, keepdim=True)])
        v, j = ae.decode_metres(zz)
        v, j = v.cpu().numpy().astype(np.float64), j.cpu().numpy().astype(np.float64)
        rows["pa_mpjpe"].append(pa_mpjpe(j[-1], gt_j) * 1000)
        rows["pa_mpvpe"].append(pa_mpjpe(v[-1], gt_v) * 1000)
        if f_scores:
            al = procrustes_align(v[-1], gt_v)
            rows["f5"].append(f_score(al, gt_v, 0.005))
            rows["f15"].append(f_score(al, gt_v, 0.015))
        rows["best_pa_mpjpe"].append(pa_mpjpe(j[:-1], gt_j[None]).min() * 1000)
        rows["best_pa_mpvpe"].append(pa_mpjpe(v[:-1], gt_v[None]).min() * 1000)
        rows["cloud_mean_pa_mpjpe"].append(pa_mpjpe(j[:-1].mean(0), gt_j) * 1000)
        if hyps is not None:
            h = hyps.numpy().astype(np.float64)
            rows["stage1_mean_pa_mpjpe"].append(pa_mpjpe(h.mean(0), gt_j) * 1000)
            rows["stage1_best_pa_mpjpe"].append(pa_mpjpe(h, gt_j[None]).min() * 1000)
    ldm.train()
    out = {k: float(np.mean(v)) for k, v in rows.items() if v}
    out.update(n_images=n_images, n_hyp=n_hyp, steps=steps, cond=cond)
    return out


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=pathlib.Path, default=pathlib.Path("runs/stage2/train"))
    ap.add_argument("--test", type=pathlib.Path, default=pathlib.Path("runs/stage2/test"))
    add_common_args(ap, out="runs/mesh_ldm", iters=30000, batch=64, lr=5e-4, threads=2, warmup=200, ema=0.999,
                    ckpt_every=100, eval_every=1000,
                    models_dir_help="read the AE / encoder and write the export here instead of resources/models")
    ap.add_argument("--cond", choices=["stage1", "mean", "gt"], default="stage1")
    ap.add_argument("--stage1-ckpt", type=pathlib.Path, default=None,
                    help="use this joint-diffusion training checkpoint's EMA instead of the shipped weights")
    ap.add_argument("--stage1-samples", type=int, default=4)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--encoder-lr", type=float, default=0.0,
                    help="> 0: fine-tune the image encoder with this peak learning rate (default: frozen)")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--w-ddpm", type=float, default=1.0)
    ap.add_argument("--w-vert", type=float, default=10.0)
    ap.add_argument("--w-joint", type=float, default=5.0)
    ap.add_argument("--w-follow", type=float, default=0.0,
                    help="weight of an L1 term between the decoded mesh's root-relative joints and the joint "
                         "CONDITION (not the ground truth): makes each mesh hypothesis follow its stage-1 "
                         "hypothesis, so the cloud keeps stage 1's diversity (0 = the paper's loss)")
    ap.add_argument("--eval-images", type=int, default=64)
    ap.add_argument("--eval-hyp", type=int, default=10)
    ap.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint's EMA and print JSON")
    ap.add_argument("--init", type=pathlib.Path, default=None,
                    help="warm-start from another run's ckpt.pt (its EMA) or a .safetensors export (same architecture)")
    return run_script(ap, argv, _train)


def _train(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
    from core.nets.image_encoder import load_image_encoder
    from core.nets.mesh_ae import load_mesh_ae

    finetune = args.encoder_lr > 0          # with --eval-only: evaluate a fine-tuning run's encoder too
    if finetune and env.world_size > 1:
        raise SystemExit("error: --encoder-lr (encoder fine-tuning) runs in one process only, not under torchrun")
    ae = load_mesh_ae(models_dir=args.models_dir)
    encoder = load_image_encoder(models_dir=args.models_dir)
    for p in list(ae.parameters()) + list(encoder.parameters()):
        p.requires_grad_(False)
    ema_enc = None
    if finetune:
        for p in encoder.parameters():
            p.requires_grad_(True)
        ema_enc = make_ema(encoder)
    diffusion = GaussianDiffusion(make_schedule("linear"))
    lifter = None if (args.cond == "gt" and not args.eval_only) else load_stage1(args.stage1_ckpt)
    from core.hand.anny_hand import AnnyHand

    hand = AnnyHand()

    def get_cache(folder: pathlib.Path, tag: str, max_n, m) -> dict:
        data = load_render_shards(folder, max_n)
        path = args.out / f"cache_{tag}_{len(data['crops'])}_m{m}.pt"
        if path.exists():
            cache = torch.load(path, map_location="cpu", weights_only=True)
        else:
            cache = build_cache(data, ae, encoder, lifter, m, seed=1 if tag == "test" else 0, hand=hand)
            torch.save(cache, path)
        if finetune:
            cache["crops"] = torch.from_numpy(data["crops"])   # tokens come from the encoder being trained
        return cache

    test = None   # only rank 0 evaluates and needs the test cache
    if env.is_main:
        test = get_cache(args.test, "test", 512, max(args.eval_hyp, 10) if lifter is not None else 0)
    cfg = MeshLDMConfig(width=args.width, depth=args.depth, level_dims=encoder.level_dims)
    ldm = MeshLDM(cfg)
    ema = make_ema(ldm)
    ckpt_path = args.out / "ckpt.pt"
    state, opt_state = checkpoint.resume(ckpt_path, ldm, env, ema,
                                         extra={"encoder": encoder, "ema_encoder": ema_enc} if finetune else None)
    if opt_state is None and args.init is not None:
        if args.init.suffix == ".safetensors":      # shipped weights (resources/models/mesh_ldm.safetensors)
            from safetensors.torch import load_file

            init = load_file(str(args.init))
        else:                                        # a training checkpoint's EMA
            init = torch.load(args.init, map_location="cpu", weights_only=True)["ema"]
        ldm.load_state_dict(init)
        ema.load_state_dict(init)
        env.print0(f"warm start from the weights of {args.init}")
        del init
    dev = env.device
    if finetune:
        ema_enc.to(dev)

    @torch.no_grad()
    def test_tokens() -> dict:
        """The test cache, its image tokens recomputed by the encoder's EMA when the encoder is trained."""
        if not finetune:
            return test
        toks = [ema_enc.features(to_float(test["crops"][s:s + 128].numpy()).to(dev))
                for s in range(0, len(test["crops"]), 128)]
        return dict(test, tokens=[torch.cat([t[i] for t in toks]).cpu() for i in range(len(toks[0]))])

    if args.eval_only:
        if env.is_main:
            m = evaluate(ema, ae, diffusion, test_tokens(), args.eval_images, args.eval_hyp, cond=args.cond)
            print(json.dumps(m))
        return 0

    train = None
    if not args.export_only:
        with env.main_first():   # rank 0 builds and saves the cache, the other ranks load it
            train = get_cache(args.data, "train", args.max_train, args.stage1_samples if lifter is not None else 0)
        env.print0(f"train samples: {len(train['latents'])}")
    # DDP: rank 0's weights (and EMA) are broadcast, gradients averaged, so all replicas stay identical.
    model = ldm.to(env.device) if args.no_ddp_wrap else distributed.wrap(ldm, env)
    ema.to(env.device)
    distributed.broadcast_module(ema, env)
    ae.to(env.device)
    groups = [{"params": list(ldm.parameters()), "lr_scale": 1.0}]
    if finetune:
        encoder.to(env.device)
        groups.append({"params": list(encoder.parameters()), "lr_scale": args.encoder_lr / args.lr})
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.0)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    env.print_setup(args.batch)
    gen = torch.Generator().manual_seed(distributed.rank_int_seed(args.seed + state["it"], env))

    def save_ckpt():
        checkpoint.save(ckpt_path, env, state, ldm, opt, args, ema,
                        **({"encoder": encoder, "ema_encoder": ema_enc} if finetune else {}))

    budget = Budget(state, args.iters, args.minutes, env)
    run = None
    while train is not None and not budget.done():
        idx = torch.randint(0, len(train["latents"]), (args.batch,), generator=gen)
        x0 = train["latents"][idx].to(dev)
        cond = condition(train, idx, args.cond, gen).to(dev)
        if finetune:
            levels = encoder.features(to_float(train["crops"][idx].numpy()).to(dev))
        else:
            levels = [t[idx].float().to(dev) for t in train["tokens"]]
        t = diffusion.sample_timesteps(args.batch, generator=gen).to(dev)
        xt = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=gen).to(dev))
        x0_hat = model(xt, t, cond, levels=levels)
        l_ddpm = ((x0_hat - x0) ** 2).mean()
        v_hat = ae.decode(ae.denormalise_latent(x0_hat))
        v_gt = train["verts"][idx].float().to(dev)
        l_v = (v_hat - v_gt).abs().mean()
        l_j = (ae.regress_joints(v_hat) - ae.regress_joints(v_gt)).abs().mean()
        loss = args.w_ddpm * l_ddpm + args.w_vert * l_v + args.w_joint * l_j
        if args.w_follow:
            jh = ae.regress_joints(v_hat)
            l_f = ((jh - jh[:, :1]) - (cond - cond[:, :1])).abs().mean()   # both in 0.1 m units, root-relative
            loss = loss + args.w_follow * l_f
        lr = lr_at(state["it"], budget.progress(), args.lr, args.warmup, decay_in_warmup=True)
        set_lr(opt, lr)
        optimiser_step(opt, loss, ldm.parameters(), *([encoder.parameters()] if finetune else []))
        ema_update(ema, ldm, state["it"], args.ema)
        if finetune:
            ema_update(ema_enc, encoder, state["it"], args.ema)
        budget.advance()
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if state["it"] % 50 == 0:
            r, ld, lv, lj = env.all_reduce_mean([run, l_ddpm.item(), l_v.item(), l_j.item()])
            env.print0(f"it {state['it']} loss {r:.4f} ddpm {ld:.4f} v {lv * 100:.2f} mm "
                       f"j {lj * 100:.2f} mm lr {lr:.2e} {state['elapsed'] / 60:.1f} min")
        if state["it"] % args.eval_every == 0 and env.is_main:   # the EMA is the same on every rank
            m = evaluate(ema, ae, diffusion, test_tokens(), min(32, args.eval_images), args.eval_hyp, cond=args.cond,
                         f_scores=False)
            state["log"].append({"it": state["it"], **m})
            print(f"  test: {json.dumps(m)}", flush=True)
        if state["it"] % args.ckpt_every == 0:
            save_ckpt()
    if train is not None:
        save_ckpt()
    synced = env.check_sync(ldm, ema, note="model and EMA") if args.check_sync else True
    if not env.is_main:
        return 0 if synced else 1
    m = evaluate(ema, ae, diffusion, test_tokens(), args.eval_images, args.eval_hyp, cond=args.cond)
    print(f"final test: {json.dumps(m)}", flush=True)
    if args.export or args.export_only:
        from core.weights import save_weights

        cmd = export_command("training.train_mesh_ldm", argv, env)
        enc_name = "image_encoder"
        if finetune:
            enc_name = FINETUNED_ENCODER_NAME
            enc_path = save_weights(enc_name, ema_enc.state_dict(), {"net": encoder.config.to_dict()}, cmd,
                                    {"fine_tuned_with": WEIGHTS_NAME, "iterations": state["it"]},
                                    **models_dir_kwargs(args))
            print(f"exported {enc_path}", flush=True)
        path = save_weights(WEIGHTS_NAME, ema.state_dict(),
                            {"net": cfg.to_dict(), "schedule": diffusion.schedule.config(), "cond": args.cond,
                             "image_encoder": enc_name, "mesh_ae": "mesh_ae", "joint_scale": JOINT_SCALE},
                            cmd, {"test_split_seed2026": m, **run_metrics(state),
                                  "train_samples": None if train is None else int(len(train["latents"]))},
                            **models_dir_kwargs(args))
        print(f"exported {path}", flush=True)
    return 0 if synced else 1


if __name__ == "__main__":
    sys.exit(main())
