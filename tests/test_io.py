"""Image and pose-file loading: good files load, bad files give one readable InputError."""
import json

import cv2
import numpy as np
import pytest

from core.errors import InputError
from core.io.images import load_image
from core.io.poses import load_pose_file


def _png(path, img):
    assert cv2.imwrite(str(path), img)
    return path


def test_colour_jpeg_is_rgb(tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    p = tmp_path / "red.png"
    _png(p, bgr)
    img = load_image(p)
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("kind", ["grey", "rgba", "grey16", "rgb16"])
def test_odd_pixel_formats_become_rgb_uint8(tmp_path, kind):
    if kind == "grey":
        img = np.full((30, 30), 128, np.uint8)
    elif kind == "rgba":
        img = np.zeros((30, 30, 4), np.uint8)
        img[..., 3] = 0  # fully transparent → white
    elif kind == "grey16":
        img = np.full((30, 30), 65535, np.uint16)
    else:
        img = np.full((30, 30, 3), 257 * 100, np.uint16)
    out = load_image(_png(tmp_path / f"{kind}.png", img))
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8
    expected = {"grey": 128, "rgba": 255, "grey16": 255, "rgb16": 100}[kind]
    assert int(out[5, 5, 0]) == expected


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    arr = np.zeros((20, 40, 3), np.uint8)  # landscape
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes())
    assert load_image(p).shape[:2] == (40, 20)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"this is text, not a picture", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "not a readable image"),
])
def test_bad_images(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(InputError, match=reason):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "full.jpg"
    cv2.imwrite(str(p), np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = p.read_bytes()
    q = tmp_path / "cut.jpg"
    q.write_bytes(data[: len(data) // 3])
    try:
        img = load_image(q)  # OpenCV may decode a truncated JPEG partially: then it must be valid RGB
        assert img.shape == (200, 200, 3)
    except InputError:
        pass


def test_huge_image_header_is_refused_without_decoding(tmp_path):
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    p = tmp_path / "huge.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(InputError, match="too large"):
        load_image(p)


def test_large_image_is_downscaled(tmp_path):
    img = np.zeros((100, 300, 3), np.uint8)
    out = load_image(_png(tmp_path / "wide.png", img), max_side=150)
    assert out.shape == (50, 150, 3)


def test_tiny_and_missing_images(tmp_path):
    with pytest.raises(InputError, match="too small"):
        load_image(_png(tmp_path / "one.png", np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")


# -- pose files ------------------------------------------------------------------------------

def test_npz_pose_roundtrip(pose_npz):
    pf = load_pose_file(pose_npz)
    assert pf.model == "anny" and pf.pose.shape == (45,) and pf.global_orient.shape == (3,)
    assert pf.side == "right"


@pytest.mark.parametrize("arrays,reason", [
    ({"pose": np.full(45, np.nan)}, "NaN"),
    ({"pose": np.full(45, np.inf)}, "NaN or Inf"),
    ({"pose": np.zeros(44)}, "shape"),
    ({"pose": np.zeros((3, 45))}, "shape"),
    ({"pose": np.array(["a"] * 45)}, "not numeric"),
    ({"hello": np.zeros(3)}, "no 'pose' or 'joints'"),
    ({"pose": np.zeros(45), "model": np.array("smpl")}, "model"),
    ({"joints": np.zeros((21, 3))}, "same point"),
    ({"joints": np.random.default_rng(0).normal(0, 50, (21, 3))}, "millimetres"),
])
def test_bad_npz_pose_files(tmp_path, arrays, reason):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(InputError, match=reason):
        load_pose_file(p)


def test_pickle_disguised_as_npz_is_never_executed(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = tmp_path / "evil.npz"
    p.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InputError):
        load_pose_file(p)
    assert not marker.exists()
    q = tmp_path / "objects.npz"
    np.savez(q, pose=np.array([Payload()], dtype=object))
    with pytest.raises(InputError, match="pickle"):
        load_pose_file(q)
    assert not marker.exists()


def test_json_joints(tmp_path):
    joints = np.random.default_rng(0).normal(0, 0.03, (21, 3))
    p = tmp_path / "j.json"
    p.write_text(json.dumps({"joints": joints.tolist(), "mask": [4, 8], "side": "left"}))
    pf = load_pose_file(p)
    assert pf.joints.shape == (21, 3) and pf.side == "left"
    assert pf.mask.sum() == 2 and pf.mask[4] and pf.mask[8]


@pytest.mark.parametrize("text,reason", [
    ("{not json", "not valid JSON"),
    ('{"joints": [[0, 0, 0]]}', "shape"),
    ('{"joints": "abc"}', "not numeric|shape"),
    ('{"points": []}', "'joints'"),
    ('{"joints": ' + json.dumps([[0.01 * i, 0.0, 0.0] for i in range(21)]) + ', "side": "up"}', "side"),
    ('{"joints": ' + json.dumps([[0.01 * i, 0.0, 0.0] for i in range(21)]) + ', "mask": [99]}', "0..20"),
])
def test_bad_json_pose_files(tmp_path, text, reason):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(InputError, match=reason):
        load_pose_file(p)


def test_huge_mask_index_is_refused_without_overflow(tmp_path):
    import warnings

    p = tmp_path / "pose.json"
    p.write_text('{"joints": ' + json.dumps([[0.01 * i, 0.0, 0.0] for i in range(21)]) + ', "mask": [1e300, 3]}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no int64 overflow on the way to the error
        with pytest.raises(InputError, match="0..20"):
            load_pose_file(p)


def test_unsupported_pose_suffix(tmp_path):
    p = tmp_path / "pose.txt"
    p.write_text("1 2 3")
    with pytest.raises(InputError, match="unsupported"):
        load_pose_file(p)


def test_mesh_export_formats(tmp_path):
    import trimesh

    from core.io.export import save_mesh

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]])
    for fmt in ("obj", "ply", "glb"):
        path = save_mesh(tmp_path / f"m.{fmt}", v, f)
        mesh = trimesh.load(path, force="mesh", process=False)
        assert len(mesh.vertices) == 3
    with pytest.raises(InputError):
        save_mesh(tmp_path / "m.stl", v, f)
    assert not list(tmp_path.glob("*.part"))
