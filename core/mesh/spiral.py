"""Spiral sequences (SpiralNet++) from mesh connectivity.

For every vertex v the spiral is: v itself, then its 1-ring, then the 2-ring, … (rings by graph
distance), each ring ordered counter-clockwise by angle around v's normal, starting from the
direction of v's lowest-index 1-ring neighbour; truncated to `length`. A vertex whose rings hold
fewer than `length` vertices (never the case on closed-ish meshes with length ≤ ~19) is padded by
repeating the spiral from its start, so every index is a real vertex.
"""
from __future__ import annotations

import numpy as np


def vertex_adjacency(faces: np.ndarray, n_vertices: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(n_vertices)]
    for a, b, c in np.asarray(faces, np.int64):
        adj[a].update((b, c))
        adj[b].update((a, c))
        adj[c].update((a, b))
    return adj


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(norm, 1e-12)


def _ring_order(center: np.ndarray, normal: np.ndarray, ref: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Argsort of `pts` by counter-clockwise angle about `normal`, measured from direction `ref`."""
    e1 = ref - center
    e1 = e1 - normal * (e1 @ normal)
    n1 = np.linalg.norm(e1)
    if n1 < 1e-12:   # degenerate: any perpendicular axis
        e1 = np.cross(normal, [1.0, 0, 0]) if abs(normal[0]) < 0.9 else np.cross(normal, [0, 1.0, 0])
        n1 = np.linalg.norm(e1)
    e1 = e1 / n1
    e2 = np.cross(normal, e1)
    d = pts - center
    ang = np.arctan2(d @ e2, d @ e1)
    ang = np.where(ang < -1e-9, ang + 2 * np.pi, np.maximum(ang, 0.0))   # the reference direction is 0
    return np.argsort(ang, kind="stable")


def spiral_sequences(vertices: np.ndarray, faces: np.ndarray, length: int = 9) -> np.ndarray:
    """(V, length) int64 spiral indices (column 0 is the vertex itself)."""
    v = np.asarray(vertices, np.float64)
    nv = len(v)
    adj = vertex_adjacency(faces, nv)
    normals = vertex_normals(v, faces)
    out = np.empty((nv, length), np.int64)
    for i in range(nv):
        seq = [i]
        seen = {i}
        frontier = [i]
        ref = None
        while len(seq) < length and frontier:
            ring = sorted({n for u in frontier for n in adj[u]} - seen)
            if not ring:
                break
            if ref is None:
                ref = v[ring[0]]   # lowest-index 1-ring neighbour
            ring_arr = np.array(ring)
            ring_arr = ring_arr[_ring_order(v[i], normals[i], ref, v[ring_arr])]
            seq.extend(int(r) for r in ring_arr)
            seen.update(ring)
            frontier = ring
        while len(seq) < length:   # isolated / tiny components only
            seq.extend(seq[: length - len(seq)])
        out[i] = seq[:length]
    return out
