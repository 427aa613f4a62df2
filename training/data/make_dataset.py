"""Write synthetic hand samples as .npz shards (and a contact sheet) for training and evaluation.

    python -m training.data.make_dataset --split train|val|test --n N --out DIR [--seed S]
        [--shard-size 512] [--no-render] [--sheet-tile 256] [--part I/K]

Each `shard_XXXXX.npz` holds, for n samples: images (n,256,256,3) uint8 (unless --no-render),
K (n,3,3), pose (n,45), shape (n,10), global_orient (n,3) (camera frame, about the wrist), transl (n,3)
(camera-frame wrist position, metres), joints_cam (n,21,3) metres, kp2d (n,21,2) px, kp2d_noisy
(n,21,2) px, kp_conf (n,21). joints_cam = AnnyHand(global_orient, pose, shape).joints + transl.
Shard i is generated from numpy SeedSequence((seed, i)), so shards are reproducible one by one
(`--part I/K` lets K processes write one dataset together), and labels do not depend on --no-render (images draw from their own stream). Default seeds: train 0,
val 1, test 2026 (the fixed held-out split). `meta.json` records the arguments; `contact_sheet.png`
shows the first 16 samples of shard 0 with their projected keypoints.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from core.joints import BONES
from training.data.camera import CROP_SIZE, add_keypoint_noise, place_in_camera, sample_intrinsics, sample_orientations

DEFAULT_SEEDS = {"train": 0, "val": 1, "test": 2026}
_BATCH = 64


class SampleGenerator:
    """Builds the hand model (and renderer) once; `shard(seed, index, n)` returns one shard's arrays."""

    def __init__(self, render: bool = True, size: int = CROP_SIZE) -> None:
        import torch

        from core.hand.anny_hand import AnnyHand

        torch.set_num_threads(1)
        self.hand = AnnyHand()
        self.size = size
        self.renderer = None
        if render:
            from training.data.render import HandRenderer, palm_weights

            with torch.no_grad():
                rest = self.hand(torch.zeros(1, 3), torch.zeros(1, 45), self.hand.neutral_shape(1)).vertices[0]
            self.renderer = HandRenderer(self.hand.faces, size, palm_weights(rest.numpy(), self.hand.faces))

    def _hands(self, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray):
        import torch

        with torch.no_grad():
            out = self.hand(torch.from_numpy(orient), torch.from_numpy(pose), torch.from_numpy(shape))
        return out.joints.numpy().astype(np.float64), out.vertices.numpy().astype(np.float64)

    def shard(self, seed: int, index: int, n: int) -> dict[str, np.ndarray]:
        """Samples of shard `index` of the dataset with seed `seed` (deterministic)."""
        from core.geometry import project
        from core.pose_sampler import sample_poses, sample_shapes

        label_ss, image_ss = np.random.SeedSequence((seed, index)).spawn(2)
        rng, img_rng = np.random.default_rng(label_ss), np.random.default_rng(image_ss)
        pose, shape = sample_poses(n, rng), sample_shapes(n, rng)
        orient = sample_orientations(n, rng)
        K = np.empty((n, 3, 3))
        transl = np.empty((n, 3))
        joints_cam = np.empty((n, 21, 3))
        images = np.empty((n, self.size, self.size, 3), np.uint8) if self.renderer else None
        for b0 in range(0, n, _BATCH):
            sl = slice(b0, min(n, b0 + _BATCH))
            joints, verts = self._hands(orient[sl], pose[sl], shape[sl])
            for k, i in enumerate(range(sl.start, sl.stop)):
                K[i] = sample_intrinsics(rng, self.size)
                transl[i], _ = place_in_camera(joints[k], verts[k], K[i], rng, self.size)
                joints_cam[i] = joints[k] + transl[i]
                if images is not None:
                    images[i] = self.renderer.render(verts[k] + transl[i], K[i], img_rng)
        kp2d = np.stack([project(joints_cam[i], K[i]) for i in range(n)])
        kp_noisy, conf = add_keypoint_noise(kp2d, rng)
        out = dict(K=K.astype(np.float32), pose=pose, shape=shape, global_orient=orient.astype(np.float32),
                   transl=transl.astype(np.float32), joints_cam=joints_cam.astype(np.float32),
                   kp2d=kp2d.astype(np.float32), kp2d_noisy=kp_noisy, kp_conf=conf)
        if images is not None:
            out["images"] = images
        return out


def draw_keypoints(image: np.ndarray, kp: np.ndarray, color=(0, 255, 0)) -> np.ndarray:
    """RGB image with the 21-keypoint skeleton drawn (returns a copy)."""
    import cv2

    img = np.ascontiguousarray(image.copy())
    pts = [tuple(int(round(c)) for c in p) for p in kp]
    for a, b in BONES:
        cv2.line(img, pts[a], pts[b], color, 1, cv2.LINE_AA)
    for p in pts:
        cv2.circle(img, p, 2, (255, 0, 0), -1, cv2.LINE_AA)
    return img


def contact_sheet(data: dict[str, np.ndarray], n: int = 16, cols: int = 4, keypoints: bool = True) -> np.ndarray:
    """Grid (RGB uint8) of the first `n` images, with projected 2D keypoints drawn when `keypoints`."""
    tiles = []
    for i in range(min(n, len(data["images"]))):
        tiles.append(draw_keypoints(data["images"][i], data["kp2d"][i]) if keypoints else data["images"][i])
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], 1) for r in range(0, len(tiles), cols)]
    return np.concatenate(rows, 0)


def save_contact_sheet(data: dict[str, np.ndarray], path: pathlib.Path, tile: int = 256) -> None:
    """Write `contact_sheet` as PNG; with `tile` < 256 the tiles are shrunk and the PNG palette-coded
    (small enough for docs/)."""
    import cv2
    from PIL import Image

    sheet = contact_sheet(data)
    if tile == CROP_SIZE:
        cv2.imwrite(str(path), sheet[..., ::-1])
        return
    scale = tile / CROP_SIZE
    sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=sorted(DEFAULT_SEEDS), required=True)
    ap.add_argument("--n", type=int, required=True, help="number of samples")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=None, help="default: train 0, val 1, test 2026")
    ap.add_argument("--shard-size", type=int, default=512)
    ap.add_argument("--no-render", action="store_true", help="labels only (no images)")
    ap.add_argument("--sheet-tile", type=int, default=CROP_SIZE, help="tile size of contact_sheet.png")
    ap.add_argument("--part", default="0/1", help="I/K: write only shards s with s %% K == I (parallel runs)")
    args = ap.parse_args(argv)
    seed = DEFAULT_SEEDS[args.split] if args.seed is None else args.seed
    args.out.mkdir(parents=True, exist_ok=True)
    gen = SampleGenerator(render=not args.no_render)
    t0 = time.time()
    n_shards = (args.n + args.shard_size - 1) // args.shard_size
    part, parts = (int(x) for x in args.part.split("/"))
    for s in range(part, n_shards, parts):
        n = min(args.shard_size, args.n - s * args.shard_size)
        data = gen.shard(seed, s, n)
        np.savez(args.out / f"shard_{s:05d}.npz", **data)
        if s == 0 and "images" in data:
            save_contact_sheet(data, args.out / "contact_sheet.png", args.sheet_tile)
        print(f"shard {s + 1}/{n_shards}: {n} samples, {time.time() - t0:.1f} s", flush=True)
    meta = dict(split=args.split, seed=seed, n=args.n, shard_size=args.shard_size, rendered=not args.no_render,
                image_size=CROP_SIZE, shards=n_shards, generator="training.data.make_dataset")
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
