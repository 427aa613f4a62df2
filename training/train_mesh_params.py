"""Train the parameter head (core.mesh.params): mesh-AE latent → Anny global orientation, pose, shape.

    python -m training.train_mesh_params --out runs/mesh_params --minutes 25 --threads 1 --export

Data on the fly, exactly like the mesh AE's (training.train_mesh_ae.MeshSource): sampled poses, shapes
and camera-frame orientations → Anny meshes (wrist at the origin) → the frozen shipped AE encoder's
posterior mean, whitened with its latent statistics, plus Gaussian noise (--latent-noise, in whitened
units) so the head also reads the LDM's samples. Loss: L1 of the head's Anny mesh to the true mesh
(mm) + 0.5 · L1 joints (mm) + --w-rot · squared error of the 16 rotation matrices + --w-shape · L1
shape. Evaluation on the fixed held-out test split (seed 2026, labels only): vertex error of the
parametric mesh to the true mesh and to the AE-decoded mesh (the mesh it has to reproduce), mm.
Warm start (--pre-iters, skipped when resuming): the rotation and shape terms alone, on a pool of
--pool precomputed (latent, parameters) pairs — no Anny forward per step, so thousands of steps a minute.
Checkpoint `--out/ckpt.pt` every --ckpt-every iterations; the same command resumes.
"""
from __future__ import annotations

import argparse
import pathlib
import shlex
import sys
import time

import numpy as np
import torch

from core.geometry import axis_angle_to_matrix
from core.mesh.params import WEIGHTS_NAME, ParamHead, ParamHeadConfig
from training import checkpoint, distributed
from training.loop import Budget, add_common_args, lr_at, models_dir_kwargs, set_lr

TRAIN_COMMAND = "python -m training.train_mesh_params --out runs/mesh_params --minutes 25 --threads 1 --export"


def _targets(source, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray) -> dict[str, torch.Tensor]:
    v, j = source.from_params(orient, pose, shape)
    o = torch.as_tensor(orient, dtype=torch.float32)
    p = torch.as_tensor(pose, dtype=torch.float32).reshape(len(pose), -1, 3)
    return {"verts": v, "joints": j, "shape": torch.as_tensor(shape, dtype=torch.float32),
            "rots": axis_angle_to_matrix(torch.cat([o[:, None], p], 1))}


