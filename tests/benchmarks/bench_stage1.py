"""Benchmark: stage 1 (joint diffusion) time per image on this machine — printed, never asserted.

    python tests/benchmarks/bench_stage1.py [--threads 2] [--repeats 10] [--image IMG]

Reports: lifting only (50 hypotheses × 10 DDIM steps; target ≤ 0.3 s on the 2-core CPU, DESIGN §10),
the 1-step mode, MediaPipe detection, and the whole image → 50 hypotheses path, with the model's FLOPs.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def timeit(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "anny_right_256.jpg"))
    args = ap.parse_args()
    import numpy as np
    import torch

    from core.detector import HandDetector
    from core.io.images import load_image
    from core.stage1 import JointLifter, Stage1Estimator

    if args.threads:
        torch.set_num_threads(args.threads)
    lifter = JointLifter.from_weights(args.device)
    det = HandDetector()
    est = Stage1Estimator(lifter=lifter, detector=det)
    img = load_image(args.image)
    d = det.detect(img)[0]
    K = np.array([[256.0, 0, 128], [0, 256, 128], [0, 0, 1]])
    gflop = lifter.net.flops_per_sample() * 50 * 10 / 1e9
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, model "
          f"{sum(p.numel() for p in lifter.net.parameters()) / 1e6:.2f} M params, {gflop:.1f} GFLOP per image "
          f"(50 hyps × 10 steps)")
    rows = [
        ("lift 50 hyps × 10 steps (target ≤ 0.3 s)", lambda: lifter.lift(d.keypoints2d, K, n=50, steps=10)),
        ("lift 50 hyps × 10 steps, no trajectory", lambda: lifter.lift(d.keypoints2d, K, n=50, steps=10, record=False)),
        ("lift 50 hyps × 1 step", lambda: lifter.lift(d.keypoints2d, K, n=50, steps=1)),
        ("MediaPipe detection (256² image)", lambda: det.detect(img)),
        ("image → 50 hyps × 10 steps (detect + lift + cam_t)", lambda: est.run(img, n=50, steps=10)),
    ]
    for name, fn in rows:
        med, best = timeit(fn, args.repeats)
        print(f"{name:55s} median {1000 * med:7.1f} ms   min {1000 * best:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
