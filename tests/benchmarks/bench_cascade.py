"""Benchmark the full cascade: image → 50 joint hypotheses → 50 mesh hypotheses (+ paper aggregate).

    python tests/benchmarks/bench_cascade.py [--image resources/samples/anny_right_256.jpg] [--n 50] [--steps 10]
        [--repeats 5] [--threads 2] [--random] [--paper-samples N]

Prints median wall times of: detection, stage 1 (lift), stage 2 (features + K/V, LDM, decoding),
total, for 10 steps and for the 1-step mode. DESIGN §10 targets: ≤ 1 s (10 steps, 50 hypotheses)
and ≤ 0.2 s (1 step) on the 2-core CPU. `--random` uses randomly initialised networks of the
default sizes (cost only) when weights are not shipped. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def build(random: bool, device: str, stage1_ckpt=None):
    import torch

    from core.cascade import CascadeEstimator, MeshStage
    from core.stage1 import JointLifter, Stage1Estimator

    if not random:
        if stage1_ckpt:
            from training.train_mesh_ldm import load_stage1

            return CascadeEstimator(stage1=Stage1Estimator(device=device, lifter=load_stage1(pathlib.Path(stage1_ckpt))),
                                    mesh_stage=MeshStage.from_weights(device))
        return CascadeEstimator(device=device)
    from core.diffusion import GaussianDiffusion, make_schedule
    from core.mesh.sampling import load_sampling
    from core.nets.image_encoder import ImageEncoder
    from core.nets.joint_diffusion import JointDiffusionNet
    from core.nets.mesh_ae import MeshAE
    from core.nets.mesh_ldm import MeshLDM

    torch.manual_seed(0)
    lifter = JointLifter(JointDiffusionNet(), GaussianDiffusion(make_schedule("linear")), device)
    enc = ImageEncoder()
    ms = MeshStage(enc, MeshLDM(), MeshAE(load_sampling()), device=device)
    return CascadeEstimator(stage1=Stage1Estimator(device=device, lifter=lifter), mesh_stage=ms)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "anny_right_256.jpg"))
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random", action="store_true")
    ap.add_argument("--paper-samples", type=int, default=None)
    ap.add_argument("--stage1-ckpt", default=None, help="stage 1 from a training checkpoint (weights not shipped)")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from core.io.images import load_image

    torch.set_num_threads(args.threads)
    image = load_image(args.image)
    est = build(args.random, args.device, args.stage1_ckpt)
    dets = est.stage1.detector.detect(image)
    print(f"image {args.image}: {image.shape[1]}x{image.shape[0]}, {len(dets)} hand(s); threads {args.threads}; "
          f"{'random' if args.random else 'shipped'} weights")
    from core.stage1 import Stage1Estimator  # noqa: F401

    for steps in (args.steps, 1):
        rows = {"detect": [], "stage1": [], "features": [], "ldm": [], "decode": [], "stage2": [], "total": []}
        for r in range(args.repeats + 1):
            t0 = time.perf_counter()
            (res,) = est.run(image, n=args.n, steps=steps, seed=r, paper_samples=args.paper_samples)
            total = time.perf_counter() - t0
            if r == 0:
                continue   # warm-up (kernel compilation, allocator)
            t = res.timings
            rows["detect"].append(t.get("stage1_detect_s", 0.0))
            rows["stage1"].append(t.get("stage1_lift_s", 0.0))
            rows["features"].append(t["features_s"])
            rows["ldm"].append(t["ldm_s"])
            rows["decode"].append(t["decode_s"])
            rows["stage2"].append(t["stage2_s"])
            rows["total"].append(total)
        med = {k: statistics.median(v) * 1000 for k, v in rows.items()}
        print(f"{args.n} hypotheses x {steps} step(s) per stage: " +
              ", ".join(f"{k} {v:.0f} ms" for k, v in med.items()) +
              f"  (target {'1000' if steps > 1 else '200'} ms)")
        if steps == args.steps:
            print(f"  mesh hypotheses {res.vertex_hypotheses.shape}, aggregate {res.vertices.shape}, "
                  f"spread {np.linalg.norm(res.vertex_hypotheses - res.vertices, axis=-1).mean() * 1000:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
