"""Train the stage-2 mesh autoencoder (SpiralNet++; paper 000 §3.3, supp. A.2) on synthetic Anny meshes.

    python -m training.train_mesh_ae --out runs/mesh_ae --minutes 30 --export

Data: meshes generated on the fly — pose (core.pose_sampler), shape, a random camera-frame
orientation biased like the renders (training.data.camera.sample_orientations) — mean-centred, in
units of MESH_SCALE. Loss (supp. A.2): 1 · L1 vertices + 0.5 · L1 joints (joints regressed from the
meshes with the shipped regressor) + 1e-3 · KL. AdamW, warm-up then cosine decay over --iters or
--minutes (whichever ends first). Checkpoint `--out/ckpt.pt` every --ckpt-every iterations; the same
command resumes. Evaluation: the fixed held-out test split (labels of `make_dataset --split test`,
seed 2026) — reconstruction error in mm. --export writes resources/models/mesh_ae.safetensors
(fp16) with the latent statistics the LDM uses and the test metrics in the manifest.

Multi-GPU / multi-process (DDP, training/distributed.py):

    torchrun --nproc_per_node 4 -m training.train_mesh_ae --out runs/mesh_ae --minutes 30 --export

--batch is per rank (effective batch = batch × processes); each rank draws its own hands; the model
is wrapped in DistributedDataParallel; the test split is evaluated in slices across ranks and the
printed losses/metrics are averaged over them; only rank 0 writes the checkpoint and exports.
--check-sync verifies at the end that all ranks hold identical parameters (exit code 1 if not).

Decoder fine-tune for smooth surfaces (issue 25, DESIGN §6):

    python -m training.train_mesh_ae --finetune-decoder --out runs/mesh_ae_smooth --minutes 90 --threads 1

starts from the shipped weights (--init), freezes the encoder — the latent space the shipped mesh LDM
samples in and the exported latent mean/std stay exactly as they are — and trains only the decoder on
latents from the frozen encoder (posterior samples plus --latent-noise × the latent std, so it also
decodes LDM samples well) with L1 vertices + L1 joints + surface terms against the target mesh
(core.mesh.roughness.SurfaceTerms: Laplacian difference --w-lap, edge-length difference --w-edge,
extra bending of adjacent faces --w-normal). The test metrics add the roughness figure (median
dihedral angle, core.mesh.roughness). Single process only.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from core.mesh.sampling import load_sampling
from core.nets.mesh_ae import MESH_SCALE, MeshAE, MeshAEConfig, kl_loss
from training import checkpoint, distributed
from training.data.meshes import MeshSource, test_split_params
from training.loop import (Budget, add_common_args, export_command, lr_at, models_dir_kwargs, optimiser_step,
                           run_metrics, run_script, set_lr)

WEIGHTS_NAME = "mesh_ae"
TRAIN_COMMAND = "python -m training.train_mesh_ae --out runs/mesh_ae --minutes 30 --export"


def _surface_terms(faces: np.ndarray, num_vertices: int):
    from core.mesh.roughness import SurfaceTerms

    return SurfaceTerms(faces, num_vertices)


def centred(v: torch.Tensor) -> torch.Tensor:
    return (v - v.mean(1, keepdim=True)) / MESH_SCALE


@torch.no_grad()
def evaluate(ae: MeshAE, verts: torch.Tensor, batch: int = 128,
             env: distributed.DistEnv | None = None, faces: np.ndarray | None = None) -> dict[str, float]:
    """Reconstruction error (mm) of mean-centred meshes through μ (no sampling). Under DDP each rank
    passes its slice of the test meshes and the per-mesh errors are summed over the ranks."""
    from core.metrics import pa_mpjpe

    env = env or distributed.DistEnv()
    ae = distributed.unwrap(ae)
    dev = next(ae.parameters()).device
    ae.eval()
    sums = [0.0, 0.0, 0.0]
    recon = []
    for s in range(0, len(verts), batch):
        x = centred(verts[s:s + batch]).to(dev)
        y = ae(x, sample=False)[0]
        if faces is not None:
            recon.append(y.cpu())
        jx, jy = ae.regress_joints(x), ae.regress_joints(y)
        sums[0] += float((y - x).norm(dim=-1).mean(1).double().sum()) * MESH_SCALE * 1000
        sums[1] += float(pa_mpjpe(y.cpu().numpy(), x.cpu().numpy()).astype(np.float64).sum()) * MESH_SCALE * 1000
        sums[2] += float((jy - jx).norm(dim=-1).mean(1).double().sum()) * MESH_SCALE * 1000
    ae.train()
    e, p, j, n = env.all_reduce_sum([*sums, len(verts)])
    n_ = max(n, 1.0)
    out = {"mpvpe_mm": e / n_, "pa_mpvpe_mm": p / n_, "mesh_joint_err_mm": j / n_, "n": int(n)}
    if recon:
        from core.mesh.roughness import roughness

        out["roughness_deg"] = roughness(torch.cat(recon), faces)   # this rank's slice
    return out


@torch.no_grad()
def latent_stats(ae: MeshAE, source: MeshSource, n: int = 4096, seed: int = 77) -> tuple[torch.Tensor, torch.Tensor]:
    ae = distributed.unwrap(ae)
    dev = next(ae.parameters()).device
    ae.eval()
    rng = np.random.default_rng(seed)
    mus = []
    for s in range(0, n, 256):
        v, _ = source.sample(min(256, n - s), rng)
        mus.append(ae.encode(centred(v).to(dev))[0].cpu())
    mu = torch.cat(mus)
    ae.train()
    return mu.mean(0), mu.std(0).clamp_min(1e-3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, out="runs/mesh_ae", iters=20000, batch=48, lr=1e-3, threads=2, warmup=100,
                    ckpt_every=100, eval_every=500)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 32, 64, 64])
    ap.add_argument("--w-joint", type=float, default=0.5)
    ap.add_argument("--w-kl", type=float, default=1e-3)
    ap.add_argument("--n-test", type=int, default=512)
    ft = ap.add_argument_group("decoder fine-tune (smooth surfaces)")
    ft.add_argument("--finetune-decoder", action="store_true",
                    help="start from --init, freeze the encoder and the latent statistics, train the decoder")
    ft.add_argument("--init", default=WEIGHTS_NAME, help="shipped weights to start the fine-tune from")
    ft.add_argument("--latent-noise", type=float, default=0.1,
                    help="extra Gaussian noise on the decoder's latent, in units of the latent std")
    ft.add_argument("--w-lap", type=float, default=1.0, help="Laplacian-difference weight")
    ft.add_argument("--w-edge", type=float, default=0.5, help="edge-length-difference weight")
    ft.add_argument("--w-normal", type=float, default=0.05, help="extra-bending (normal consistency) weight")
    return run_script(ap, argv, _train)


def _train(args: argparse.Namespace, argv: list[str] | None, env: distributed.DistEnv) -> int:
    ckpt_path = args.out / "ckpt.pt"

    sampling = load_sampling()
    if args.finetune_decoder:
        from core.nets.mesh_ae import load_mesh_ae

        if env.world_size > 1:
            raise SystemExit("error: --finetune-decoder runs in a single process")
        model = load_mesh_ae(args.init, sampling=sampling)
        cfg = model.config
        for m in (model.enc, model.enc_fc):
            m.requires_grad_(False)
        surface = _surface_terms(sampling.faces, model.num_vertices)
    else:
        cfg = MeshAEConfig(channels=list(args.channels))
        model = MeshAE(sampling, cfg)
    state, opt_state = checkpoint.resume(ckpt_path, model, env)
    # DDP: rank 0's weights are broadcast; gradients are averaged, so all replicas stay identical.
    ae = model.to(env.device) if args.no_ddp_wrap else distributed.wrap(model, env)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=1e-4)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    env.print_setup(args.batch)
    if env.world_size > 1:
        torch.manual_seed(args.seed + env.rank)   # different KL noise per rank
    rng = np.random.default_rng(distributed.rank_seed([args.seed, state["it"]], env))

    source = MeshSource()
    test = test_split_params(args.n_test)
    test = {k: distributed.shard(v, env) for k, v in test.items()}   # each rank evaluates a slice
    test_v = (source.from_params(test["global_orient"], test["pose"], test["shape"])[0]
              if len(test["pose"]) else torch.zeros(0))

    def save_ckpt():
        checkpoint.save(ckpt_path, env, state, model, opt, args)

    budget = Budget(state, args.iters, args.minutes, env)
    run_loss = None
    while not args.export_only and not budget.done():
        v, _ = source.sample(args.batch, rng)
        x = centred(v).to(env.device)
        if args.finetune_decoder:
            with torch.no_grad():
                model.enc.eval()
                mu, logvar = model.encode(x)
                z = (mu + torch.randn_like(mu) * (0.5 * logvar).exp()
                     + args.latent_noise * model.latent_std * torch.randn_like(mu))
            y = model.decode(z)
            l_kl = torch.zeros(())
        else:
            y, mu, logvar = ae(x)
            l_kl = kl_loss(mu, logvar)
        l_v = (y - x).abs().mean()
        l_j = (model.regress_joints(y) - model.regress_joints(x)).abs().mean()
        loss = l_v + args.w_joint * l_j + args.w_kl * l_kl
        if args.finetune_decoder:
            st = surface(y, x)
            loss = loss + args.w_lap * st["lap"] + args.w_edge * st["edge"] + args.w_normal * st["normal"]
        set_lr(opt, lr_at(state["it"], budget.progress(), args.lr, args.warmup))
        optimiser_step(opt, loss, ae.parameters())
        budget.advance()
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if state["it"] % 50 == 0:
            rl, lv, lkl = env.all_reduce_mean([run_loss, l_v.item(), l_kl.item()])
            extra = (f", lap {st['lap'].item():.4f} edge {st['edge'].item():.4f} normal {st['normal'].item():.4f}"
                     if args.finetune_decoder else "")
            env.print0(f"it {state['it']} loss {rl:.4f} (v {lv * MESH_SCALE * 1000:.2f} mm-ish, "
                       f"kl {lkl:.3f}{extra}) lr {opt.param_groups[0]['lr']:.2e} {state['elapsed'] / 60:.1f} min")
        if state["it"] % args.eval_every == 0:
            m = evaluate(ae, test_v, env=env, faces=sampling.faces)
            state["log"].append({"it": state["it"], **m})
            env.print0(f"  test: {m}")
        if state["it"] % args.ckpt_every == 0:
            save_ckpt()
    if not args.export_only:
        save_ckpt()
    synced = True
    if args.check_sync:
        diff = env.params_max_diff(model)
        synced = diff == 0.0
        env.print0(f"sync check: max |param difference| over {env.world_size} ranks = {diff:.3g} "
                   f"({'in sync' if synced else 'NOT IN SYNC'})")
    m = evaluate(ae, test_v, env=env, faces=sampling.faces)
    env.print0(f"final test ({m['n']} meshes of the held-out split): {m}")
    if (args.export or args.export_only) and env.is_main:
        from core.weights import save_weights

        if not args.finetune_decoder:   # a fine-tuned decoder keeps the encoder's latent statistics
            mean, std = latent_stats(model, source)
            model.latent_mean.copy_(mean)
            model.latent_std.copy_(std)
        cmd = export_command("training.train_mesh_ae", argv, env)
        path = save_weights(WEIGHTS_NAME, model.state_dict(),
                            {"net": cfg.to_dict(), "mesh_scale": MESH_SCALE,
                             "sampling": "resources/mesh/anny_hand_sampling.npz"},
                            cmd, {"test_split_seed2026": m, **run_metrics(state)},
                            **models_dir_kwargs(args))
        print(f"exported {path}", flush=True)
    return 0 if synced else 1


if __name__ == "__main__":
    sys.exit(main())
