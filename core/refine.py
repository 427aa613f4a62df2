"""DPoser refinement of a photo's result (issue 25 item 3; paper 003's mesh-recovery use of the prior).

Every hypothesis of one hand (and the aggregate) starts from its Anny parameters (`HandResult.params`,
the parameter head's) and is fitted to the detector's 2D keypoints with `core.prior.fit_2d`: a
Geman-McClure reprojection term through the photo's K plus the DPoser term on the pose, t drawn from
the truncated range of the task (`TASK_RANGES['fit2d']`, [0.12, 0.08] as in the reference code). The
global orientation, the 45 pose values and the camera translation move; the shape stays the head's
(held shape = one rest model per hypothesis, computed once, which keeps 50 hypotheses inside the
time budget). Parameters are the right-hand model's, so a left hand is fitted in the mirrored photo
(x → −x in camera space, u → 2·cx − u in pixels) and its meshes are mirrored back.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from core.geometry import project
from core.joints import mirror_x
from core.prior.choices import DEFAULT_REFINE_ITERS
from core.results import MeshParams, Refinement

#: The refinement's defaults (with DEFAULT_REFINE_ITERS = 20 in core.prior.choices), chosen on the even-numbered hgc_realworld crops and their mirrors
#: (`training/eval_refine.py`; docs/results.md "Refinement"): a short, gentle fit — larger steps fit the
#: keypoints closer (reprojection ↓) but move the 3D joints away from the truth (PA-MPJPE ↑), because a
#: 2D keypoint says nothing about depth.
DEFAULT_LR = 0.02
DEFAULT_W_PRIOR = 10.0
#: Robust scale of the reprojection term, px (residuals beyond it count ~constant).
SIGMA_PX = 20.0


def _mirror_uv(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels of camera-frame points mirrored across x = 0 (`mirror_x`) under the same K: u → 2·cx − u."""
    out = np.array(uv, np.float32, copy=True)
    out[..., 0] = 2.0 * float(K[0, 2]) - out[..., 0]
    return out


def reprojection_px(joints_cam: np.ndarray, keypoints2d: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Mean keypoint distance (px) of camera-frame joints (..., 21, 3) to the keypoints (21, 2)."""
    uv = project(np.asarray(joints_cam, np.float64), K)
    return np.linalg.norm(uv - np.asarray(keypoints2d, np.float64), axis=-1).mean(-1).astype(np.float32)


def refine_hand(prior, hand, result, iters: int = DEFAULT_REFINE_ITERS, seed: int = 0, lr: float = DEFAULT_LR,
                w_prior: float = DEFAULT_W_PRIOR, sigma_px: float = SIGMA_PX,
                progress: Callable[[int, int], None] | None = None, cancel=None) -> Refinement:
    """Refine one `HandResult` that carries parameters (`result.params`) against its keypoints.

    `prior`: the DPoser prior (`core.prior.load_prior()`; None = reprojection only), `hand`: the Anny
    hand the parameters belong to. Returns a `Refinement` (does not modify `result`)."""
    from core.prior.choices import TASK_RANGES
    from core.prior.tto import Schedule, TTOConfig, fit_2d

    p = result.params
    if p is None or result.mesh is None:
        raise ValueError("this result has no hand-model parameters to refine (needs the cascade's mesh stage)")
    if getattr(hand, "name", "") != "anny":
        raise ValueError(f"refinement needs the Anny hand model (the result's parameters are Anny's), not {hand.name}")
    t0 = time.perf_counter()
    left = result.handedness == "left"
    K = np.asarray(result.K, np.float64)
    kp = np.asarray(result.keypoints2d, np.float32)
    conf = np.clip(np.asarray(result.keypoints2d_score, np.float32), 0.0, 1.0)
    if not np.isfinite(conf).all() or conf.max() <= 0:
        conf = np.ones_like(conf)
    cam_t = np.asarray(result.mesh_cam_t, np.float32)
    go = np.concatenate([p.hyp_global_orient, p.global_orient[None]]).astype(np.float32)
    pose = np.concatenate([p.hyp_pose, p.pose[None]]).astype(np.float32)
    shape = np.concatenate([p.hyp_shape, p.shape[None]]).astype(np.float32)
    n = len(pose)
    if left:   # parameters describe the mirror image: fit there
        kp, cam_t = _mirror_uv(kp, K), mirror_x(cam_t)
    cfg = TTOConfig(prior="dposer" if prior is not None else "none", iters=int(iters), seed=seed, record=False,
                    lr=lr, w_prior=w_prior,
                    schedule=Schedule("truncated", *TASK_RANGES["fit2d"]))
    init = {"global_orient": go, "pose": pose, "shape": shape, "transl": np.tile(cam_t, (n, 1))}
    with torch.no_grad():
        before = hand.joints(torch.from_numpy(go), torch.from_numpy(pose), torch.from_numpy(shape)).numpy() + cam_t

    def callback(it, total, t, _pose):
        if progress is not None:
            progress(it + 1, total)

    fit = fit_2d(prior, hand, kp, K, init, n=n, cfg=cfg, confidence=conf, sigma_px=sigma_px, fit_shape=False,
                 callback=callback, cancel=cancel)
    with torch.no_grad():
        out = hand(torch.from_numpy(fit.global_orient), torch.from_numpy(fit.pose), torch.from_numpy(fit.shape))
    verts, joints = out.vertices.numpy(), out.joints.numpy()
    err_before = reprojection_px(before, kp, K)
    err_after = reprojection_px(joints + fit.transl[:, None, :], kp, K)
    transl = fit.transl.copy()
    if left:
        verts, joints, transl = mirror_x(verts), mirror_x(joints), mirror_x(transl)
    params = MeshParams(fit.global_orient[:-1], fit.pose[:-1], fit.shape[:-1],
                        fit.global_orient[-1], fit.pose[-1], fit.shape[-1],
                        hyp_vertices=verts[:-1], vertices=verts[-1], hyp_joints=joints[:-1], joints=joints[-1])
    return Refinement(params=params, hyp_transl=transl[:-1], transl=transl[-1],
                      reprojection_px_before=err_before.astype(np.float32),
                      reprojection_px_after=err_after.astype(np.float32), iters=int(iters),
                      seconds=time.perf_counter() - t0)
