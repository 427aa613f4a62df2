"""Test-time optimisation with the DPoser prior (paper 003 Alg. 1, supp. E/G; DESIGN §7).

Every iteration picks t from a schedule, perturbs the current (normalised) pose z → z_t = α z + σ ε,
denoises it in one step without gradient (ẑ0 = (z_t − σ ε_φ(z_t, t)) / α) and adds
w_prior · w_t · ‖z − sg(ẑ0)‖² to the task loss, w_t = ½·sqrt(1 + α/σ). The prior step is one no-grad
MLP evaluation on the S hypotheses, so it costs little next to the hand-model forward/backward.

Tasks (S hypotheses in one batch; hidden parts start from noise, one draw per hypothesis):
- `complete_pose`: pose completion in parameter space — visible pose dims are held at the observed
  values, the dims that move hidden joints are free.
- `fit_joints`: inverse kinematics / joint completion from partial or noisy 3D joints of any hand:
  global orientation, translation, global scale and shape are fitted together with the pose; the loss
  is on visible joints only.
- `fit_2d`: refine a result against 2D keypoints (Geman-McClure reprojection + shape L2).

Baselines in the same loop: `prior="none"` (task loss only) and `prior="l2"` (‖z‖², the distance
from the mean pose in normalised units).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.errors import raise_if_cancelled
from core.hand.pose_layout import POSE_DIM, pose_dims_moving_joint
from core.joints import NUM_JOINTS
from core.prior.choices import DEFAULT_HYPOTHESES, DEFAULT_ITERS, PRIORS, SCHEDULES, TASK_RANGES
from core.prior.fastjoints import FixedShapeJoints

from core.prior.schedule import T_EPS, Schedule  # noqa: E402,F401 - defined torch-free, used here


@dataclass
class TTOConfig:
    prior: str = PRIORS[0]
    schedule: Schedule = field(default_factory=Schedule)
    iters: int = DEFAULT_ITERS
    lr: float = 0.1            # Adam step on the normalised pose; other variables scale from it
    w_prior: float = 1.0       # weight of the DPoser term
    w_l2: float = 0.02         # weight of the L2 baseline
    w_shape: float = 0.1       # shape regulariser (fit_joints / fit_2d)
    init_noise: float = 1.0    # std (normalised units) of the noise that starts hidden dims
    seed: int = 0
    record: bool = True        # keep the per-iteration trajectory

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior '{self.prior}' (choose from {', '.join(PRIORS)})")
        if self.iters < 1:
            raise ValueError("iters must be ≥ 1")


@dataclass
class TTOResult:
    """S hypotheses. Poses in radians (S,45); joints (S,21,3) metres in the observation's frame."""

    pose: np.ndarray
    global_orient: np.ndarray
    shape: np.ndarray
    scale: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    t_schedule: np.ndarray
    free_dims: np.ndarray                       # (45,) bool: dims that started from noise
    traj_pose: np.ndarray | None = None         # (iters+1, S, 45): initial pose, then after each step
    traj_joints: np.ndarray | None = None       # (iters+1, S, 21, 3) or None
    loss: np.ndarray | None = None              # (iters,) total loss per iteration
    seconds: float = 0.0

    def vertices(self, hand) -> np.ndarray:
        """Meshes of the hypotheses (S,V,3) in the observation's frame."""
        with torch.no_grad():
            out = hand(torch.from_numpy(self.global_orient).float(), torch.from_numpy(self.pose).float(),
                       torch.from_numpy(self.shape).float())
        v = out.vertices.numpy() * self.scale[:, None, None] + self.transl[:, None, :]
        return v.astype(np.float32)


# -- helpers ---------------------------------------------------------------------------------------
def free_dims_from_hidden(hidden: np.ndarray) -> np.ndarray:
    """(21,) bool hidden-joint mask → (45,) bool mask of the pose dims that move hidden joints."""
    free = np.zeros(POSE_DIM, dtype=bool)
    for j in np.flatnonzero(np.asarray(hidden, bool)):
        free[pose_dims_moving_joint(int(j))] = True
    return free


