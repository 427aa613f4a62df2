"""Mesh down/up-sampling for the SpiralNet++ autoencoder, and the linear joint regressor.

Built once from the hand template (`python -m core.mesh.build`) and shipped as
`resources/mesh/anny_hand_sampling.npz` (plain arrays, loaded with `allow_pickle=False`):

- level 0 is the full mesh; level l+1 is a quadric decimation (fast-simplification) of level l;
- down[l] (V_{l+1} × V_l): row i holds the barycentric weights of the closest point on the level-l
  surface to the decimated vertex i (3 non-zeros);
- up[l] (V_l × V_{l+1}): row j holds the barycentric weights of the closest point on the level-(l+1)
  surface to vertex j of level l (barycentric transfer, as in COMA / SpiralNet++);
- spirals[l] (V_l, S): spiral sequences (core.mesh.spiral);
- joint_regressor (21, V_0): J = R · V, non-negative rows summing to 1 (fingertips one-hot on the
  tip vertices, other keypoints fitted on sampled posed meshes), so J is equivariant to rotation and
  translation of the mesh — the regressor of paper 000's joint losses.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:   # torch is imported where tensors are built: `load_sampling_arrays` is numpy only
    import torch

from core.errors import WeightsError

RESOURCE = pathlib.Path(__file__).resolve().parents[2] / "resources" / "mesh" / "anny_hand_sampling.npz"
BUILD_COMMAND = "python -m core.mesh.build"


# --- geometry helpers (numpy) ---------------------------------------------------------------------

def closest_point_barycentric(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                              chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each point (P,3): index of the closest triangle and barycentric weights (P,3) of the
    closest point on it (Ericson's closest-point-on-triangle, vectorised)."""
    p_all = np.asarray(points, np.float64)
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    ab, ac = b - a, c - a
    best_f = np.empty(len(p_all), np.int64)
    best_w = np.empty((len(p_all), 3))
    for s in range(0, len(p_all), chunk):
        p = p_all[s:s + chunk, None, :]                      # (P,1,3)
        ap = p - a
        d1 = (ab * ap).sum(-1)
        d2 = (ac * ap).sum(-1)
        bp = p - b
        d3 = (ab * bp).sum(-1)
        d4 = (ac * bp).sum(-1)
        cp = p - c
        d5 = (ab * cp).sum(-1)
        d6 = (ac * cp).sum(-1)
        va = d3 * d6 - d5 * d4
        vb = d5 * d2 - d1 * d6
        vc = d1 * d4 - d3 * d2
        denom = va + vb + vc
        denom = np.where(np.abs(denom) < 1e-20, 1e-20, denom)
        w_v = vb / denom
        w_w = vc / denom
        w = np.stack([1 - w_v - w_w, w_v, w_w], -1)          # interior default
        # Regions (vertex / edge), Ericson 5.1.5.
        with np.errstate(divide="ignore", invalid="ignore"):
            m = (d1 <= 0) & (d2 <= 0)
            w[m] = [1, 0, 0]
            m2 = (d3 >= 0) & (d4 <= d3) & ~m
            w[m2] = [0, 1, 0]
            m = m | m2
            m2 = (d6 >= 0) & (d5 <= d6) & ~m
            w[m2] = [0, 0, 1]
            m = m | m2
            t = d1 / (d1 - d3)
            m2 = (vc <= 0) & (d1 >= 0) & (d3 <= 0) & ~m
            w[m2] = np.stack([1 - t[m2], t[m2], np.zeros(m2.sum())], -1)
            m = m | m2
            t = d2 / (d2 - d6)
            m2 = (vb <= 0) & (d2 >= 0) & (d6 <= 0) & ~m
            w[m2] = np.stack([1 - t[m2], np.zeros(m2.sum()), t[m2]], -1)
            m = m | m2
            t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            m2 = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0) & ~m
            w[m2] = np.stack([np.zeros(m2.sum()), 1 - t[m2], t[m2]], -1)
        w = np.nan_to_num(w, nan=1 / 3)
        q = w[..., 0:1] * a + w[..., 1:2] * b + w[..., 2:3] * c
        dist = ((q - p) ** 2).sum(-1)
        k = dist.argmin(1)
        best_f[s:s + chunk] = k
        best_w[s:s + chunk] = w[np.arange(len(k)), k]
    return best_f, best_w


