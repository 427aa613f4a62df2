"""Image loading: any common format → RGB uint8 (H,W,3), EXIF orientation applied, size limits enforced."""
from __future__ import annotations

import os
import pathlib

import numpy as np

from core.errors import InputError

MAX_FILE_BYTES = 200 * 1024 * 1024          # refuse files larger than this
MAX_PIXELS = 100_000_000                     # refuse images with more pixels than this (header check)
WORK_MAX_SIDE = 4096                         # downscale larger images to this longest side
SUPPORTED = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _header_size(path: pathlib.Path) -> tuple[int, int] | None:
    """Image size from the header without decoding pixels (PIL is lazy), or None when unknown."""
    try:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha, BGR(A) as decoded by OpenCV, 16-bit or float → RGB uint8 (alpha over white)."""
    import cv2

    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img.astype(np.float64)) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3:
        raise InputError(f"unsupported image layout {img.shape}")
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:
        grey, alpha = img[..., 0].astype(np.float32), img[..., 1:2].astype(np.float32) / 255.0
        grey = (grey[..., None] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)[..., 0]
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if channels == 4:
        bgr, alpha = img[..., :3].astype(np.float32), img[..., 3:4].astype(np.float32) / 255.0
        img = (bgr * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    elif channels != 3:
        raise InputError(f"unsupported number of channels ({channels})")
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_BGR2RGB)


def load_image(path: str | os.PathLike, max_side: int = WORK_MAX_SIDE) -> np.ndarray:
    """Read an image file as RGB uint8 (H,W,3); EXIF rotation applied; large images downscaled.

    Raises InputError with a readable reason for missing, empty, corrupt, unsupported or absurdly
    large files (the pixel count is checked from the header before decoding).
    """
    import cv2

    from core.io import check_input_file

    p = check_input_file(path, "an image", MAX_FILE_BYTES)
    wh = _header_size(p)
    if wh is not None and wh[0] * wh[1] > MAX_PIXELS:
        raise InputError(f"image too large ({wh[0]}×{wh[1]} pixels; limit {MAX_PIXELS / 1e6:.0f} megapixels)")
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img is None or img.size == 0:
        raise InputError("not a readable image (corrupt or unsupported format)")
    # imdecode with IMREAD_UNCHANGED ignores EXIF: apply the orientation ourselves.
    img = _apply_exif_orientation(p, img)
    rgb = to_rgb_uint8(img)
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        raise InputError(f"image too small ({w}×{h} pixels)")
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _apply_exif_orientation(path: pathlib.Path, img: np.ndarray) -> np.ndarray:
    try:
        from PIL import Image

        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
    except Exception:
        return img
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(img)) if op else img
