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
"""
from __future__ import annotations

import argparse
import math
import pathlib
import shlex
import sys
import time

import numpy as np
import torch

from core.mesh.sampling import load_sampling
from core.nets.mesh_ae import MESH_SCALE, MeshAE, MeshAEConfig, kl_loss

WEIGHTS_NAME = "mesh_ae"
TRAIN_COMMAND = "python -m training.train_mesh_ae --out runs/mesh_ae --minutes 30 --export"
TEST_SEED = 2026   # = make_dataset's test split seed


class MeshSource:
    """Random posed hands (vertices + model joints, camera-frame orientation, wrist at the origin)."""

    def __init__(self, hand=None) -> None:
        from core.hand.anny_hand import AnnyHand

        self.hand = hand or AnnyHand()

    @torch.no_grad()
    def from_params(self, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray, batch: int = 128):
        vs, js = [], []
        for s in range(0, len(pose), batch):
            out = self.hand(torch.as_tensor(orient[s:s + batch], dtype=torch.float32),
                            torch.as_tensor(pose[s:s + batch], dtype=torch.float32),
                            torch.as_tensor(shape[s:s + batch], dtype=torch.float32))
            vs.append(out.vertices.float())
            js.append(out.joints.float())
        return torch.cat(vs), torch.cat(js)

    def sample(self, n: int, rng: np.random.Generator):
        from core.pose_sampler import sample_poses, sample_shapes
        from training.data.camera import sample_orientations

        pose, shape = sample_poses(n, rng), sample_shapes(n, rng)
        orient = sample_orientations(n, rng)
        return self.from_params(orient, pose, shape)


def test_split_params(n: int = 512) -> dict[str, np.ndarray]:
    """Labels (pose, shape, global_orient, K, transl, kp2d, …) of the first `n` samples of the fixed
    test split, exactly as `make_dataset --split test` draws them (no rendering)."""
    from training.data.make_dataset import SampleGenerator

    threads = torch.get_num_threads()
    gen = SampleGenerator(render=False)
    torch.set_num_threads(threads)
    out: dict[str, list] = {}
    shard_size = 512
    for s in range(math.ceil(n / shard_size)):
        d = gen.shard(TEST_SEED, s, min(shard_size, n - s * shard_size))
        for k, v in d.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def centred(v: torch.Tensor) -> torch.Tensor:
    return (v - v.mean(1, keepdim=True)) / MESH_SCALE


@torch.no_grad()
def evaluate(ae: MeshAE, verts: torch.Tensor, batch: int = 128) -> dict[str, float]:
    """Reconstruction error (mm) of mean-centred meshes through μ (no sampling)."""
    from core.metrics import pa_mpjpe

    ae.eval()
    errs, pa, jerr = [], [], []
    for s in range(0, len(verts), batch):
        x = centred(verts[s:s + batch])
        y = ae(x, sample=False)[0]
        errs.append(((y - x).norm(dim=-1).mean(1) * MESH_SCALE * 1000))
        jx, jy = ae.regress_joints(x), ae.regress_joints(y)
        jerr.append(((jy - jx).norm(dim=-1).mean(1) * MESH_SCALE * 1000))
        pa.append(torch.as_tensor(pa_mpjpe(y.numpy(), x.numpy())) * MESH_SCALE * 1000)
    ae.train()
    return {"mpvpe_mm": float(torch.cat(errs).mean()), "pa_mpvpe_mm": float(torch.cat(pa).mean()),
            "mesh_joint_err_mm": float(torch.cat(jerr).mean()), "n": int(len(verts))}


@torch.no_grad()
def latent_stats(ae: MeshAE, source: MeshSource, n: int = 4096, seed: int = 77) -> tuple[torch.Tensor, torch.Tensor]:
    ae.eval()
    rng = np.random.default_rng(seed)
    mus = []
    for s in range(0, n, 256):
        v, _ = source.sample(min(256, n - s), rng)
        mus.append(ae.encode(centred(v))[0])
    mu = torch.cat(mus)
    ae.train()
    return mu.mean(0), mu.std(0).clamp_min(1e-3)


def lr_at(it: int, progress: float, base: float, warmup: int) -> float:
    if it < warmup:
        return base * (it + 1) / warmup
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/mesh_ae"))
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=0, help="wall-clock budget (0: none); resumes count")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 32, 64, 64])
    ap.add_argument("--w-joint", type=float, default=0.5)
    ap.add_argument("--w-kl", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=512)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--models-dir", type=pathlib.Path, default=None, help="export here instead of resources/models")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "ckpt.pt"

    sampling = load_sampling()
    cfg = MeshAEConfig(channels=list(args.channels))
    ae = MeshAE(sampling, cfg)
    opt = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=1e-4)
    state = {"it": 0, "elapsed": 0.0, "log": []}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        ae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"resumed from {ckpt_path} at iteration {state['it']}", flush=True)
    rng = np.random.default_rng([args.seed, state["it"]])

    source = MeshSource()
    test = test_split_params(args.n_test)
    test_v, _ = source.from_params(test["global_orient"], test["pose"], test["shape"])

    def save_ckpt():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": ae.state_dict(), "opt": opt.state_dict(), "state": state,
                    "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}}, tmp)
        tmp.replace(ckpt_path)

    def progress() -> float:
        p = state["it"] / args.iters
        if args.minutes > 0:
            p = max(p, state["elapsed"] / (60 * args.minutes))
        return p

    t_last = time.time()
    run_loss = None
    while not args.export_only and progress() < 1.0:
        v, _ = source.sample(args.batch, rng)
        x = centred(v)
        y, mu, logvar = ae(x)
        l_v = (y - x).abs().mean()
        l_j = (ae.regress_joints(y) - ae.regress_joints(x)).abs().mean()
        l_kl = kl_loss(mu, logvar)
        loss = l_v + args.w_joint * l_j + args.w_kl * l_kl
        for g in opt.param_groups:
            g["lr"] = lr_at(state["it"], progress(), args.lr, args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        state["it"] += 1
        now = time.time()
        state["elapsed"] += now - t_last
        t_last = now
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if state["it"] % 50 == 0:
            print(f"it {state['it']} loss {run_loss:.4f} (v {l_v.item() * MESH_SCALE * 1000:.2f} mm-ish, "
                  f"kl {l_kl.item():.3f}) lr {opt.param_groups[0]['lr']:.2e} {state['elapsed'] / 60:.1f} min",
                  flush=True)
        if state["it"] % args.eval_every == 0:
            m = evaluate(ae, test_v)
            state["log"].append({"it": state["it"], **m})
            print(f"  test: {m}", flush=True)
        if state["it"] % args.ckpt_every == 0:
            save_ckpt()
    if not args.export_only:
        save_ckpt()
    m = evaluate(ae, test_v)
    print(f"final test ({m['n']} meshes of the held-out split): {m}", flush=True)
    if args.export or args.export_only:
        from core.weights import save_weights

        mean, std = latent_stats(ae, source)
        ae.latent_mean.copy_(mean)
        ae.latent_std.copy_(std)
        cmd = "python -m training.train_mesh_ae " + shlex.join(argv if argv is not None else sys.argv[1:])
        path = save_weights(WEIGHTS_NAME, ae.state_dict(),
                            {"net": cfg.to_dict(), "mesh_scale": MESH_SCALE,
                             "sampling": "resources/mesh/anny_hand_sampling.npz"},
                            cmd, {"test_split_seed2026": m, "iterations": state["it"],
                                  "minutes": round(state["elapsed"] / 60, 1)},
                            **({} if args.models_dir is None else {"models_dir": args.models_dir}))
        print(f"exported {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
