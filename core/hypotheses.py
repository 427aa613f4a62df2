"""Summaries of a set of hypotheses for display and reports: reprojection errors, best, spread."""
from __future__ import annotations

import numpy as np

from core.geometry import project


def reprojection_errors(joint_hyps: np.ndarray, cam_t: np.ndarray, keypoints2d: np.ndarray, K: np.ndarray,
                        weights: np.ndarray | None = None) -> np.ndarray:
    """Mean 2D distance (px) between each hypothesis (N,21,3) + cam_t projected with K and the keypoints."""
    uv = project(np.asarray(joint_hyps, np.float64) + np.asarray(cam_t, np.float64), K)
    err = np.linalg.norm(uv - np.asarray(keypoints2d, np.float64)[None], axis=-1)   # (N,21)
    if weights is None:
        return err.mean(-1)
    w = np.asarray(weights, np.float64)
    return (err * w).sum(-1) / max(w.sum(), 1e-9)


def per_point_spread(hyps: np.ndarray) -> np.ndarray:
    """Spread of each point across hypotheses (N,P,3) → (P,): RMS distance to the mean point (metres)."""
    h = np.asarray(hyps, np.float64)
    return np.sqrt(((h - h.mean(0, keepdims=True)) ** 2).sum(-1).mean(0))


def trajectory_frames(result) -> list[tuple[str, str, np.ndarray]]:
    """The denoising trajectory of a cascade/stage-1 result as display frames, noise → result.

    Each frame is (label, kind, points): stage-1 frames are x_t of the joint hypotheses ('joints',
    (N,21,3)); stage-2 frames, when the result has them (`mesh_trajectory_vertices`, (S,N,V,3), the
    decoded x̂0 at each step), are meshes ('mesh', (N,V,3)).
    """
    frames: list[tuple[str, str, np.ndarray]] = []
    xt = getattr(result, "trajectory_xt", None)
    if xt is not None:
        steps = len(xt) - 1
        for k, x in enumerate(xt):
            frames.append((f"joints {k}/{steps}", "joints", np.asarray(x)))
    meshes = getattr(result, "mesh_trajectory_vertices", None)
    if meshes is not None:
        for k, v in enumerate(meshes):
            frames.append((f"mesh {k + 1}/{len(meshes)}", "mesh", np.asarray(v)))
    return frames


_LOD_CACHE: dict = {}


def _gather_form(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dense (V_out, V_in) sampling matrix with few non-zeros per row → (indices, weights), both
    (V_out, k): row r of `matrix @ x` is `(x[indices[r]] * weights[r]).sum()` (padding has weight 0)."""
    k = max(int((matrix != 0).sum(1).max()), 1)
    indices = np.argsort(matrix == 0, axis=1, kind="stable")[:, :k]     # each row's non-zero columns first
    return indices, np.take_along_axis(matrix, indices, 1).astype(np.float32)


def coarse_meshes(vertices: np.ndarray, level: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Hypothesis meshes (N,1609,3) of the Anny hand → the same meshes at the autoencoder's
    down-sampled `level` (1: 400 vertices, 2: 200, 3: 100; the shipped sampling resource) with its
    faces: fewer triangles for drawing a translucent cloud (level 1 for still frames, a coarser one
    while the user scrubs). Other vertex counts are returned unchanged (with faces None). Plain numpy
    (a gather of the few weighted vertices each coarse vertex has): the window process has no scipy."""
    from core.mesh.sampling import load_sampling_arrays   # numpy only: the window process has no torch

    if "sampling" not in _LOD_CACHE:
        _LOD_CACHE["sampling"] = load_sampling_arrays()
    s = _LOD_CACHE["sampling"]
    level = max(1, min(level, len(s["down"])))
    if level not in _LOD_CACHE:
        down = s["down"][0]
        for d in s["down"][1:level]:
            down = d @ down
        _LOD_CACHE[level] = (*_gather_form(down), down.shape[1], np.asarray(s["level_faces"][level]))
    indices, weights, n_in, faces = _LOD_CACHE[level]
    v = np.asarray(vertices, np.float32)
    if v.ndim != 3 or v.shape[1] != n_in:
        return v, None
    n, nv, _ = v.shape
    flat = v.transpose(1, 0, 2).reshape(nv, n * 3)                     # (V, N·3): rows gathered whole
    coarse = np.einsum("lkm,lk->lm", flat[indices], weights)            # (V_level, N·3)
    return np.ascontiguousarray(coarse.reshape(len(indices), n, 3).transpose(1, 0, 2)), faces
