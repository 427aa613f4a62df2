import numpy as np
import pytest

from core.metrics import apd, f_score, mpjpe, pa_mpjpe, procrustes_align


def test_mpjpe_by_hand():
    gt = np.zeros((2, 3))
    pred = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    assert mpjpe(pred, gt) == pytest.approx((5.0 + 1.0) / 2)


def test_pa_mpjpe_removes_similarity_transform():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(21, 3))
    c, s = np.cos(0.7), np.sin(0.7)
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    pred = 2.5 * gt @ r.T + np.array([1.0, -2.0, 3.0])
    assert pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(pred, gt) > 1.0


def test_pa_mpjpe_does_not_reflect():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(21, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert pa_mpjpe(mirrored, gt) > 0.1  # a proper rotation cannot undo a mirror image
    aligned = procrustes_align(mirrored, gt)
    assert np.linalg.det(np.cov(aligned.T)) > 0


def test_pa_mpjpe_value_by_hand():
    # Collinear points: centred pred (−1, 0, 1), centred gt (−4/3, −1/3, 5/3); best scale 1.5;
    # residuals 1/6, 1/3, 1/6 → mean 2/9.
    pred = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
    assert pa_mpjpe(pred, gt) == pytest.approx(2 / 9, rel=1e-9)


def test_f_score_by_hand():
    gt = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    pred = np.array([[1.0, 0, 0], [100.0, 0, 0], [200.0, 0, 0]])
    # precision: 1/3 of pred within 5 of gt; recall: 1/2 of gt within 5 of pred → F = 2·(1/3)(1/2)/(5/6) = 0.4
    assert f_score(pred, gt, 5.0) == pytest.approx(0.4)
    assert f_score(pred, gt, 1000.0) == pytest.approx(1.0)


def test_apd_by_hand():
    a = np.zeros((1, 3))
    b = np.array([[3.0, 4.0, 0.0]])
    c = np.array([[6.0, 8.0, 0.0]])
    # pairwise distances 5, 10, 5 → mean 20/3
    assert apd(np.stack([a, b, c])) == pytest.approx(20 / 3)
    assert apd(np.stack([a])) == 0.0
