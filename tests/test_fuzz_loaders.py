"""Property-based fuzzing of the user-file loaders: any bytes give a valid result or an InputError."""
import json
import pathlib
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.io.images import load_image
from core.io.poses import load_pose_file

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="pose-viewer-fuzz-"))

PNG_HEAD = b"\x89PNG\r\n\x1a\n"
JPEG_HEAD = b"\xff\xd8\xff\xe0"


@FUZZ
@given(head=st.sampled_from([b"", PNG_HEAD, JPEG_HEAD, b"GIF89a", b"BM"]), body=st.binary(max_size=4096),
       suffix=st.sampled_from([".jpg", ".png", ".bmp", ".webp"]))
def test_random_bytes_never_crash_the_image_loader(head, body, suffix):
    p = _TMP / f"fuzz{suffix}"
    p.write_bytes(head + body)
    try:
        img = load_image(p)
    except InputError as exc:
        assert str(exc)
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash_the_npz_loader(data):
    p = _TMP / "fuzz.npz"
    p.write_bytes(data)
    try:
        load_pose_file(p)
    except InputError as exc:
        assert str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=25) | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=80)


@FUZZ
@given(value=json_values, joints_like=st.booleans())
def test_random_json_never_crashes_the_pose_loader(value, joints_like):
    p = _TMP / "fuzz.json"
    if joints_like:
        value = {"joints": value, "mask": value if isinstance(value, list) else None}
    p.write_text(json.dumps(value))
    try:
        pf = load_pose_file(p)
    except InputError as exc:
        assert str(exc)
        return
    assert pf.joints.shape == (21, 3) and np.isfinite(pf.joints).all()


@FUZZ
@given(arr=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=60),
       key=st.sampled_from(["pose", "joints", "global_orient", "shape", "mask"]))
def test_random_npz_arrays(arr, key):
    p = _TMP / "arrays.npz"
    np.savez(p, **{key: np.asarray(arr, np.float32)}, pose=np.zeros(45, np.float32)) if key != "pose" else \
        np.savez(p, pose=np.asarray(arr, np.float32))
    try:
        pf = load_pose_file(p)
    except InputError as exc:
        assert str(exc)
        return
    assert pf.pose is None or (pf.pose.shape == (45,) and np.isfinite(pf.pose).all())
