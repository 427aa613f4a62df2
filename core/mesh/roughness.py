"""Surface roughness of triangle meshes (DESIGN §6, issue 25) — the one implementation used everywhere.

Figure: for each mesh, the median over interior edges of the dihedral angle between the two faces
that share the edge (0° = flat, angle between the face normals); the figure of a set of meshes is
the mean of those medians, in degrees. Clean Anny hands in sampled poses are at 11-12°; a crumpled
decoded mesh is several times that.

Also the differentiable surface terms the mesh-AE decoder is fine-tuned with (`SurfaceTerms`):
uniform-Laplacian difference, edge-length difference, and adjacent-face normal consistency.
"""
from __future__ import annotations

import numpy as np
import torch


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """Pairs of faces (E,2) that share an edge (interior edges of a manifold mesh; an edge shared by
    more than two faces contributes every consecutive pair)."""
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be (F,3), got {f.shape}")
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges.sort(1)
    owner = np.tile(np.arange(len(f)), 3)
    key = edges[:, 0] * (int(f.max()) + 1) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    same = key[1:] == key[:-1]
    return np.stack([owner[:-1][same], owner[1:][same]], 1)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected edges (E,2) of a triangle mesh, each once."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(1)
    return np.unique(e, axis=0)


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals (B,F,3) of (B,V,3) vertices."""
    a, b, c = (verts[:, faces[:, k]] for k in range(3))
    n = torch.cross(b - a, c - a, dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def dihedral_angles(verts, faces: np.ndarray, adjacency: np.ndarray | None = None) -> torch.Tensor:
    """Angles (B,E) in degrees between the normals of adjacent faces, for (B,V,3) or (V,3) vertices."""
    v = torch.as_tensor(np.asarray(verts) if not torch.is_tensor(verts) else verts).double()
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[-1] != 3:
        raise ValueError(f"vertices must be (B,V,3) or (V,3), got {tuple(v.shape)}")
    adj = torch.as_tensor(face_adjacency(faces) if adjacency is None else adjacency)
    n = face_normals(v, torch.as_tensor(np.asarray(faces, dtype=np.int64)))
    cos = (n[:, adj[:, 0]] * n[:, adj[:, 1]]).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def roughness_per_mesh(verts, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """Median dihedral angle (degrees) of each mesh, (B,)."""
    v = verts if torch.is_tensor(verts) else torch.as_tensor(np.asarray(verts))
    if v.ndim == 2:
        v = v[None]
    adj = face_adjacency(faces)
    out = [dihedral_angles(v[s:s + batch].detach(), faces, adj).median(dim=1).values
           for s in range(0, len(v), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def roughness(verts, faces: np.ndarray) -> float:
    """The roughness figure: median dihedral angle per mesh, averaged over the meshes (degrees)."""
    r = roughness_per_mesh(verts, faces)
    if r.size == 0:
        raise ValueError("roughness of an empty set of meshes")
    return float(r.mean())


class SurfaceTerms(torch.nn.Module):
    """Differentiable surface losses between predicted and target meshes with the same connectivity
    (used to fine-tune the mesh-AE decoder): uniform-Laplacian difference, edge-length difference
    (both mean absolute, in the vertices' units), and normal consistency (mean 1 − cos of adjacent
    predicted face normals minus the same for the target, clamped at 0: only extra bending costs)."""

    def __init__(self, faces: np.ndarray, num_vertices: int) -> None:
        super().__init__()
        e = torch.as_tensor(unique_edges(faces))
        self.register_buffer("edges", e, persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces, dtype=np.int64)), persistent=False)
        self.register_buffer("adj", torch.as_tensor(face_adjacency(faces)), persistent=False)
        deg = torch.zeros(num_vertices).index_add_(0, e.reshape(-1), torch.ones(e.numel()))
        self.register_buffer("inv_deg", 1.0 / deg.clamp_min(1.0), persistent=False)
        self.num_vertices = num_vertices

    def laplacian(self, v: torch.Tensor) -> torch.Tensor:
        """Uniform Laplacian (B,V,3): mean of the neighbours minus the vertex."""
        i, j = self.edges[:, 0], self.edges[:, 1]
        s = torch.zeros_like(v)
        s = s.index_add(1, i, v[:, j]).index_add(1, j, v[:, i])
        return s * self.inv_deg[None, :, None] - v

    def edge_lengths(self, v: torch.Tensor) -> torch.Tensor:
        return (v[:, self.edges[:, 0]] - v[:, self.edges[:, 1]]).norm(dim=-1)

    def bending(self, v: torch.Tensor) -> torch.Tensor:
        """1 − cos of the angle between adjacent face normals (B,E)."""
        n = face_normals(v, self.faces)
        return 1.0 - (n[:, self.adj[:, 0]] * n[:, self.adj[:, 1]]).sum(-1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "lap": (self.laplacian(pred) - self.laplacian(target)).abs().mean(),
            "edge": (self.edge_lengths(pred) - self.edge_lengths(target)).abs().mean(),
            "normal": (self.bending(pred) - self.bending(target)).clamp_min(0).mean(),
        }
