"""Rendered training shards (`python -m training.data.make_dataset`) as stage-2 crops: what the image
encoder trains on and what the mesh LDM caches its image features from."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

from core.nets.image_encoder import CROP_RES, crop_affine, crop_image


def load_render_shards(folder: pathlib.Path | str, max_n: int | None = None, res: int = CROP_RES
                       ) -> dict[str, np.ndarray]:
    """Read shards → crops (n,res,res,3) uint8 + labels; kp_crop (n,21,2) = true kp2d in crop pixels;
    joints_rr (n,21,3) root-relative camera-frame joints (m); all original label arrays too. Each crop is
    `core.detector.crop_box(kp2d_noisy)`, the box the cascade cuts around detected keypoints."""
    from core.detector import crop_box

    files = sorted(pathlib.Path(folder).glob("shard_*.npz"))
    if not files:
        raise FileNotFoundError(f"no shard_*.npz in {folder} (make them with python -m training.data.make_dataset)")
    out: dict[str, list] = {}
    n = 0
    for f in files:
        try:
            z = np.load(f, allow_pickle=False)
            d = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):   # a shard still being written
            continue
        if "images" not in d:
            raise ValueError(f"{f} has no images (made with --no-render?)")
        m = len(d["K"]) if max_n is None else min(len(d["K"]), max_n - n)
        boxes = crop_box(d["kp2d_noisy"][:m])
        crops = np.stack([crop_image(d["images"][i], boxes[i], res) for i in range(m)])
        kp_crop = np.stack([(np.c_[d["kp2d"][i], np.ones(21)] @ crop_affine(boxes[i], res).T) for i in range(m)])
        for k, v in d.items():
            if k != "images":
                out.setdefault(k, []).append(v[:m])
        out.setdefault("crops", []).append(crops)
        out.setdefault("boxes", []).append(boxes.astype(np.float32))
        out.setdefault("kp_crop", []).append(kp_crop.astype(np.float32))
        n += m
        if max_n is not None and n >= max_n:
            break
    data = {k: np.concatenate(v) for k, v in out.items()}
    data["joints_rr"] = (data["joints_cam"] - data["joints_cam"][:, :1]).astype(np.float32)
    return data


def to_float(crops_u8: np.ndarray) -> torch.Tensor:
    """(n,H,W,3) uint8 crops → (n,3,H,W) float in [0, 1] (the image encoder's input)."""
    return torch.from_numpy(crops_u8).permute(0, 3, 1, 2).float() / 255.0
