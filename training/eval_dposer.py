"""Evaluate the DPoser-hand prior in test-time optimisation (paper 003 Tables 4 and 9; DESIGN §10).

    python -m training.eval_dposer --n-poses 100 [--real-data ../shared/realdata] [--ckpt runs/dposer/last.pt]

Synthetic test split: poses `sample_poses(N, seed=20241121)`, shapes `sample_shapes`, random global
orientations (fixed seeds, disjoint from training). The observation is the 21 joints of that hand;
the fit knows nothing of its orientation, scale or shape (all fitted, `fit_joints`).
- Table 4 layout: sparse (60% of the 21 joints hidden, random per pose) and fingertip (only the five
  fingertips visible); MPJPE visible / hidden / all and MPVPE (mm) for no prior, L2 prior, DPoser;
  mean over the S hypotheses and best of S (by all-joint MPJPE against the ground truth); APD of the
  hidden joints across hypotheses.
- Table 9 layout: truncated vs uniform vs fixed vs random schedules (DPoser, sparse setting).
- Real poses (`--real-data`): the 29 annotated LEFT hands of hgc_realworld (mirrored to right hands,
  millimetres → metres), fingertips hidden; hidden-joint error per prior.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np
import torch

from core.joints import FINGERTIPS, mirror_x
from core.metrics import apd
from core.prior.model import DPoserPrior, build_prior, load_prior
from core.prior.tto import TASK_RANGES, Schedule, TTOConfig, fit_joints

TEST_SEED = 20241121


def load_any_prior(ckpt: str | None) -> DPoserPrior:
    if not ckpt:
        return load_prior()
    c = torch.load(ckpt, map_location="cpu", weights_only=True)
    a = c["args"]
    prior = build_prior({"width": a["width"], "blocks": a["blocks"], "dropout": a["dropout"]})
    prior.load_state_dict(c["ema"])
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior


def synthetic_cases(hand, n: int, seed: int = TEST_SEED):
    from core.pose_sampler import sample_global_orient, sample_poses, sample_shapes

    pose = sample_poses(n, seed)
    shape = sample_shapes(n, seed + 1)
    go = sample_global_orient(n, seed + 2)
    with torch.no_grad():
        out = hand(torch.from_numpy(go), torch.from_numpy(pose), torch.from_numpy(shape))
    return dict(pose=pose, shape=shape, global_orient=go, joints=out.joints.numpy(), vertices=out.vertices.numpy())


def masks(setting: str, n: int, seed: int = TEST_SEED + 3) -> np.ndarray:
    """(n,21) bool, True = hidden."""
    if setting == "fingertip":
        m = np.ones((n, 21), bool)
        m[:, list(FINGERTIPS)] = False
        return m
    if setting == "sparse":
        rng = np.random.default_rng(seed)
        m = np.zeros((n, 21), bool)
        k = int(round(0.6 * 21))
        for i in range(n):
            m[i, rng.choice(21, k, replace=False)] = True
        return m
    if setting == "tips_hidden":
        m = np.zeros((n, 21), bool)
        m[:, list(FINGERTIPS)] = True
        return m
    raise ValueError(setting)


def evaluate(prior, hand, joints_gt, hidden, cfg: TTOConfig, n_hyp: int, verts_gt=None,
             known: dict | None = None, noise_std: float = 0.01) -> dict:
    """Run fit_joints on every case; errors in mm (mean over hypotheses and best of S).

    `known` (paper protocol): per-case arrays `shape`, `global_orient` held fixed, scale 1, wrist at
    the origin — only the articulated pose is optimised. Without it everything is fitted."""
    rows = []
    for i in range(len(joints_gt)):
        c = TTOConfig(**{**cfg.__dict__, "seed": cfg.seed + i, "record": False})
        if known is not None:
            res = fit_joints(prior, hand, joints_gt[i], hidden[i], n=n_hyp, cfg=c, fit_shape=False,
                             fit_scale=False, shape=known["shape"][i], global_orient=known["global_orient"][i],
                             transl=np.zeros(3), noise_std=noise_std)
        else:
            res = fit_joints(prior, hand, joints_gt[i], hidden[i], n=n_hyp, cfg=c, noise_std=noise_std)
        err = np.linalg.norm(res.joints - joints_gt[i][None], axis=-1) * 1000  # (S,21)
        h, v = hidden[i], ~hidden[i]
        row = dict(vis=err[:, v].mean(1), hid=err[:, h].mean(1) if h.any() else np.zeros(n_hyp),
                   all=err.mean(1), apd=apd(res.joints[:, h]) * 1000 if h.sum() else 0.0, sec=res.seconds)
        if verts_gt is not None:
            vv = res.vertices(hand)
            row["mpvpe"] = np.linalg.norm(vv - verts_gt[i][None], axis=-1).mean(1) * 1000
        rows.append(row)
    out = {}
    keys = ["vis", "hid", "all"] + (["mpvpe"] if verts_gt is not None else [])
    for k in keys:
        out[k] = float(np.mean([r[k].mean() for r in rows]))
        best = [r[k][int(np.argmin(r["all"]))] for r in rows]
        out[k + "_best"] = float(np.mean(best))
    out["apd"] = float(np.mean([r["apd"] for r in rows]))
    out["sec"] = float(np.mean([r["sec"] for r in rows]))
    return out


def real_cases(root: pathlib.Path) -> np.ndarray:
    data = json.loads((root / "annotated" / "hgc_realworld" / "annotations.json").read_text())
    out = []
    for s in data["samples"]:
        for h in s["hands"]:
            j = np.asarray(h["xyz_cam_mm"], np.float64) / 1000.0
            if h["side"] == "left":
                j = mirror_x(j)
            out.append((j - j[:1]).astype(np.float32))
    return np.stack(out)


def fmt_row(name, r, with_v=True):
    cells = [f"{r['vis']:.2f}", f"{r['hid']:.2f} ({r['hid_best']:.2f})", f"{r['all']:.2f} ({r['all_best']:.2f})"]
    if with_v and "mpvpe" in r:
        cells.append(f"{r['mpvpe']:.2f} ({r['mpvpe_best']:.2f})")
    cells += [f"{r['apd']:.2f}", f"{r['sec']:.2f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None, help="evaluate a training checkpoint instead of the shipped weights")
    ap.add_argument("--n-poses", type=int, default=100)
    ap.add_argument("-n", "--hypotheses", type=int, default=10)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--real-data", default=None, help="path of ../shared/realdata (optional)")
    ap.add_argument("--parts", default="table4,table9,real", help="comma list of table4,table9,real")
    ap.add_argument("--settings", default="sparse,fingertip")
    ap.add_argument("--w-prior", type=float, default=None)
    ap.add_argument("--w-l2", type=float, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--protocol", default="paper", choices=["paper", "general"],
                    help="paper: known shape and global orientation, pose only (paper supp. G.4); "
                         "general: orientation, translation, scale and shape fitted too")
    ap.add_argument("--noise-std", type=float, default=0.01,
                    help="data-term scale in metres (fit_joints noise_std; default 0.01)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write all numbers to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from core.hand.anny_hand import AnnyHand

    prior = load_any_prior(args.ckpt)
    hand = AnnyHand()
    base = TTOConfig(iters=args.iters)
    for k in ("w_prior", "w_l2", "lr"):
        if getattr(args, k) is not None:
            setattr(base, k, getattr(args, k))
    parts = args.parts.split(",")
    results: dict = {"config": {k: v for k, v in base.__dict__.items() if k != "schedule"}, "n_poses": args.n_poses,
                     "hypotheses": args.hypotheses}
    cases = synthetic_cases(hand, args.n_poses)
    known = cases if args.protocol == "paper" else None
    results["protocol"] = args.protocol
    header = "| prior | MPJPE vis | MPJPE hidden (best) | MPJPE all (best) | MPVPE (best) | APD hidden | s/pose |"
    sep = "|---|---|---|---|---|---|---|"
    if "table4" in parts:
        for setting in args.settings.split(","):
            hid = masks(setting, args.n_poses)
            rng_name = "sparse_ik" if setting in ("sparse", "fingertip") else "ik"
            print(f"\n### Table 4 layout — {setting}, {args.protocol} protocol ({args.n_poses} poses, "
                  f"S={args.hypotheses}, {args.iters} iters)\n")
            print(header + "\n" + sep)
            for pr in ("none", "l2", "dposer"):
                cfg = TTOConfig(**{**base.__dict__, "prior": pr,
                                   "schedule": Schedule("truncated", *TASK_RANGES[rng_name])})
                t0 = time.time()
                r = evaluate(prior, hand, cases["joints"], hid, cfg, args.hypotheses, cases["vertices"], known,
                             args.noise_std)
                results[f"table4/{setting}/{pr}"] = r
                print(fmt_row(pr, r), flush=True)
    if "table9" in parts:
        hid = masks("sparse", args.n_poses)
        print(f"\n### Table 9 layout — schedules, DPoser, sparse, {args.protocol} protocol ({args.n_poses} poses)\n")
        print(header + "\n" + sep)
        for sch in ("truncated", "uniform", "fixed", "random"):
            cfg = TTOConfig(**{**base.__dict__, "prior": "dposer",
                               "schedule": Schedule(sch, *TASK_RANGES["sparse_ik"])})
            r = evaluate(prior, hand, cases["joints"], hid, cfg, args.hypotheses, cases["vertices"], known,
                             args.noise_std)
            results[f"table9/{sch}"] = r
            print(fmt_row(sch, r), flush=True)
    if "real" in parts:
        if not args.real_data or not pathlib.Path(args.real_data).exists():
            print("\nreal data: skipped (give --real-data ../shared/realdata)")
        else:
            real = real_cases(pathlib.Path(args.real_data))
            hid = masks("tips_hidden", len(real))
            print(f"\n### Real poses (hgc_realworld, {len(real)} left hands mirrored), fingertips hidden\n")
            print("| prior | MPJPE vis | MPJPE hidden (best) | MPJPE all (best) | APD hidden | s/pose |\n|---|---|---|---|---|---|")
            for pr in ("none", "l2", "dposer"):
                cfg = TTOConfig(**{**base.__dict__, "prior": pr,
                                   "schedule": Schedule("truncated", *TASK_RANGES["ik"])})
                r = evaluate(prior, hand, real, hid, cfg, args.hypotheses, noise_std=args.noise_std)
                results[f"real/{pr}"] = r
                print(fmt_row(pr, r, with_v=False), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