class _PriorTerm:
    """The regulariser of one run: DPoser (Alg. 1 lines 3-6), L2 or none."""

    def __init__(self, prior, cfg: TTOConfig, n: int) -> None:
        self.prior = prior
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.n = n

    def __call__(self, z: torch.Tensor, t: float) -> torch.Tensor:
        cfg = self.cfg
        if cfg.prior == "none":
            return z.new_zeros(())
        if cfg.prior == "l2":
            return cfg.w_l2 * (z ** 2).sum(-1).sum()
        sde = self.prior.sde
        eps = torch.randn(z.shape, generator=self.gen)
        a, s = sde.alpha_sigma(t)
        with torch.no_grad():
            z_t = a * z.detach() + s * eps
            z0_hat = self.prior.denoise(z_t, t)
        w_t = sde.dposer_weight(t)
        return cfg.w_prior * w_t * ((z - z0_hat) ** 2).sum(-1).sum()

    @torch.no_grad()
    def grad(self, z: torch.Tensor, t: float) -> tuple[float, torch.Tensor | None]:
        """(value, d value / d z) of the same term, computed in closed form: the DPoser term's gradient
        is 2·w·w_t·(z − ẑ0) because ẑ0 is stop-gradient, so no autograd graph is built for it."""
        cfg = self.cfg
        if cfg.prior == "none":
            return 0.0, None
        if cfg.prior == "l2":
            return float(cfg.w_l2 * (z ** 2).sum()), (2 * cfg.w_l2) * z
        sde = self.prior.sde
        eps = torch.randn(z.shape, generator=self.gen)
        a, s = sde.alpha_sigma(t)
        z_t = a * z + s * eps
        z0_hat = self.prior.denoise(z_t, t)
        k = cfg.w_prior * sde.dposer_weight(t)
        diff = z - z0_hat
        return float(k * (diff * diff).sum()), (2 * k) * diff


def _add_grad(param: torch.Tensor, g: torch.Tensor | None) -> None:
    if g is None:
        return
    if param.grad is None:
        param.grad = g.clone()
    else:
        param.grad.add_(g)


def _lr_factor(it: int, n: int) -> float:
    """Cosine decay to 10% over the run (keeps Adam's final jitter small)."""
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * it / max(1, n - 1)))


def _norm_stats(prior):
    if prior is not None:
        return prior.mean.detach().clone(), prior.std.detach().clone()
    from core.pose_sampler import sample_poses

    p = torch.from_numpy(sample_poses(20000, 7))
    return p.mean(0), p.std(0).clamp_min(1e-3)


def _init_z(s: int, free: np.ndarray, z_obs: torch.Tensor, cfg: TTOConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed)
    noise = torch.randn(s, POSE_DIM, generator=g) * cfg.init_noise
    free_t = torch.from_numpy(free)
    return torch.where(free_t, noise, z_obs.expand(s, -1)).clone()


