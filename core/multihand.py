"""Several hands of one photo in one engine call (issue 26): stage 1 for all hands as one batch, then
stage 2 for all hands as one batch.

A photo's hands share nothing but the image, yet running them one after the other pays every DDIM
step's Python and framework overhead once per hand, and small matmuls use a CPU poorly. Here the B
hands' N hypotheses go through each network as one batch of B·N rows (hand-major: rows i·N … i·N+N−1
are hand i), and stage 2's image context holds the B crops (the LDM folds each hand's queries against
its own crop's keys, `core.nets.mesh_ldm`). Every hand comes out exactly as the one-hand code gives it
(same fields, same axes: root-relative, photo camera axes, left hands mirrored in and back out); only
the random draws differ (hand i takes the i-th slice of one draw of the whole batch). With one hand
the batch is the one-hand call, draw for draw (tests/test_pipeline.py checks it).

`core.pipeline.ImagePipeline.estimate` uses these when it is given more than one hand.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.joints import NUM_JOINTS, mirror_faces, mirror_x

if TYPE_CHECKING:
    from core.cascade import MeshStage
    from core.detector import Detection
    from core.results import MeshResult, Stage1Result
    from core.stage1 import Stage1Estimator

ProgressFn = Callable[[int, int], None]


@torch.no_grad()
def lift_hands(stage1: Stage1Estimator, detections: Sequence[Detection], K: np.ndarray, n: int = 50,
               steps: int = 10, seed: int = 0, eta: float | None = None, aggregation: str = "mean",
               progress: ProgressFn | None = None, cancel=None) -> list[Stage1Result]:
    """Stage 1 of every hand in one batch → one `Stage1Result` per detection (as `run_detection` gives)."""
    from core.detector import mirror_K, mirror_keypoints
    from core.nets.joint_diffusion import JOINT_SCALE
    from core.results import Stage1Result
    from core.stage1 import aggregate, pixels_to_rays, solve_cam_t

    t0 = time.perf_counter()
    lifter = stage1.lifter
    K = np.asarray(K, np.float64)
    rays, mirrored = [], []
    for det in detections:
        left = det.handedness == "left"
        kp, Km = np.asarray(det.keypoints2d, np.float64), K
        if left:
            kp, Km = mirror_keypoints(kp, det.image_size[0]), mirror_K(K, det.image_size[0])
        rays.append(pixels_to_rays(kp, Km))
        mirrored.append(left)
    b = len(detections)
    c2d, ctx, _ = lifter.condition(torch.as_tensor(np.asarray(rays, np.float32)), steps=steps)
    c2d, ctx = lifter.per_hypothesis(c2d, ctx, n, seed)
    res = lifter.diffusion.ddim_sample(lifter.net, (b * n, NUM_JOINTS, 3), steps=steps,
                                       eta=lifter.eta if eta is None else eta, seed=seed, device=lifter.device,
                                       record=True, progress=progress, cancel=cancel,
                                       c2d=c2d.to(lifter.device), ctx=ctx.to(lifter.device))
    t_lift = time.perf_counter() - t0

    def metres(x: torch.Tensor, i: int) -> np.ndarray:   # hand i's rows → metres, mirrored back, root-relative
        x = x.reshape(*x.shape[:-3], b, n, NUM_JOINTS, 3)[..., i, :, :, :]
        x = x.cpu().numpy().astype(np.float64) * JOINT_SCALE
        x = mirror_x(x) if mirrored[i] else x
        return x - x[..., :1, :]

    out = []
    for i, det in enumerate(detections):
        t1 = time.perf_counter()
        hyps = metres(res.x0, i)
        cam_t = solve_cam_t(hyps.mean(0), det.keypoints2d, K, det.scores)
        joints = aggregate(hyps, aggregation, det.keypoints2d, K, cam_t)
        if aggregation != "mean":
            cam_t = solve_cam_t(joints, det.keypoints2d, K, det.scores)
        out.append(Stage1Result(
            keypoints2d=det.keypoints2d, keypoints2d_score=det.scores, hand_score=det.score,
            handedness=det.handedness, K=K, box=det.box, joint_hypotheses=hyps, joints=joints, cam_t=cam_t,
            trajectory_xt=metres(res.xs, i), trajectory_x0=metres(res.x0_preds, i),
            timesteps=np.array(res.timesteps),
            timings={"lift_s": t_lift / b, "batch_lift_s": t_lift,
                     "total_s": t_lift / b + time.perf_counter() - t1},
            world_landmarks_mediapipe=det.world_landmarks))
    return out


@torch.no_grad()
def mesh_hands(mesh: MeshStage, image: np.ndarray, stage1_results: Sequence[Stage1Result], steps: int = 10,
               seed: int = 0, eta: float = 0.0, paper_samples: int | None = None,
               progress: ProgressFn | None = None, cancel=None) -> list[MeshResult]:
    """Stage 2 of every hand in one batch (the B crops' features and keys once, B·(N+M) latents through the
    LDM, one decoding pass) → one `MeshResult` per hand (as `MeshStage.run_hand` gives)."""
    from core.detector import crop_box
    from core.nets.image_encoder import crop_image, to_tensor
    from core.nets.joint_diffusion import JOINT_SCALE
    from core.results import MeshResult
    from core.stage1 import solve_cam_t

    t0 = time.perf_counter()
    b = len(stage1_results)
    lefts = [s1.handedness == "left" for s1 in stage1_results]
    crops = torch.cat([to_tensor(crop_image(image, crop_box(s1.keypoints2d), mesh.encoder.config.res, mirror=left))
                       for s1, left in zip(stage1_results, lefts)])
    n = stage1_results[0].joint_hypotheses.shape[0]
    m = n if paper_samples is None else int(paper_samples)
    conds = []
    for s1, left in zip(stage1_results, lefts):
        hyps = np.asarray(mirror_x(s1.joint_hypotheses) if left else s1.joint_hypotheses, np.float32)
        if hyps.shape[0] != n:
            raise ValueError("every hand of one batch needs the same number of hypotheses")
        cond = hyps / JOINT_SCALE
        if m > 0:
            cond = np.concatenate([cond, np.repeat(hyps.mean(0, keepdims=True) / JOINT_SCALE, m, 0)])
        conds.append(cond)
    ctx = mesh.context(crops)
    rows = n + m
    t1 = time.perf_counter()
    cfg = mesh.ldm.config
    res = mesh.diffusion.ddim_sample(mesh.ldm, (b * rows, cfg.tokens * cfg.latent_channels), steps=steps, eta=eta,
                                     seed=seed, device=mesh.device, record=True, progress=progress, cancel=cancel,
                                     joints=torch.from_numpy(np.concatenate(conds)).to(mesh.device), context=ctx)
    t2 = time.perf_counter()
    z = mesh.ae.denormalise_latent(res.x0).reshape(b, rows, -1)
    z_cloud = z[:, :n]
    z_mean = (z[:, n:] if m > 0 else z_cloud).mean(1, keepdim=True)
    v, j = mesh.decode_latents(torch.cat([z_cloud, z_mean], 1).reshape(b * (n + 1), -1), cancel=cancel)
    v, j = v.reshape(b, n + 1, *v.shape[1:]), j.reshape(b, n + 1, *j.shape[1:])
    t3 = time.perf_counter()
    params = [mesh.mesh_params(z_cloud[i], z_mean[i, 0]) for i in range(b)]
    t4 = time.perf_counter()
    def cloud_rows(x: torch.Tensor | None) -> np.ndarray | None:   # (S, B·rows, D) → (S, B, N, D): the cloud's
        return None if x is None else x.reshape(x.shape[0], b, rows, -1)[:, :, :n].numpy()

    xs, x0s = cloud_rows(res.xs), cloud_rows(res.x0_preds)
    timings = {"features_s": (t1 - t0) / b, "ldm_s": (t2 - t1) / b, "decode_s": (t3 - t2) / b,
               "params_s": (t4 - t3) / b, "stage2_s": (t4 - t0) / b, "batch_stage2_s": t4 - t0}
    out = []
    for i, (s1, left) in enumerate(zip(stage1_results, lefts)):
        vh, jh, vi, ji = v[i, :n], j[i, :n], v[i, n], j[i, n]
        faces, pi = mesh.faces, params[i]
        if left:
            vh, jh, vi, ji = mirror_x(vh), mirror_x(jh), mirror_x(vi), mirror_x(ji)
            faces = mirror_faces(faces)
            pi = None if pi is None else pi.mirrored()
        cam_t = solve_cam_t(ji, s1.keypoints2d, s1.K, s1.keypoints2d_score)
        out.append(MeshResult(vertex_hypotheses=vh, vertices=vi, faces=faces, mesh_joint_hypotheses=jh,
                              mesh_joints=ji, mesh_cam_t=cam_t,
                              trajectory_latents_xt=None if xs is None else xs[:, i],
                              trajectory_latents_x0=None if x0s is None else x0s[:, i],
                              mesh_timesteps=np.array(res.timesteps), params=pi, timings=dict(timings)))
    return out
