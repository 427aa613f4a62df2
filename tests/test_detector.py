"""MediaPipe detector wrapper: keypoints, handedness, crop box, mirroring helpers, typed errors.

Uses a small generated image of an Anny right hand (resources/samples/anny_right_256.jpg, written by
`python -m training.mediapipe_on_renders --write-test-image resources/samples/anny_right_256.jpg`) whose
projected ground-truth keypoints are in tests/data/anny_right_256_gt.npz.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from core.detector import (Detection, HandDetector, crop_box, mirror_K, mirror_keypoints,
                           select_hands, to_model_frame)
from core.errors import InputError, NoHandError, WeightsError
from core.joints import mirror_x

DATA = pathlib.Path(__file__).parent / "data"




@pytest.fixture(scope="module")
def gt():
    return np.load(DATA / "anny_right_256_gt.npz")


def test_crop_box_is_square_and_contains_keypoints():
    rng = np.random.default_rng(0)
    kp = rng.uniform([10, 50], [60, 200], (21, 2))
    x0, y0, x1, y1 = crop_box(kp, pad=0.25)
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert (kp[:, 0] > x0).all() and (kp[:, 0] < x1).all() and (kp[:, 1] > y0).all() and (kp[:, 1] < y1).all()
    assert x1 - x0 == pytest.approx(1.5 * (kp.max(0) - kp.min(0)).max())


def test_mirroring_keeps_projection_consistent():
    rng = np.random.default_rng(1)
    K = np.array([[500.0, 0, 90], [0, 500, 140], [0, 0, 1]])
    pts = rng.normal(0, 0.05, (21, 3)) + [0.02, -0.01, 0.5]
    uv = pts @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    m = mirror_x(pts) @ mirror_K(K, 256).T
    m = m[:, :2] / m[:, 2:]
    np.testing.assert_allclose(m, mirror_keypoints(uv, 256), atol=1e-9)
    np.testing.assert_allclose(mirror_keypoints(mirror_keypoints(uv, 256), 256), uv)


def test_detects_right_hand_with_accurate_keypoints(detector, hand_image, gt):
    dets = detector.detect(hand_image)
    assert len(dets) == 1
    d = dets[0]
    assert d.handedness == "right"
    assert d.keypoints2d.shape == (21, 2) and d.scores.shape == (21,)
    assert 0 <= d.score <= 1 and np.all((d.scores >= 0) & (d.scores <= 1))
    assert np.linalg.norm(d.keypoints2d - gt["kp2d"], axis=1).mean() < 10.0   # px, 256² image
    assert d.image_size == (256, 256)
    np.testing.assert_allclose(d.box, crop_box(d.keypoints2d))
    assert d.world_landmarks.shape == (21, 3)


def test_mirrored_image_is_a_left_hand_and_model_frame_mirrors_back(detector, hand_image):
    right = detector.detect(hand_image)[0]
    left = detector.detect(np.ascontiguousarray(hand_image[:, ::-1]))[0]
    assert left.handedness == "left"
    K = np.array([[256.0, 0, 128], [0, 256, 128], [0, 0, 1]])
    kp, Km, mirrored = to_model_frame(left, K)
    assert mirrored
    np.testing.assert_allclose(Km, K)          # centred principal point is its own mirror
    assert np.linalg.norm(kp - right.keypoints2d, axis=1).mean() < 6.0
    kp_r, _, m_r = to_model_frame(right, K)
    assert not m_r and np.array_equal(kp_r, right.keypoints2d)


def test_no_hand_is_a_typed_error(detector):
    with pytest.raises(NoHandError, match="no hand"):
        detector.detect(np.full((128, 128, 3), 127, np.uint8))


def test_bad_image_arrays_are_input_errors(detector):
    with pytest.raises(InputError):
        detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(InputError):
        detector.detect(np.zeros((64, 64, 3), np.float32))


def test_missing_bundle_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match="hand_landmarker.task"):
        HandDetector(tmp_path / "hand_landmarker.task")


def _det(side, size):
    kp = np.array([[0, 0], [size, size]] * 10 + [[0, 0]], np.float64)
    return Detection(kp, np.ones(21), 1.0, side, crop_box(kp))


def test_select_hands():
    dets = sorted([_det("left", 50), _det("right", 100), _det("left", 20)], key=lambda d: -d.area)
    assert select_hands(dets, "largest")[0].handedness == "right"
    assert select_hands(dets, "left")[0].area == dets[1].area
    assert len(select_hands(dets, "all")) == 3
    with pytest.raises(NoHandError, match="no right hand"):
        select_hands([_det("left", 10)], "right")
    with pytest.raises(ValueError):
        select_hands(dets, "both")


def test_open_detectors_are_closed_at_interpreter_exit(monkeypatch):
    """MediaPipe's own __del__ can run after its C library is torn down and print a traceback at exit
    (seen at the end of a test run); the exit hook closes every open detector first, once."""
    import weakref

    from core import detector as mod

    monkeypatch.setattr(mod, "_OPEN", weakref.WeakSet())   # the hook must not close the other tests' detectors
    det = HandDetector()
    assert det in mod._OPEN
    mod._close_open_detectors()
    assert det not in mod._OPEN and det._landmarker._handle is None
    det.close()                          # idempotent: the fixture's / user's close after the hook
