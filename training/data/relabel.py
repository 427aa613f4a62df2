"""Recompute the joint labels of existing shards after a keypoint-definition change in `core/hand`.

    python -m training.data.relabel DIR [DIR ...]

Rendering is the slow part of `make_dataset`; the images do not change when only keypoints are
redefined, so this rewrites joints_cam, kp2d, kp2d_noisy (same noise draw) and transl from the stored
pose/shape/orientation. The mesh is tied to the images through the fingertip vertices, which are the
same skin points before and after: the new camera translation puts them back where they were.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from core.joints import FINGERTIPS


def relabel_shard(hand, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """New label arrays for one shard (images and parameters untouched)."""
    import torch

    from core.geometry import project

    with torch.no_grad():
        joints = hand.joints(torch.from_numpy(data["global_orient"]).float(), torch.from_numpy(data["pose"]).float(),
                             torch.from_numpy(data["shape"]).float()).numpy().astype(np.float64)
    tips = list(FINGERTIPS)
    transl = (data["joints_cam"][:, tips] - joints[:, tips]).mean(1)
    joints_cam = joints + transl[:, None]
    kp2d = np.stack([project(j, k) for j, k in zip(joints_cam, data["K"].astype(np.float64))])
    noisy = kp2d + (data["kp2d_noisy"] - data["kp2d"])
    return dict(transl=transl.astype(np.float32), joints_cam=joints_cam.astype(np.float32),
                kp2d=kp2d.astype(np.float32), kp2d_noisy=noisy.astype(np.float32))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=pathlib.Path)
    args = ap.parse_args(argv)
    import torch

    from core.hand.anny_hand import AnnyHand

    torch.set_num_threads(1)
    hand = AnnyHand()
    for d in args.dirs:
        for path in sorted(d.glob("shard_*.npz")):
            with np.load(path) as f:
                data = {k: f[k] for k in f.files}
            old = data["joints_cam"].copy()
            data.update(relabel_shard(hand, data))
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **data)
            tmp.replace(path)
            moved = np.linalg.norm(data["joints_cam"] - old, axis=-1).mean(0) * 1000
            print(f"{path}: mean label change per joint (mm) {np.round(moved, 1).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
