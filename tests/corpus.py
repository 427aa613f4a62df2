"""The bad-input corpus, generated on demand (no large binaries in git): images and pose files that
users might hand in, each with whether it must fail (`True`), must succeed (`False`) or may do either
as long as it fails cleanly (`None`)."""
from __future__ import annotations

import pathlib
import pickle
import struct
import zlib

import cv2
import numpy as np
from core.paths import SAMPLE_IMAGE

DATA = pathlib.Path(__file__).parent / "data"
HAND_IMAGE = SAMPLE_IMAGE


def _png_header_only(path: pathlib.Path, w: int, h: int) -> None:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


class _Payload:
    """Unpickling this would create a marker file: proof that a loader executed a pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def image_corpus(folder: pathlib.Path) -> dict[str, tuple[pathlib.Path, bool | None]]:
    """name → (path, must_fail)."""
    folder.mkdir(parents=True, exist_ok=True)
    hand = cv2.imread(str(HAND_IMAGE), cv2.IMREAD_COLOR)
    jpeg = HAND_IMAGE.read_bytes()
    out: dict[str, tuple[pathlib.Path, bool | None]] = {}

    def add(name, must_fail, write):
        p = folder / name
        write(p)
        out[name] = (p, must_fail)

    add("empty.jpg", True, lambda p: p.write_bytes(b""))
    add("text.jpg", True, lambda p: p.write_text("this is not an image\n" * 20))
    add("corrupt.png", True, lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4))
    add("truncated.jpg", None, lambda p: p.write_bytes(jpeg[: len(jpeg) // 3]))
    add("one_pixel.png", True, lambda p: cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8)))
    add("huge_header.png", True, lambda p: _png_header_only(p, 20000, 20000))
    add("no_hand.png", True, lambda p: cv2.imwrite(str(p), np.full((300, 400, 3), 180, np.uint8)))
    add("hand_rgba.png", False, lambda p: cv2.imwrite(str(p), np.dstack([hand, np.full(hand.shape[:2], 255, np.uint8)])))
    add("hand_16bit.png", None, lambda p: cv2.imwrite(str(p), hand.astype(np.uint16) * 257))
    add("hand_grey.png", None, lambda p: cv2.imwrite(str(p), cv2.cvtColor(hand, cv2.COLOR_BGR2GRAY)))

    def five(p):
        canvas = np.full((512, 1280, 3), 90, np.uint8)
        for k in range(5):
            canvas[128:384, 256 * k:256 * (k + 1)] = hand
        cv2.imwrite(str(p), canvas)

    add("five_hands.jpg", None, five)
    return out


def pose_corpus(folder: pathlib.Path, marker: pathlib.Path) -> dict[str, tuple[pathlib.Path, bool]]:
    """name → (path, must_fail) for pose files; `marker` is created if a pickle is ever executed."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[pathlib.Path, bool]] = {}

    def npz(name, **arrays):
        p = folder / name
        np.savez(p, **arrays)
        out[name] = (p, True)

    npz("nan.npz", global_orient=np.zeros(3), pose=np.full(45, np.nan))
    npz("inf.npz", global_orient=np.zeros(3), pose=np.full(45, np.inf))
    npz("wrong_shape.npz", global_orient=np.zeros(3), pose=np.zeros((2, 20)))
    npz("wrong_keys.npz", hello=np.zeros(3))
    npz("wrong_dtype.npz", pose=np.array(["x"] * 45))
    npz("joints_mm.npz", joints=np.random.default_rng(0).normal(0, 40, (21, 3)))
    (folder / "pickle.npz").write_bytes(pickle.dumps({"pose": _Payload(str(marker))}))
    out["pickle.npz"] = (folder / "pickle.npz", True)
    (folder / "huge.npz").write_bytes(b"PK" + b"\x00" * (25 * 1024 * 1024))
    out["huge.npz"] = (folder / "huge.npz", True)
    (folder / "bad.json").write_text('{"joints": [[0, 0, "x"]]}')
    out["bad.json"] = (folder / "bad.json", True)
    (folder / "nan.json").write_text('{"joints": ' + str([[float("nan")] * 3] * 21).replace("nan", "NaN") + "}")
    out["nan.json"] = (folder / "nan.json", True)
    return out
