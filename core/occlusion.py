"""Self-occlusion of hand joints from the 21 joints alone (a capsule hand), in camera coordinates.

Used to make training 2D noise heavier where a detector has to guess (training/data/lifting.py), to
tell the stage-1 lifter which keypoints are probably hidden (estimated at inference from a first
lifting pass, core/stage1.py), and to split evaluation results by occlusion (training/evaluate.py).
"""
from __future__ import annotations

import torch

from core.joints import BONES


def _occluder_points(n_per_bone: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Interpolation weights (P,21) of occluder sample points along every bone and over the palm,
    their radius (P,) in metres, and the joints each point is attached to (P,21) bool (never occludes those)."""
    rows, radius, attached = [], [], []
    for p, c in BONES:
        r = 0.012 if p == 0 else 0.009
        for a in torch.linspace(0, 1, n_per_bone):
            w = torch.zeros(21)
            w[p], w[c] = 1 - a, a
            rows.append(w)
            radius.append(r)
            m = torch.zeros(21, dtype=torch.bool)
            m[p] = m[c] = True
            attached.append(m)
    # Palm: triangles wrist / index MCP / pinky MCP and wrist / thumb CMC / index MCP, on a grid.
    for tri in ((0, 5, 17), (0, 1, 5), (5, 9, 17), (9, 13, 17)):
        for u in torch.linspace(0, 1, 5):
            for v in torch.linspace(0, 1, 5):
                if u + v > 1:
                    continue
                w = torch.zeros(21)
                w[tri[0]] += 1 - u - v
                w[tri[1]] += u
                w[tri[2]] += v
                rows.append(w)
                radius.append(0.012)
                m = torch.zeros(21, dtype=torch.bool)
                m[list(tri)] = True
                m[0] = True
                attached.append(m)
    return torch.stack(rows), torch.tensor(radius), torch.stack(attached)


_OCC = None


def joint_occlusion(cam: torch.Tensor, margin: float = 0.004) -> torch.Tensor:
    """(B,21,3) camera-frame joints → (B,21) bool self-occlusion flags of a capsule hand (bones as
    capsules of radius 9 mm, palm 12 mm): joint j is occluded when a capsule sample not attached to j
    lies in front of it (nearer by more than its radius + margin) within its radius of j's ray."""
    global _OCC
    if _OCC is None:
        _OCC = _occluder_points()
    w, rad, att = _OCC
    pts = torch.einsum("pj,bjc->bpc", w.to(cam), cam)                              # (B,P,3)
    jr = cam[..., :2] / cam[..., 2:]                                               # (B,21,2)
    pr = pts[..., :2] / pts[..., 2:]
    d = (jr[:, :, None] - pr[:, None]).norm(dim=-1) * pts[:, None, :, 2]           # (B,21,P) metres at point depth
    front = pts[:, None, :, 2] < cam[..., 2:3] - rad - margin
    hit = (d < rad) & front & ~att.T[None]
    return hit.any(-1)
