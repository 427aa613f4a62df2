"""Evaluation metrics (inputs in metres or any unit; outputs in the same unit — reports use mm).

All functions take numpy arrays with points on the last two axes (..., P, 3).
"""
from __future__ import annotations

import numpy as np


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-point position error (...,P,3) → (...)."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1).mean(-1)


mpvpe = mpjpe  # same formula on vertices


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align `pred` to `gt` (scale, rotation with the reflection fix, translation)."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    mu_p = pred.mean(-2, keepdims=True)
    mu_g = gt.mean(-2, keepdims=True)
    x = pred - mu_p
    y = gt - mu_g
    cov = np.swapaxes(x, -1, -2) @ y                        # (...,3,3)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))                       # reflection fix
    fix = np.ones(s.shape)
    fix[..., -1] = d
    r = (u * fix[..., None, :]) @ vt                         # rotation applied as x @ r
    var = (x ** 2).sum((-1, -2))
    scale = (s * fix).sum(-1) / np.maximum(var, 1e-12)
    return scale[..., None, None] * (x @ r) + mu_g


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after similarity Procrustes alignment."""
    return mpjpe(procrustes_align(pred, gt), gt)


pa_mpvpe = pa_mpjpe


def f_score(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """FreiHAND F-score of two point sets (P,3),(Q,3): harmonic mean of precision and recall at `threshold`."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    precision = float((d.min(1) < threshold).mean())
    recall = float((d.min(0) < threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def apd(samples: np.ndarray) -> float:
    """Average pairwise distance between S samples (S,P,3): mean over pairs of the mean per-point distance."""
    s = np.asarray(samples, np.float64)
    n = s.shape[0]
    if n < 2:
        return 0.0
    d = np.linalg.norm(s[:, None] - s[None], axis=-1).mean(-1)
    return float(d.sum() / (n * (n - 1)))
