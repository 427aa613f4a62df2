"""Benchmark DPoser completion (DESIGN §10): S=10 hypotheses at the default iterations, with the prior
and without it (same loop, same iterations), interleaved so that load drift hits both alike.

    python tests/benchmarks/bench_dposer.py [--reps 7] [--iters 100] [--threads 2] [-n 1 10] [--json FILE]

Prints min / median / max seconds per completion for each task and S, and the prior's overhead: median
with prior / median without − 1, and the median of the per-repeat ratios (`dposer.prior_overhead_paired`,
robust to the machine's speed drifting between repeats). Targets: ≤ 2 s per completion (S = 10), overhead ≤ 10%.
`--json` writes the medians in ms; `dposer.prior_ms` / `dposer.none_ms` are the CLI's path (`joints`)
at S = 10, the rest are named `dposer.<task>.s<S>.<prior>_ms`.
Tasks: `joints` = the CLI's path for a joints file (IK with orientation, scale and shape fitted,
fingertips hidden); `joints-known` = pose-only IK (known shape/orientation, paper protocol, 60% hidden);
`pose` = completion in pose-parameter space (fingertip dims free; no hand model in the loop).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
os.environ.setdefault("ANNY_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[2] / ".cache" / "anny"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--iters", type=int, default=None, help="default: TTOConfig().iters")
    ap.add_argument("-n", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--json", type=pathlib.Path, default=None)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--tasks", default="joints,joints-known,pose")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from core.hand.anny_hand import AnnyHand
    from core.joints import FINGERTIPS
    from core.pose_sampler import sample_global_orient, sample_poses, sample_shapes
    from core.prior import load_prior
    from core.prior.tto import TTOConfig, complete_pose, fit_joints

    prior = load_prior()
    hand = AnnyHand()
    iters = args.iters or TTOConfig().iters
    pose = sample_poses(1, 99)[0]
    shape = sample_shapes(1, 98)[0]
    go = sample_global_orient(1, 97)[0]
    with torch.no_grad():
        joints = hand.joints(torch.from_numpy(go[None]), torch.from_numpy(pose[None]),
                             torch.from_numpy(shape[None]))[0].numpy() + np.array([0.0, 0.0, 0.5], np.float32)
    tips = np.zeros(21, bool)
    tips[list(FINGERTIPS)] = True
    sparse = np.zeros(21, bool)
    sparse[np.random.default_rng(0).choice(21, 13, replace=False)] = True

    def run(task: str, pr: str, n: int) -> float:
        cfg = TTOConfig(prior=pr, iters=iters)
        t0 = time.perf_counter()
        if task == "joints":
            fit_joints(prior, hand, joints, tips, n=n, cfg=cfg)
        elif task == "joints-known":
            fit_joints(prior, hand, joints, sparse, n=n, cfg=cfg, shape=shape, global_orient=go,
                       transl=np.array([0.0, 0.0, 0.5]), fit_shape=False, fit_scale=False)
        else:
            complete_pose(prior, pose, tips, n=n, cfg=cfg, hand=hand)
        return time.perf_counter() - t0

    print(f"DPoser completion benchmark: {iters} iterations, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    out: dict[str, float] = {}
    for task in args.tasks.split(","):
        for n in args.n:
            run(task, "dposer", n), run(task, "none", n)  # warm-up (kernels, caches)
            times = {"dposer": [], "none": []}
            for _ in range(args.reps):
                for pr in ("none", "dposer"):
                    times[pr].append(run(task, pr, n))
            for pr in ("none", "dposer"):
                t = np.array(times[pr])
                print(f"  {task:13s} S={n:2d} prior={pr:7s} min {t.min():.3f} s  median {np.median(t):.3f} s  "
                      f"max {t.max():.3f} s")
                out[f"dposer.{task}.s{n}.{pr}_ms"] = float(np.median(t) * 1000)
            over = np.median(times["dposer"]) / np.median(times["none"]) - 1
            # Each repeat runs the two back to back, so the median of the per-repeat ratios is immune to
            # the box's speed drifting between repeats (the ratio of medians is not).
            paired = float(np.median(np.array(times["dposer"]) / np.array(times["none"])) - 1)
            print(f"  {task:13s} S={n:2d} prior overhead (median) {100 * over:+.1f}%, "
                  f"paired (median of per-repeat ratios) {100 * paired:+.1f}%")
            out[f"dposer.{task}.s{n}.overhead_paired"] = paired
    if "dposer.joints.s10.dposer_ms" in out:
        out["dposer.prior_ms"] = out["dposer.joints.s10.dposer_ms"]
        out["dposer.none_ms"] = out["dposer.joints.s10.none_ms"]
        out["dposer.prior_overhead_paired"] = out["dposer.joints.s10.overhead_paired"]
    if args.json:
        import json

        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