def barycentric_matrix(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Dense (P, V) matrix M with M @ vertices ≈ closest surface points (3 non-zeros per row)."""
    fi, w = closest_point_barycentric(points, vertices, faces)
    m = np.zeros((len(points), len(vertices)))
    f = np.asarray(faces, np.int64)[fi]
    for k in range(3):
        np.add.at(m, (np.arange(len(points)), f[:, k]), w[:, k])
    return m


# --- loading ---------------------------------------------------------------------------------------

def _sparse(m: torch.Tensor) -> torch.Tensor:   # noqa: F821 - annotation only
    return m.to_sparse_coo().coalesce()


@dataclass
class MeshSampling:
    """The shipped transforms as torch tensors (dense matrices are small: ≤ 1609 × 400)."""

    spirals: list[torch.Tensor]          # per level (V_l, S) long
    down: list[torch.Tensor]             # per transition (V_{l+1}, V_l) float
    up: list[torch.Tensor]               # per transition (V_l, V_{l+1}) float
    joint_regressor: torch.Tensor        # (21, V_0)
    template: torch.Tensor               # (V_0, 3) rest mesh, metres
    faces: np.ndarray                    # (F,3) of level 0
    level_faces: list[np.ndarray]

    @property
    def num_vertices(self) -> list[int]:
        return [int(s.shape[0]) for s in self.spirals]

    @property
    def spiral_length(self) -> int:
        return int(self.spirals[0].shape[1])


def save_sampling(path: pathlib.Path, *, spirals, down, up, joint_regressor, template, level_faces,
                  meta: dict) -> None:
    arrays = {"levels": np.int64(len(spirals)), "joint_regressor": joint_regressor.astype(np.float32),
              "template": template.astype(np.float32)}
    for l, s in enumerate(spirals):
        arrays[f"spiral_{l}"] = s.astype(np.int32)
        arrays[f"faces_{l}"] = np.asarray(level_faces[l], np.int32)
    for l, (d, u) in enumerate(zip(down, up)):
        for name, m in (("down", d), ("up", u)):
            r, c = np.nonzero(m)
            arrays[f"{name}_{l}_rows"] = r.astype(np.int32)
            arrays[f"{name}_{l}_cols"] = c.astype(np.int32)
            arrays[f"{name}_{l}_vals"] = m[r, c].astype(np.float32)
            arrays[f"{name}_{l}_shape"] = np.array(m.shape, np.int64)
    for k, v in meta.items():
        arrays[f"meta_{k}"] = np.asarray(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_sampling_arrays(path: pathlib.Path | str | None = None) -> dict:
    """The resource as numpy (no torch; the window's level-of-detail meshes use it): 'down' / 'up' dense
    (V_{l+1}, V_l) / (V_l, V_{l+1}) float32 per transition, 'spirals', 'level_faces' per level,
    'joint_regressor', 'template'."""
    path = pathlib.Path(path) if path is not None else RESOURCE
    if not path.exists():
        raise WeightsError(f"{path}: mesh sampling resource is missing; rebuild with: {BUILD_COMMAND}")
    try:
        z = np.load(path, allow_pickle=False)
        n = int(z["levels"])

        def dense(name, l):
            m = np.zeros(tuple(int(x) for x in z[f"{name}_{l}_shape"]), np.float32)
            m[z[f"{name}_{l}_rows"].astype(np.int64), z[f"{name}_{l}_cols"].astype(np.int64)] = z[f"{name}_{l}_vals"]
            return m

        return {"spirals": [z[f"spiral_{l}"].astype(np.int64) for l in range(n)],
                "down": [dense("down", l) for l in range(n - 1)], "up": [dense("up", l) for l in range(n - 1)],
                "joint_regressor": z["joint_regressor"].astype(np.float32),
                "template": z["template"].astype(np.float32),
                "level_faces": [z[f"faces_{l}"].astype(np.int64) for l in range(n)]}
    except (KeyError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: mesh sampling resource is unreadable ({exc}); rebuild with: {BUILD_COMMAND}") from exc


def load_sampling(path: pathlib.Path | str | None = None) -> MeshSampling:
    import torch

    a = load_sampling_arrays(path)
    return MeshSampling(
        spirals=[torch.from_numpy(s) for s in a["spirals"]],
        down=[torch.from_numpy(m) for m in a["down"]],
        up=[torch.from_numpy(m) for m in a["up"]],
        joint_regressor=torch.from_numpy(a["joint_regressor"]),
        template=torch.from_numpy(a["template"]),
        faces=a["level_faces"][0],
        level_faces=a["level_faces"],
    )
