"""Image encoder for the mesh LDM (paper 000 supp. A.3: four feature levels of a ResNet-style CNN).

Input: the square hand crop defined by `core.detector.crop_box` (the same box at training and at
inference), resized to CROP_RES × CROP_RES RGB, a right hand (left hands are mirrored before).
Backbone: stem conv (stride 2) then four stages of basic residual blocks, each stage halving the
resolution: 32², 16², 8², 4² for a 128 crop. Nothing pretrained can be downloaded, so it is trained
on synthetic renders with pretext heads (training/train_image_encoder.py):
  - 21 keypoint heatmaps at 32² from the levels fused top-down (2D evidence),
  - root-relative 3D joints from the pooled last level (global shape/pose evidence).
`features()` returns the four levels as token sets for cross-attention: level 1 is average-pooled
to 16² so the LDM attends to 256 + 256 + 64 + 16 tokens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CROP_RES = 128
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.25, 0.25, 0.25)


@dataclass
class ImageEncoderConfig:
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 192])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    stem: int = 24
    res: int = CROP_RES

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(c: int) -> nn.Module:
    return nn.GroupNorm(8 if c % 8 == 0 else 1, c)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = _norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = _norm(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.n1(self.c1(x)))
        h = self.n2(self.c2(h))
        return F.relu(h + (x if self.skip is None else self.skip(x)))


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or ImageEncoderConfig()
        self.config = cfg
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _norm(cfg.stem), nn.ReLU())
        stages = []
        cin = cfg.stem
        for w, nb in zip(cfg.widths, cfg.blocks):
            blocks = [BasicBlock(cin, w, 2)] + [BasicBlock(w, w, 1) for _ in range(nb - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)
        # Pretext heads (training only; shipped so the encoder can be fine-tuned / checked).
        fuse = cfg.widths[0]
        self.lateral = nn.ModuleList(nn.Conv2d(w, fuse, 1) for w in cfg.widths)
        self.heatmap = nn.Sequential(nn.Conv2d(fuse, fuse, 3, 1, 1), nn.ReLU(), nn.Conv2d(fuse, 21, 1))
        self.joints3d = nn.Sequential(nn.Linear(cfg.widths[-1], 256), nn.ReLU(), nn.Linear(256, 63))
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).reshape(1, 3, 1, 1), persistent=False)

    @property
    def level_dims(self) -> list[int]:
        return list(self.config.widths)

    def backbone(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B,3,H,W) float in [0,1] → four maps (B,C_l,H/4/2^l,W/4/2^l)."""
        x = self.stem((images - self.mean) / self.std)
        out = []
        for st in self.stages:
            x = st(x)
            out.append(x)
        return out

    def pretext(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(heatmaps (B,21,H1,W1) logits, joints (B,21,3) root-relative / 0.1 m)."""
        top = self.lateral[-1](maps[-1])
        for lat, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            top = F.interpolate(top, size=m.shape[-2:], mode="nearest") + lat(m)
        hm = self.heatmap(top)
        j = self.joints3d(maps[-1].mean((2, 3))).reshape(-1, 21, 3)
        return hm, j

    @staticmethod
    def tokens(maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Feature maps → token sets (B, N_l, C_l); level 1 average-pooled ×2 (32² → 16² for a 128 crop)."""
        out = []
        for i, m in enumerate(maps):
            if i == 0:
                m = F.avg_pool2d(m, 2)
            out.append(m.flatten(2).transpose(1, 2))
        return out

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.tokens(self.backbone(images))

    def forward(self, images: torch.Tensor):
        maps = self.backbone(images)
        return self.tokens(maps), *self.pretext(maps)


# --- crops (shared by training and inference) ------------------------------------------------------

def crop_affine(box: np.ndarray, res: int = CROP_RES) -> np.ndarray:
    """2×3 affine mapping image pixels into the res×res crop of the square box (x0,y0,x1,y1)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    s = res / max(x1 - x0, 1e-6)
    return np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float64)


def crop_image(image: np.ndarray, box: np.ndarray, res: int = CROP_RES, mirror: bool = False) -> np.ndarray:
    """RGB uint8 image → res×res uint8 crop of `box` (pixels outside the image are black); `mirror`
    flips the crop horizontally (left hand → right hand; `box` is in the original image)."""
    import cv2

    m = crop_affine(box, res)
    crop = cv2.warpAffine(np.ascontiguousarray(image), m, (res, res), flags=cv2.INTER_AREA if
                          (box[2] - box[0]) > 2 * res else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if mirror:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) or (H,W,3) uint8 → (B,3,H,W) float in [0,1]."""
    t = torch.from_numpy(np.asarray(crops))
    if t.ndim == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float() / 255.0


def load_image_encoder(name: str = "image_encoder", models_dir=None) -> ImageEncoder:
    from core.weights import load_network

    return load_network(name, lambda cfg: ImageEncoder(ImageEncoderConfig(**cfg["net"])), models_dir)[0]
