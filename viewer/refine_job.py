"""The Refine button's job in the DPoser process (issue 25 item 3): `core.refine.refine_hand` on one hand.

`viewer.engine.PriorEngine.handle` routes `('refine', hand_result, settings)` here. The window sends the
selected hand's result without what the refinement does not read (`trim_for_refine`); this runs the
refinement with the process's prior and hand model, reports progress as the runner's
`progress(done, total, label)`, and returns a `RefineOutcome`: the `core.results.Refinement` (what
`result.npz` saves) plus its meshes and joints placed in the result's frame, ready to draw.

The placement is the one sum the window would otherwise do per display: a refined hypothesis sits at its
own camera translation (`hyp_transl`), the window draws a hand's geometry at `mesh_cam_t`, so each is
shifted by `hyp_transl - mesh_cam_t`. Nothing here imports torch at module level (the window unpickles
`RefineOutcome`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_EMPTY = np.zeros((0,), np.float32)


@dataclass
class RefineOutcome:
    """A refinement and its geometry in the result's display frame (add `mesh_cam_t` for the camera frame)."""

    refinement: Any                 # core.results.Refinement
    hyp_vertices: np.ndarray        # (N,V,3) refined meshes
    vertices: np.ndarray            # (V,3) refined aggregate
    hyp_joints: np.ndarray          # (N,21,3)
    joints: np.ndarray              # (21,3)

    @property
    def error_before(self) -> float:
        """Mean keypoint reprojection error (px) of the hypotheses before refinement."""
        return float(np.mean(self.refinement.reprojection_px_before[:-1]))

    @property
    def error_after(self) -> float:
        return float(np.mean(self.refinement.reprojection_px_after[:-1]))


def trim_for_refine(result: Any) -> Any:
    """A copy of a `HandResult` without the big arrays the refinement does not read (trajectories, the
    decoder's meshes, the parameter head's meshes): ~N·V·3 floats less to send per field."""
    s1 = dataclasses.replace(result.stage1, trajectory_xt=_EMPTY, trajectory_x0=_EMPTY)
    mesh = result.mesh
    params = result.params
    if params is not None:
        params = dataclasses.replace(params, hyp_vertices=None, vertices=None, hyp_joints=None, joints=None)
    if mesh is not None:
        mesh = dataclasses.replace(mesh, vertex_hypotheses=_EMPTY, trajectory_latents_xt=None,
                                   trajectory_latents_x0=None, params=params)
    return dataclasses.replace(result, stage1=s1, mesh=mesh, params=params, mesh_trajectory_vertices=None,
                               refined=None)


def run_refine(engine: Any, result: Any, settings: dict, progress: Callable[..., None],
               cancel: Callable[[], bool] | None = None) -> RefineOutcome:
    """Refine `result`'s hypotheses and aggregate with `engine`'s prior and hand; `settings['iters']`
    (default: core's) iterations. Raises `core.errors.Cancelled` when cancelled (through `progress`)."""
    from core.refine import DEFAULT_REFINE_ITERS, refine_hand

    iters = int(settings.get("iters") or DEFAULT_REFINE_ITERS)
    progress(0, iters, "refining")
    ref = refine_hand(engine.prior(), engine.hand, result, iters=iters, seed=int(settings.get("seed", 0)),
                      progress=lambda done, total: progress(done, total, "refining"), cancel=cancel)
    p = ref.params
    shift = (np.asarray(ref.hyp_transl, np.float32) - np.asarray(result.mesh_cam_t, np.float32))[:, None, :]
    agg_shift = np.asarray(ref.transl, np.float32) - np.asarray(result.mesh_cam_t, np.float32)
    return RefineOutcome(ref, (p.hyp_vertices + shift).astype(np.float32), (p.vertices + agg_shift).astype(np.float32),
                         (p.hyp_joints + shift).astype(np.float32), (p.joints + agg_shift).astype(np.float32))