def _latents(ae, verts: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ae.normalise_latent(ae.encode_metres(verts))


def param_terms(head: ParamHead, zn: torch.Tensor, rots: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    out = head(zn)
    pred = torch.cat([out["orient_rotmat"][:, None], out["pose_rotmat"]], 1)
    return (pred - rots).pow(2).mean(), (out["shape"] - shape).abs().mean()


def make_pool(source, ae, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """n random hands → whitened latents, rotation matrices (n,16,3,3), shapes."""
    from core.pose_sampler import sample_poses, sample_shapes
    from training.data.camera import sample_orientations

    zs, rs, ss = [], [], []
    for s in range(0, n, 256):
        m = min(256, n - s)
        pose, shape, orient = sample_poses(m, rng), sample_shapes(m, rng), sample_orientations(m, rng)
        t = _targets(source, orient, pose, shape)
        zs.append(_latents(ae, t["verts"]))
        rs.append(t["rots"])
        ss.append(t["shape"])
    return {"zn": torch.cat(zs), "rots": torch.cat(rs), "shape": torch.cat(ss)}


def loss_terms(head: ParamHead, hand, zn: torch.Tensor, tgt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = head(zn)
    rots = torch.cat([out["orient_rotmat"][:, None], out["pose_rotmat"]], 1)
    from core.geometry import matrix_to_axis_angle

    b = len(zn)
    aa = matrix_to_axis_angle(rots)
    mesh = hand(aa[:, 0], aa[:, 1:].reshape(b, -1), out["shape"])
    return {"v_mm": (mesh.vertices - tgt["verts"]).abs().mean() * 1000,
            "j_mm": (mesh.joints - tgt["joints"]).abs().mean() * 1000,
            "rot": (rots - tgt["rots"]).pow(2).mean(),
            "shape": (out["shape"] - tgt["shape"]).abs().mean()}


@torch.no_grad()
def evaluate(head: ParamHead, ae, hand, test: dict[str, np.ndarray], batch: int = 128) -> dict[str, float]:
    """Mean per-vertex error (mm) of the parametric mesh to the true mesh and to the decoded mesh
    (both in the root-relative frame), and PA-MPVPE to the decoded mesh."""
    from core.mesh.params import hypothesis_params, parametric_meshes
    from core.metrics import pa_mpjpe
    from training.data.meshes import MeshSource

    head.eval()
    source = MeshSource(hand)
    sums = np.zeros(4)
    n = len(test["pose"])
    for s in range(0, n, batch):
        sl = slice(s, s + batch)
        v_true, _ = source.from_params(test["global_orient"][sl], test["pose"][sl], test["shape"][sl])
        zn = _latents(ae, v_true)
        v_dec, _ = ae.decode_metres(ae.denormalise_latent(zn))
        v_par, _ = parametric_meshes(hand, hypothesis_params(head, zn))
        sums[0] += np.linalg.norm(v_par - v_true.numpy(), axis=-1).mean(1).sum() * 1000
        sums[1] += np.linalg.norm(v_par - v_dec.numpy(), axis=-1).mean(1).sum() * 1000
        sums[2] += pa_mpjpe(v_par, v_dec.numpy()).sum() * 1000
        sums[3] += np.linalg.norm(v_dec.numpy() - v_true.numpy(), axis=-1).mean(1).sum() * 1000
    head.train()
    return {"param_vs_true_mm": float(sums[0] / n), "param_vs_decoded_mm": float(sums[1] / n),
            "param_vs_decoded_pa_mm": float(sums[2] / n), "decoded_vs_true_mm": float(sums[3] / n), "n": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, out="runs/mesh_params", iters=20000, batch=64, lr=1e-3, threads=1, warmup=100,
                    ckpt_every=100, eval_every=1000)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--latent-noise", type=float, default=0.1, help="noise on the whitened latent")
    ap.add_argument("--w-rot", type=float, default=10.0)
    ap.add_argument("--w-shape", type=float, default=1.0)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--pool", type=int, default=16384, help="precomputed pairs for the warm start")
    ap.add_argument("--pre-iters", type=int, default=4000, help="warm-start steps (rotation + shape terms only)")
    ap.add_argument("--pre-batch", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    env = distributed.DistEnv()

    from core.nets.mesh_ae import load_mesh_ae
    from training.data.meshes import MeshSource, test_split_params

    ae = load_mesh_ae(models_dir=args.models_dir)
    for p in ae.parameters():
        p.requires_grad_(False)
    source = MeshSource()
    hand = source.hand
    cfg = ParamHeadConfig(latent_dim=ae.config.latent_dim, hidden=args.hidden, depth=args.depth)
    head = ParamHead(cfg)
    ckpt_path = args.out / "ckpt.pt"
    state, opt_state = checkpoint.resume(ckpt_path, head, env)
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    rng = np.random.default_rng([args.seed, state["it"]])
    test = test_split_params(args.n_test)

    def save_ckpt() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": head.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt_path)

    from core.pose_sampler import sample_poses, sample_shapes
    from training.data.camera import sample_orientations

    run = None
    t0 = time.time()
    if state["it"] == 0 and args.pre_iters > 0 and not args.export_only:
        pool = make_pool(source, ae, args.pool, np.random.default_rng([args.seed, 999]))
        print(f"pool of {args.pool} pairs in {time.time() - t0:.0f} s", flush=True)
        pre = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
        for k in range(args.pre_iters):
            idx = torch.randint(0, args.pool, (args.pre_batch,))
            zn = pool["zn"][idx] + args.latent_noise * torch.randn(args.pre_batch, pool["zn"].shape[1])
            l_rot, l_shape = param_terms(head, zn, pool["rots"][idx], pool["shape"][idx])
            set_lr(pre, lr_at(k, k / args.pre_iters, args.lr, args.warmup))   # its own schedule
            pre.zero_grad(set_to_none=True)
            (args.w_rot * l_rot + args.w_shape * l_shape).backward()
            pre.step()
            if (k + 1) % 500 == 0:
                print(f"pre {k + 1} rot {l_rot.item():.4f} shape {l_shape.item():.3f}", flush=True)
        del pool
        m = evaluate(head, ae, hand, test)
        print(f"  test after the warm start: {m} ({time.time() - t0:.0f} s)", flush=True)
    budget = Budget(state, args.iters, args.minutes, env)   # --minutes counts the main phase only
    while not args.export_only and not budget.done():
        n = args.batch
        pose, shape, orient = sample_poses(n, rng), sample_shapes(n, rng), sample_orientations(n, rng)
        tgt = _targets(source, orient, pose, shape)
        zn = _latents(ae, tgt["verts"])
        zn = zn + args.latent_noise * torch.randn_like(zn)
        t = loss_terms(head, hand, zn, tgt)
        loss = t["v_mm"] + 0.5 * t["j_mm"] + args.w_rot * t["rot"] + args.w_shape * t["shape"]
        set_lr(opt, lr_at(state["it"], budget.progress(), args.lr, args.warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
        opt.step()
        state["it"] += 1
        budget.tick()
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if state["it"] % 50 == 0:
            print(f"it {state['it']} loss {run:.3f} (v {t['v_mm'].item():.2f} mm, j {t['j_mm'].item():.2f} mm, "
                  f"rot {t['rot'].item():.4f}, shape {t['shape'].item():.3f}) lr {opt.param_groups[0]['lr']:.2e} "
                  f"{budget.minutes_spent:.1f} min", flush=True)
        if state["it"] % args.eval_every == 0:
            m = evaluate(head, ae, hand, test)
            state["log"].append({"it": state["it"], **m})
            print(f"  test: {m}", flush=True)
        if state["it"] % args.ckpt_every == 0:
            save_ckpt()
    if not args.export_only:
        save_ckpt()
    m = evaluate(head, ae, hand, test)
    print(f"final test ({m['n']} meshes of the held-out split): {m} ({time.time() - t0:.0f} s)", flush=True)
    if args.export or args.export_only:
        from core.weights import save_weights

        cmd_argv = ["--export" if a == "--export-only" else a for a in (argv if argv is not None else sys.argv[1:])]
        path = save_weights(WEIGHTS_NAME, head.state_dict(), {"net": cfg.to_dict(), "input": "whitened mesh_ae latent"},
                            "python -m training.train_mesh_params " + shlex.join(cmd_argv),
                            {"test_split_seed2026": m, "iterations": state["it"],
                             "minutes": round(budget.minutes_spent, 1)}, half=False, **models_dir_kwargs(args))
        print(f"exported {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
