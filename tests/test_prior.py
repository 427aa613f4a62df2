"""DPoser-hand prior and its test-time optimisation engine (core/prior). No real data needed."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from core.errors import Cancelled
from core.geometry import project
from core.hand.pose_layout import POSE_DIM, pose_dims_moving_joint
from core.joints import FINGERTIPS
from core.prior.model import DPoserPrior
from core.prior.sde import SubVPSDE
from core.prior.tto import (Schedule, TTOConfig, complete_pose, fit_2d, fit_joints, free_dims_from_hidden,
                            similarity_fit)


# -- SDE, weights, schedules ------------------------------------------------------------------------------
def test_subvp_coefficients_match_the_closed_form():
    sde = SubVPSDE(0.1, 20.0)
    for t in (1e-3, 0.05, 0.15, 0.5, 1.0):
        a = math.exp(-0.25 * t * t * 19.9 - 0.5 * t * 0.1)
        assert sde.alpha(t) == pytest.approx(a, rel=1e-9)
        assert sde.sigma(t) == pytest.approx(1 - a * a, rel=1e-9)
        assert sde.dposer_weight(t) == pytest.approx(0.5 * math.sqrt(1 + a / (1 - a * a)), rel=1e-9)
    tt = torch.tensor([0.1, 0.9])
    assert torch.allclose(sde.alpha(tt), torch.tensor([sde.alpha(0.1), sde.alpha(0.9)]))
    assert sde.alpha(0.0) == 1.0 and sde.sigma(0.0) == 0.0
    assert sde.sigma(1.0) > 0.99  # (nearly) pure noise at t = 1


def test_truncated_schedule_is_paper_eq_11():
    s = Schedule("truncated", 0.15, 0.05)
    t = s.times(11)
    assert t[0] == pytest.approx(0.15) and t[-1] == pytest.approx(0.05)
    assert np.allclose(np.diff(t), -0.01)


def test_other_schedules():
    u = Schedule("uniform").times(5)
    assert u[0] == pytest.approx(1.0) and u[-1] == pytest.approx(1e-3)   # [1, 0], t=0 clipped to ε
    assert np.all(Schedule("fixed", t_fixed=0.1).times(7) == 0.1)
    r1, r2 = Schedule("random").times(50, seed=3), Schedule("random").times(50, seed=3)
    assert np.array_equal(r1, r2) and r1.min() >= 1e-3 and r1.max() <= 1 and r1.std() > 0.1
    with pytest.raises(ValueError):
        Schedule("cosine")
    with pytest.raises(ValueError):
        Schedule("truncated", 0.05, 0.15)


def test_free_dims_from_hidden_joints():
    tips = np.zeros(21, bool)
    tips[list(FINGERTIPS)] = True
    free = free_dims_from_hidden(tips)
    assert free.sum() == 15                     # the five distal bones
    for j in FINGERTIPS:
        assert free[pose_dims_moving_joint(j)].all()
    palm = np.zeros(21, bool)
    palm[[0, 1, 5, 9, 13, 17]] = True
    assert free_dims_from_hidden(palm).sum() == 0   # the palm is not moved by articulated dims


def test_similarity_fit_recovers_a_transform():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    src = rng.normal(size=(8, 3))
    r = Rotation.random(random_state=1).as_matrix()
    dst = 1.3 * src @ r.T + np.array([0.1, -0.2, 0.5])
    s, r_fit, t = similarity_fit(src, dst)
    assert s == pytest.approx(1.3, rel=1e-6)
    assert np.allclose(r_fit, r, atol=1e-6) and np.allclose(t, [0.1, -0.2, 0.5], atol=1e-6)


# -- network ------------------------------------------------------------------------------------------------
def test_fast_eps_equals_the_module_forward():
    torch.manual_seed(0)
    prior = DPoserPrior(torch.zeros(POSE_DIM), torch.ones(POSE_DIM), width=64, blocks=2).eval()
    z = torch.randn(7, POSE_DIM)
    for t in (0.05, 0.3, 0.9):
        assert torch.allclose(prior.fast_eps(z, t), prior.eps(z, t), atol=1e-4)
    x0 = prior.denoise(z, 0.2)
    a, s = prior.sde.alpha_sigma(0.2)
    assert torch.allclose(x0, (z - s * prior.eps(z, 0.2)) / a, atol=1e-5)


class PointPrior:
    """An exact denoiser for a data distribution concentrated at one pose `c` (normalised space):
    ε*(x_t) = (x_t − α c)/σ, so the one-step denoiser returns c for every x_t and t."""

    def __init__(self, c: torch.Tensor) -> None:
        self.c = c
        self.sde = SubVPSDE()
        self.mean = torch.zeros(POSE_DIM)
        self.std = torch.ones(POSE_DIM)
        self.calls = 0

    def denoise(self, z_t, t):
        self.calls += 1
        return self.c.expand_as(z_t).clone()


def test_completion_moves_free_dims_to_the_prior_and_keeps_visible_ones():
    c = torch.linspace(-0.5, 0.5, POSE_DIM)
    prior = PointPrior(c)
    observed = np.full(POSE_DIM, 0.3, np.float32)
    hidden = np.zeros(21, bool)
    hidden[[4, 8, 12]] = True
    free = free_dims_from_hidden(hidden)
    steps = []
    res = complete_pose(prior, observed, hidden, n=4, cfg=TTOConfig(prior="dposer", iters=150, lr=0.05),
                        callback=lambda it, n, t, pose: steps.append(t))
    assert prior.calls == 150 and len(steps) == 150
    assert np.array_equal(res.pose[:, ~free], np.broadcast_to(observed[~free], (4, (~free).sum())))
    assert np.abs(res.pose[:, free] - c.numpy()[free]).max() < 0.05           # pulled onto the prior's pose
    base = complete_pose(prior, observed, hidden, n=4, cfg=TTOConfig(prior="none", iters=20))
    assert np.abs(base.pose[:, free] - c.numpy()[free]).mean() > 0.3          # no prior: stays at the noise
    assert res.traj_pose.shape == (151, 4, POSE_DIM) and res.t_schedule.shape == (150,)
    assert np.allclose(res.traj_pose[0][:, free], base.traj_pose[0][:, free])  # same seed, same noise start
    l2 = complete_pose(prior, observed, hidden, n=4, cfg=TTOConfig(prior="l2", iters=150, w_l2=1.0))
    assert np.abs(l2.pose[:, free]).max() < 0.1                               # L2 baseline: the mean pose


def test_cancel_flag_stops_a_run():
    prior = PointPrior(torch.zeros(POSE_DIM))
    ev = threading.Event()
    hidden = np.zeros(21, bool)
    hidden[4] = True

    def cb(it, n, t, pose):
        if it == 3:
            ev.set()

    with pytest.raises(Cancelled):
        complete_pose(prior, np.zeros(POSE_DIM, np.float32), hidden, n=2, cfg=TTOConfig(iters=50),
                      callback=cb, cancel=ev)
    with pytest.raises(Cancelled):
        complete_pose(prior, np.zeros(POSE_DIM, np.float32), hidden, n=2, cancel=lambda: True)


# -- with the Anny hand ---------------------------------------------------------------------------------------
def test_fixed_shape_joints_match_the_hand(anny_hand):
    from core.pose_sampler import sample_global_orient, sample_poses, sample_shapes
    from core.prior.fastjoints import FixedShapeJoints

    pose = torch.from_numpy(sample_poses(3, 1))
    shape = torch.from_numpy(sample_shapes(3, 2))
    go = torch.from_numpy(sample_global_orient(3, 3))
    fast = FixedShapeJoints(anny_hand, shape, 3)
    assert torch.allclose(fast(go, pose), anny_hand.joints(go, pose, shape), atol=1e-6)


def test_ik_recovers_a_rotated_scaled_hand_without_prior(anny_hand):
    from core.pose_sampler import sample_global_orient, sample_poses

    pose = sample_poses(1, 11)
    go = sample_global_orient(1, 12)
    with torch.no_grad():
        j = anny_hand.joints(torch.from_numpy(go), torch.from_numpy(pose))[0].numpy()
    obs = 1.15 * j + np.array([0.05, -0.02, 0.4], np.float32)     # bigger hand, somewhere in the camera frame
    res = fit_joints(None, anny_hand, obs, None, n=2, cfg=TTOConfig(prior="none", iters=100))
    err = np.linalg.norm(res.joints - obs[None], axis=-1).mean(1) * 1000
    assert err.max() < 3.0, err                                    # mm, all joints visible
    assert res.scale == pytest.approx(1.15, abs=0.1)
    assert res.traj_joints.shape == (101, 2, 21, 3)


def test_ik_leaves_hidden_dims_free_without_prior(anny_hand):
    from core.pose_sampler import sample_poses

    pose = sample_poses(1, 5)
    with torch.no_grad():
        obs = anny_hand.joints(None, torch.from_numpy(pose))[0].numpy()
    hidden = np.zeros(21, bool)
    hidden[list(FINGERTIPS)] = True
    res = fit_joints(None, anny_hand, obs, hidden, n=3, cfg=TTOConfig(prior="none", iters=40), fit_shape=False)
    vis = np.linalg.norm(res.joints - obs[None], axis=-1)[:, ~hidden].mean() * 1000
    assert vis < 4.0
    tips = res.joints[:, list(FINGERTIPS)]
    assert np.linalg.norm(tips[0] - tips[1], axis=-1).mean() > 1e-3  # hypotheses differ where hidden


def test_fit_2d_reduces_reprojection_error(anny_hand):
    from core.pose_sampler import sample_poses

    pose = sample_poses(1, 21)[0]
    go = np.array([np.pi, 0, 0], np.float32)        # fingers up in the image (y down), palm to the camera
    transl = np.array([0.0, 0.0, 0.5], np.float32)
    K = np.array([[500, 0, 128], [0, 500, 128], [0, 0, 1]], np.float32)
    with torch.no_grad():
        j = anny_hand.joints(torch.from_numpy(go[None]), torch.from_numpy(pose[None]))[0].numpy() + transl
    uv = project(j, K)
    init = dict(global_orient=go + 0.1, pose=pose + np.random.default_rng(0).normal(0, 0.15, POSE_DIM).astype(np.float32),
                transl=transl + np.array([0.01, -0.01, 0.02], np.float32))

    def reproj(joints):
        return np.linalg.norm(project(joints, K) - uv, axis=-1).mean(-1)

    with torch.no_grad():
        j0 = anny_hand.joints(torch.from_numpy(init["global_orient"][None]), torch.from_numpy(init["pose"][None]))[0].numpy()
    before = reproj(j0 + init["transl"])
    res = fit_2d(None, anny_hand, uv, K, init, n=2, cfg=TTOConfig(prior="none", iters=80, lr=0.05))
    after = reproj(res.joints)
    assert after.max() < 0.5 * before, (before, after)


def test_shipped_prior_samples_plausible_poses():
    """The shipped weights load without pickle and their samples lie (mostly) inside the joint limits."""
    from core.pose_sampler import LIMITS
    from core.prior import load_prior

    prior = load_prior()
    poses = prior.sample_poses(256, steps=20, seed=0)
    assert poses.shape == (256, POSE_DIM) and np.isfinite(poses).all()
    inside = ((poses >= LIMITS[:, 0] - 0.1) & (poses <= LIMITS[:, 1] + 0.1)).mean()
    assert inside > 0.97, inside
    # Diverse, not collapsed to the mean pose.
    assert poses.std(0).mean() > 0.5 * (prior.std.numpy().mean())


def test_wide_training_sampler_widens_only_the_thumb_and_distal_coupling():
    from core.pose_sampler import LIMITS, sample_poses
    from core.prior.train_poses import sample_prior_poses

    np.testing.assert_array_equal(sample_prior_poses(256, 3, "wide", wide_frac=0.0), sample_poses(256, 3))
    np.testing.assert_array_equal(sample_prior_poses(256, 3, "default"), sample_poses(256, 3))
    base = sample_poses(4000, 5)
    wide = sample_prior_poses(4000, 5, "wide", wide_frac=1.0)
    assert wide.shape == (4000, POSE_DIM) and np.isfinite(wide).all()
    assert (wide >= LIMITS[:, 0] - 1e-6).all() and (wide <= LIMITS[:, 1] + 1e-6).all()
    # Thumb IP flexion (pose index 6) covers a clearly broader range than the shared sampler's.
    spread = lambda x: np.percentile(x, 95) - np.percentile(x, 5)
    assert spread(wide[:, 6]) > 1.3 * spread(base[:, 6])
    # Fingers' proximal joints are the shared sampler's (same draws before the widening).
    np.testing.assert_array_equal(wide[:, 9], base[:, 9])
    with pytest.raises(ValueError):
        sample_prior_poses(4, 0, "bogus")