# -- pose completion in parameter space -----------------------------------------------------------------
def complete_pose(prior, observed_pose: np.ndarray, hidden: np.ndarray | None = None, n: int = DEFAULT_HYPOTHESES,
                  cfg: TTOConfig | None = None, free_dims: np.ndarray | None = None, hand=None,
                  global_orient: np.ndarray | None = None, shape: np.ndarray | None = None,
                  callback: Callable | None = None, cancel=None) -> TTOResult:
    """Complete a pose (45,) radians: visible dims fixed, free dims (from `hidden` joints or
    `free_dims`) optimised under the prior from noise. `hand` (optional) gives joints and trajectory joints."""
    import time

    cfg = cfg or TTOConfig()
    t0 = time.perf_counter()
    if free_dims is None:
        if hidden is None:
            raise ValueError("give either hidden joints or free_dims")
        free_dims = free_dims_from_hidden(hidden)
    free_dims = np.asarray(free_dims, bool)
    mean, std = _norm_stats(prior)
    z_obs = ((torch.as_tensor(observed_pose, dtype=torch.float32).reshape(1, -1)) - mean) / std
    z = _init_z(n, free_dims, z_obs, cfg).requires_grad_(True)
    free_t = torch.from_numpy(free_dims)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    term = _PriorTerm(prior, cfg, n)
    ts = cfg.schedule.times(cfg.iters, cfg.seed)
    traj = [z.detach().clone()] if cfg.record else None
    losses = np.zeros(cfg.iters)
    for it, t in enumerate(ts):
        raise_if_cancelled(cancel, "optimisation cancelled")
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(it, cfg.iters)
        zf = torch.where(free_t, z.detach(), z_obs)
        value, g = term.grad(zf, float(t))
        opt.zero_grad(set_to_none=True)
        if g is not None:  # only the prior acts on the free dims; the visible ones are held
            z.grad = torch.where(free_t, g, torch.zeros_like(g))
            opt.step()
        losses[it] = value
        if traj is not None:
            traj.append(torch.where(free_t, z, z_obs).detach().clone())
        if callback is not None:
            callback(it, cfg.iters, float(t), (torch.where(free_t, z, z_obs).detach() * std + mean).numpy())
    zf = torch.where(free_t, z, z_obs).detach()
    pose = (zf * std + mean).numpy().astype(np.float32)
    go = np.zeros((n, 3), np.float32) if global_orient is None else np.broadcast_to(
        np.asarray(global_orient, np.float32).reshape(-1, 3), (n, 3)).copy()
    traj_pose = None if traj is None else (torch.stack(traj) * std + mean).numpy().astype(np.float32)
    joints = np.zeros((n, NUM_JOINTS, 3), np.float32)
    traj_joints = None
    sh = None
    if hand is not None:
        sh = hand.neutral_shape(n) if shape is None else torch.as_tensor(
            np.broadcast_to(np.asarray(shape, np.float32).reshape(1, -1), (n, hand.shape_dim)).copy())
        with torch.no_grad():
            joints = hand.joints(torch.from_numpy(go), torch.from_numpy(pose), sh).numpy()
            if traj_pose is not None:
                k = traj_pose.shape[0]
                tj = hand.joints(torch.from_numpy(go).repeat(k, 1), torch.from_numpy(traj_pose.reshape(k * n, -1)),
                                 sh.repeat(k, 1))
                traj_joints = tj.numpy().reshape(k, n, NUM_JOINTS, 3)
    shape_np = (sh.numpy() if sh is not None else np.zeros((n, 0))).astype(np.float32)
    return TTOResult(pose=pose, global_orient=go, shape=shape_np, scale=np.ones(n, np.float32),
                     transl=np.zeros((n, 3), np.float32), joints=joints.astype(np.float32), t_schedule=ts,
                     free_dims=free_dims, traj_pose=traj_pose, traj_joints=traj_joints, loss=losses,
                     seconds=time.perf_counter() - t0)


