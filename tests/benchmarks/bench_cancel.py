"""Cancel latency (issue: reliability): time from setting the cancel flag to the run's thread ending,
for stage-1 DDIM sampling (50 hypotheses, 50 steps, shipped weights), the stage-2 mesh sampling when
its weights are shipped, and a DPoser completion (S = 10). Prints min / median / max in ms;
`--json FILE` writes the medians (cancel.stage1_ms, cancel.stage2_ms, cancel.dposer_ms)."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import threading
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cancel_latency(start_run, repeats: int, delay_s: float = 0.3) -> list[float]:
    """Start `start_run(cancel)` in a thread, cancel after `delay_s`, measure until the thread ends."""
    out = []
    for _ in range(repeats):
        cancel = threading.Event()
        th = threading.Thread(target=lambda: _swallow(start_run, cancel))
        th.start()
        time.sleep(delay_s)
        t0 = time.perf_counter()
        cancel.set()
        th.join()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _swallow(fn, cancel):
    from core.errors import Cancelled

    try:
        fn(cancel)
    except Cancelled:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    torch.set_num_threads(2)
    res = {}

    from core.stage1 import JointLifter

    lifter = JointLifter.from_weights("cpu")
    rays = np.random.default_rng(0).normal(0, 0.05, (21, 2))
    ms = cancel_latency(lambda c: lifter.lift_rays(rays, n=50, steps=50, cancel=c), args.repeats)
    res["cancel.stage1_ms"] = statistics.median(ms)
    print(f"stage 1 (50 hyps, 50 steps)   min {min(ms):7.1f}  median {res['cancel.stage1_ms']:7.1f}  max {max(ms):7.1f} ms")

    try:
        from core.cascade import MeshStage

        mesh = MeshStage.from_weights("cpu")
        crop = torch.rand(1, 3, mesh.encoder.config.res, mesh.encoder.config.res)
        hyps = np.random.default_rng(0).normal(0, 0.03, (50, 21, 3)).astype(np.float32)
        ms = cancel_latency(lambda c: mesh.sample(crop, hyps, steps=50, cancel=c), args.repeats)
        res["cancel.stage2_ms"] = statistics.median(ms)
        print(f"stage 2 (50 meshes, 50 steps) min {min(ms):7.1f}  median {res['cancel.stage2_ms']:7.1f}  max {max(ms):7.1f} ms")
    except Exception as exc:  # noqa: BLE001 - stage-2 weights may not be shipped
        print(f"stage 2 not measured: {exc}")

    from core.hand.anny_hand import AnnyHand
    from core.prior import TTOConfig, complete_pose, load_prior

    hand, prior = AnnyHand(), load_prior()
    hidden = np.zeros(21, bool)
    hidden[[4, 8, 12, 16, 20]] = True
    cfg = TTOConfig(iters=100_000, record=False)
    ms = cancel_latency(lambda c: complete_pose(prior, np.zeros(45, np.float32), hidden, n=10, cfg=cfg, hand=hand,
                                                cancel=c), args.repeats)
    res["cancel.dposer_ms"] = statistics.median(ms)
    print(f"DPoser completion (S = 10)    min {min(ms):7.1f}  median {res['cancel.dposer_ms']:7.1f}  max {max(ms):7.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