# -- inverse kinematics / completion from joints ----------------------------------------------------------
PALM_JOINTS = (0, 1, 5, 9, 13, 17)  # not moved by any articulated pose dim


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: (s, R, t) minimising ‖s R src + t − dst‖² over points (P,3); rotation only (no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if len(src) < 3:
        return 1.0, np.eye(3), dst.mean(0) - src.mean(0)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    x, y = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(y.T @ x)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    r = u @ fix @ vt
    var = (x ** 2).sum()
    s = float((sv * np.diag(fix)).sum() / max(var, 1e-12))
    if not np.isfinite(s) or s <= 0:
        s = 1.0
    return s, r, mu_d - s * r @ mu_s


@dataclass
class _Fit:
    """What `_optimise` needs of one fitting task: the normalised pose `z` (with `mean`, `std`), the
    optimiser over it and the task's other variables, `joints()` → (S,21,3) and `data_loss(joints)`; the
    shape `shp` (regularised towards `neutral` and kept in the model's range while it needs a gradient)."""

    z: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    opt: torch.optim.Optimizer
    joints: Callable[[], torch.Tensor]
    data_loss: Callable[[torch.Tensor], torch.Tensor]
    shp: torch.Tensor
    neutral: torch.Tensor
    shape_weight: float


_SHAPE_LO = torch.tensor([0.0] * 6 + [-1.0] * 4)
_SHAPE_HI = torch.ones(10)


def _optimise(fit: _Fit, prior, cfg: TTOConfig, n: int, before_step: Callable[[int], None] | None = None,
              callback: Callable | None = None, cancel=None) -> tuple[np.ndarray, np.ndarray, torch.Tensor,
                                                                      list | None, list | None]:
    """The loop `fit_joints` and `fit_2d` share: per iteration the cosine learning rate, the task loss
    (+ the shape regulariser while the shape is fitted), the prior's closed-form gradient at the
    schedule's t, an Adam step and the shape clamp. `before_step(it)` runs first in each iteration.
    Returns (t schedule, loss per iteration, final joints, pose trajectory, joint trajectory)."""
    z, std, mean = fit.z, fit.std, fit.mean
    term = _PriorTerm(prior, cfg, n)
    ts = cfg.schedule.times(cfg.iters, cfg.seed)
    losses = np.zeros(cfg.iters)
    traj_p, traj_j = ([], []) if cfg.record else (None, None)
    for it, t in enumerate(ts):
        raise_if_cancelled(cancel, "optimisation cancelled")
        if before_step is not None:
            before_step(it)
        for g in fit.opt.param_groups:
            g["lr"] = g["base"] * _lr_factor(it, cfg.iters)
        j = fit.joints()
        loss = fit.data_loss(j)
        fitting_shape = fit.shp.requires_grad
        if fitting_shape:
            loss = loss + fit.shape_weight * ((fit.shp - fit.neutral) ** 2).sum()
        if traj_p is not None:
            traj_p.append((z.detach() * std + mean).clone())
            traj_j.append(j.detach().clone())
        fit.opt.zero_grad(set_to_none=True)
        loss.backward()
        value, g = term.grad(z.detach(), float(t))
        _add_grad(z, g)
        fit.opt.step()
        loss = loss.detach() + value
        if fitting_shape:
            with torch.no_grad():
                fit.shp.copy_(torch.maximum(torch.minimum(fit.shp, _SHAPE_HI), _SHAPE_LO))
        losses[it] = float(loss.detach())
        if callback is not None:
            callback(it, cfg.iters, float(t), (z.detach() * std + mean).numpy())
    with torch.no_grad():
        j = fit.joints()
    if traj_p is not None:
        traj_p.append(z.detach() * std + mean)
        traj_j.append(j.clone())
    return ts, losses, j, traj_p, traj_j


def _result(fit: _Fit, go: torch.Tensor, shape: torch.Tensor, scale: np.ndarray, transl: torch.Tensor,
            run: tuple, free: np.ndarray, t0: float) -> TTOResult:
    import time

    ts, losses, j, traj_p, traj_j = run
    pose = fit.z.detach() * fit.std + fit.mean
    return TTOResult(pose=pose.numpy().astype(np.float32), global_orient=go.detach().numpy().astype(np.float32),
                     shape=shape.detach().numpy().astype(np.float32), scale=scale.astype(np.float32),
                     transl=transl.detach().numpy().astype(np.float32), joints=j.numpy().astype(np.float32),
                     t_schedule=ts, free_dims=free,
                     traj_pose=None if traj_p is None else torch.stack(traj_p).numpy(),
                     traj_joints=None if traj_j is None else torch.stack(traj_j).numpy(),
                     loss=losses, seconds=time.perf_counter() - t0)


def fit_joints(prior, hand, observed: np.ndarray, hidden: np.ndarray | None = None, n: int = DEFAULT_HYPOTHESES,
               cfg: TTOConfig | None = None, fit_shape: bool = True, fit_scale: bool = True,
               shape: np.ndarray | None = None, noise_std: float = 0.01, shape_frac: float = 0.3,
               global_orient: np.ndarray | None = None, transl: np.ndarray | None = None,
               callback: Callable | None = None, cancel=None) -> TTOResult:
    """Inverse kinematics from 3D joints (21,3) metres of a right hand in any frame, any size.

    Loss on visible joints only (Σ ‖J − J_obs‖² / noise_std²); global orientation, translation, a global
    scale (when `fit_scale`) and the 10 shape parameters (when `fit_shape`, L2 to neutral, during the
    first `shape_frac` of the iterations, then held) are fitted with the pose. A given `global_orient`
    / `transl` / `shape` is held fixed (the paper's hand-IK protocol: pose only, known shape). Dims that move hidden joints start from noise (one draw per hypothesis)."""
    import time

    from scipy.spatial.transform import Rotation

    cfg = cfg or TTOConfig()
    t0 = time.perf_counter()
    observed = np.asarray(observed, np.float32).reshape(NUM_JOINTS, 3)
    hidden = np.zeros(NUM_JOINTS, bool) if hidden is None else np.asarray(hidden, bool).reshape(NUM_JOINTS)
    visible = ~hidden
    if visible.sum() == 0:
        raise ValueError("all joints are hidden: nothing to fit")
    free = free_dims_from_hidden(hidden)
    mean, std = _norm_stats(prior)
    z = _init_z(n, free, torch.zeros(1, POSE_DIM), cfg)
    neutral = hand.neutral_shape(1)
    sh0 = neutral if shape is None else torch.as_tensor(np.asarray(shape, np.float32).reshape(1, -1))
    # Initial similarity transform from the palm joints (pose-independent) or all visible joints.
    with torch.no_grad():
        rest = hand.joints(None, mean[None], sh0)[0].numpy()
    vis_idx = np.flatnonzero(visible)
    palm = [j for j in PALM_JOINTS if visible[j]]
    use = palm if len(palm) >= 3 else list(vis_idx)
    s0, r0, tr0 = similarity_fit(rest[use], observed[use])
    if not fit_scale:
        s0 = 1.0
        tr0 = observed[use].mean(0) - r0 @ rest[use].mean(0)
    if global_orient is not None and fit_scale and transl is None:
        from scipy.spatial.transform import Rotation as _R
        rk = _R.from_rotvec(np.asarray(global_orient, np.float64).reshape(3)).as_matrix()
        a = rest[use] @ rk.T
        ac, oc = a - a.mean(0), observed[use] - observed[use].mean(0)
        s0 = float((ac * oc).sum() / max((ac ** 2).sum(), 1e-12)) if len(use) > 1 else 1.0
        s0 = s0 if np.isfinite(s0) and s0 > 0 else 1.0
    fit_go, fit_tr = global_orient is None, transl is None
    if not fit_go:
        r0 = Rotation.from_rotvec(np.asarray(global_orient, np.float64).reshape(3)).as_matrix()
    if not fit_tr:
        tr0 = np.asarray(transl, np.float64).reshape(3)
    elif not fit_go:  # known rotation: translation (and scale) by least squares on the used joints
        s0, tr0 = (s0, observed[use].mean(0) - s0 * r0 @ rest[use].mean(0))
    go = torch.from_numpy(np.tile(Rotation.from_matrix(r0).as_rotvec(), (n, 1))).float()
    log_s = torch.full((n, 1), float(np.log(s0)))
    transl = torch.from_numpy(np.tile(tr0, (n, 1))).float()
    shp = sh0.reshape(1, -1).clone()  # one hand identity shared by the S hypotheses
    z.requires_grad_(True)
    go.requires_grad_(fit_go)
    log_s.requires_grad_(fit_scale)
    transl.requires_grad_(fit_tr)
    shp.requires_grad_(fit_shape)
    lr = cfg.lr
    groups = [{"params": [z], "lr": lr, "base": lr}]
    if fit_go:
        groups.append({"params": [go], "lr": 0.2 * lr, "base": 0.2 * lr})
    if fit_tr:
        groups.append({"params": [transl], "lr": 0.02 * lr, "base": 0.02 * lr})
    if fit_scale:
        groups.append({"params": [log_s], "lr": 0.1 * lr, "base": 0.1 * lr})
    if fit_shape:
        groups.append({"params": [shp], "lr": 0.2 * lr, "base": 0.2 * lr})
    opt = torch.optim.Adam(groups)
    obs_t = torch.from_numpy(observed)
    vis_t = torch.from_numpy(visible.astype(np.float32))

    # Shape is fitted during the first `shape_iters` iterations, then held (its rest model cached).
    n_shape = int(round(shape_frac * cfg.iters)) if fit_shape else 0
    fixed = None if n_shape > 0 else FixedShapeJoints(hand, shp, n)

    def model_joints():
        pose = z * std + mean
        jj = FixedShapeJoints.shared_shape_joints(hand, go, pose, shp) if fixed is None else fixed(go, pose)
        return torch.exp(log_s)[:, :, None] * jj + transl[:, None, :]

    def hold_shape(it: int) -> None:
        nonlocal fixed
        if fixed is None and it >= n_shape:
            shp.requires_grad_(False)
            fixed = FixedShapeJoints(hand, shp, n)

    # The shape is one row shared by the S hypotheses: its regulariser counts S times, as for S rows.
    fit = _Fit(z, mean, std, opt, model_joints,
               lambda j: ((((j - obs_t) ** 2).sum(-1) * vis_t).sum(-1) / noise_std ** 2).sum(),
               shp, neutral, n * cfg.w_shape)
    run = _optimise(fit, prior, cfg, n, hold_shape, callback, cancel)
    return _result(fit, go, shp.expand(n, -1), torch.exp(log_s).detach().numpy()[:, 0], transl, run, free, t0)


# -- 2D fitting ---------------------------------------------------------------------------------------------
def geman_mcclure(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """ρ(r) = σ² r² / (σ² + r²), applied to squared residuals."""
    return sigma ** 2 * sq_residual / (sigma ** 2 + sq_residual)


def fit_2d(prior, hand, keypoints2d: np.ndarray, K: np.ndarray, init: dict, n: int = DEFAULT_HYPOTHESES,
           cfg: TTOConfig | None = None, confidence: np.ndarray | None = None, sigma_px: float = 20.0,
           hidden: np.ndarray | None = None, fit_shape: bool = True,
           callback: Callable | None = None, cancel=None) -> TTOResult:
    """Refine (global_orient, pose, shape, transl) — camera frame, metres — against 2D keypoints (21,2) px.

    `init` holds `global_orient` (3,)/(S,3), `pose` (45,)/(S,45), `transl` (3,)/(S,3) and optionally
    `shape`. Loss: Σ_j conf_j ρ_GM(‖Π(J_j) − k_j‖) + w_shape‖β − β_neutral‖² + prior (default schedule
    [0.12, 0.08]). Joints listed in `hidden` get zero confidence and their dims start from noise."""
    import time

    cfg = cfg or TTOConfig(schedule=Schedule("truncated", *TASK_RANGES["fit2d"]))
    t0 = time.perf_counter()
    kp = torch.as_tensor(np.asarray(keypoints2d, np.float32).reshape(NUM_JOINTS, 2))
    Kt = torch.as_tensor(np.asarray(K, np.float32).reshape(3, 3))
    conf = (np.ones(NUM_JOINTS, np.float32) if confidence is None
            else np.asarray(confidence, np.float32).reshape(NUM_JOINTS).copy())
    hidden = np.zeros(NUM_JOINTS, bool) if hidden is None else np.asarray(hidden, bool).reshape(NUM_JOINTS)
    conf[hidden] = 0.0
    conf_t = torch.from_numpy(conf)
    mean, std = _norm_stats(prior)

    def batch(x, d):
        return torch.as_tensor(np.broadcast_to(np.asarray(x, np.float32).reshape(-1, d), (n, d)).copy())

    free = free_dims_from_hidden(hidden)
    z_init = (batch(init["pose"], POSE_DIM) - mean) / std
    g = torch.Generator().manual_seed(cfg.seed)
    noise = torch.randn(n, POSE_DIM, generator=g) * cfg.init_noise
    z = torch.where(torch.from_numpy(free), noise, z_init).clone().requires_grad_(True)
    go = batch(init["global_orient"], 3).requires_grad_(True)
    transl = batch(init["transl"], 3).requires_grad_(True)
    neutral = hand.neutral_shape(1)
    shp = (batch(init["shape"], hand.shape_dim) if init.get("shape") is not None
           else neutral.expand(n, -1).clone()).requires_grad_(fit_shape)
    lr = cfg.lr
    groups = [{"params": [z], "lr": lr, "base": lr}, {"params": [go], "lr": 0.1 * lr, "base": 0.1 * lr},
              {"params": [transl], "lr": 0.01 * lr, "base": 0.01 * lr}]
    if fit_shape:
        groups.append({"params": [shp], "lr": 0.2 * lr, "base": 0.2 * lr})
    opt = torch.optim.Adam(groups)

    # Shape held: its rest model is cached once (FixedShapeJoints), the loop replays the pose part only.
    fixed = None if fit_shape else FixedShapeJoints(hand, shp.detach(), n)

    def joints3d():
        pose = z * std + mean
        jj = hand.joints(go, pose, shp) if fixed is None else fixed(go, pose)
        return jj + transl[:, None, :]

    def reprojection(j: torch.Tensor) -> torch.Tensor:
        uvw = j @ Kt.T
        uv = uvw[..., :2] / uvw[..., 2:].clamp_min(1e-4)
        return (geman_mcclure(((uv - kp) ** 2).sum(-1), sigma_px) * conf_t).sum() / sigma_px ** 2 * 100

    fit = _Fit(z, mean, std, opt, joints3d, reprojection, shp, neutral, cfg.w_shape)
    run = _optimise(fit, prior, cfg, n, None, callback, cancel)
    return _result(fit, go, shp, np.ones(n, np.float32), transl, run, free, t0)
