"""Stage 1: crop normalisation, camera translation, aggregation, the trained lifter and the pipeline."""
from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest
import torch

from core.errors import WeightsError
from core.metrics import apd, pa_mpjpe
from core.paths import SAMPLE_IMAGE
from core.geometry import project
from core.stage1 import JointLifter, Stage1Estimator, aggregate, normalise_rays, pixels_to_rays, solve_cam_t

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def lifter():
    return JointLifter.from_weights("cpu")


@pytest.fixture(scope="module")
def gt():
    return np.load(DATA / "anny_right_256_gt.npz")


def test_normalise_rays_is_translation_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    rays = torch.rand(3, 21, 2, generator=g) * 0.3
    c2d, ctx = normalise_rays(rays)
    assert c2d.abs().max() <= 1.0
    c2d_b, ctx_b = normalise_rays(rays * 2 + 0.1)
    torch.testing.assert_close(c2d, c2d_b)
    assert not torch.allclose(ctx, ctx_b)     # the context carries position and size
    assert ctx.shape == (3, 3)


def test_solve_cam_t_recovers_translation():
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.04, (21, 3))
    joints -= joints[0]
    K = np.array([[480.0, 0, 100], [0, 470, 150], [0, 0, 1]])
    t = np.array([0.05, -0.03, 0.6])
    kp = project(joints + t, K)
    np.testing.assert_allclose(solve_cam_t(joints, kp, K), t, atol=1e-6)
    # With noisy keypoints the reprojection error stays close to the noise level.
    noisy = kp + rng.normal(0, 2.0, kp.shape)
    t2 = solve_cam_t(joints, noisy, K)
    assert np.linalg.norm(project(joints + t2, K) - noisy, axis=1).mean() < 4.0


def test_aggregate_mean_and_jpma():
    rng = np.random.default_rng(1)
    hyps = rng.normal(0, 0.02, (5, 21, 3))
    np.testing.assert_allclose(aggregate(hyps), hyps.mean(0))
    K = np.array([[500.0, 0, 128], [0, 500, 128], [0, 0, 1]])
    cam_t = np.array([0, 0, 0.5])
    kp = project(hyps[3] + cam_t, K)
    np.testing.assert_allclose(aggregate(hyps, "jpma", kp, K, cam_t), hyps[3])
    with pytest.raises(ValueError):
        aggregate(hyps, "median")


def test_missing_weights_name_the_file_and_command(tmp_path):
    with pytest.raises(WeightsError, match="joint_diffusion.safetensors"):
        JointLifter.from_weights("cpu", models_dir=tmp_path)


def test_lifter_recovers_a_synthetic_hand(lifter, gt):
    """Ground-truth 2D of the test render → 3D close to the true joints, hypotheses distinct."""
    hyps, xs, x0s, ts = lifter.lift(gt["kp2d"], gt["K"], n=20, steps=10, seed=0)
    assert hyps.shape == (20, 21, 3) and xs.shape == (11, 20, 21, 3) and x0s.shape == (10, 20, 21, 3)
    assert len(ts) == 10
    np.testing.assert_allclose(xs[-1], hyps, atol=1e-6)
    true = gt["joints_cam"] - gt["joints_cam"][0]
    err_mm = 1000 * pa_mpjpe(hyps.mean(0), true)
    assert err_mm < 15.0, err_mm
    assert 1000 * np.abs(hyps.mean(0)[0]).max() < 10.0               # root-relative: wrist near 0
    assert apd(hyps) > 1e-4                                          # 50 distinct hypotheses, not one
    # A hand is 10-25 cm long.
    length = np.linalg.norm(hyps.mean(0)[12] - hyps.mean(0)[0])
    assert 0.08 < length < 0.30


def test_lifter_seed_reproducible_and_left_hand_is_the_mirror(lifter, gt):
    a = lifter.lift(gt["kp2d"], gt["K"], n=6, steps=5, seed=3)[0]
    b = lifter.lift(gt["kp2d"], gt["K"], n=6, steps=5, seed=3)[0]
    c = lifter.lift(gt["kp2d"], gt["K"], n=6, steps=5, seed=4)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    w = 256
    kp_left = gt["kp2d"].copy()
    kp_left[:, 0] = w - kp_left[:, 0]
    K_left = gt["K"].copy()
    K_left[0, 2] = w - K_left[0, 2]
    left = lifter.lift(kp_left, K_left, mirrored=True, width=w, n=6, steps=5, seed=3)[0]
    np.testing.assert_allclose(left * [-1, 1, 1], a, atol=1e-5)


def test_pipeline_on_image(lifter):
    img = cv2.cvtColor(cv2.imread(str(SAMPLE_IMAGE)), cv2.COLOR_BGR2RGB)
    est = Stage1Estimator(lifter=lifter)
    seen = []
    (r,) = est.run(img, n=10, steps=4, seed=0, progress=lambda i, n: seen.append(i))
    assert seen == [1, 2, 3, 4]
    assert r.handedness == "right" and r.joint_hypotheses.shape == (10, 21, 3)
    np.testing.assert_allclose(r.joints, r.joint_hypotheses.mean(0))
    np.testing.assert_allclose(r.K, [[256, 0, 128], [0, 256, 128], [0, 0, 1]])
    reproj = project(r.joints + r.cam_t, r.K)
    assert np.linalg.norm(reproj - r.keypoints2d, axis=1).mean() < 8.0   # px
    assert r.cam_t[2] > 0.1
    d = r.to_npz_dict()
    assert d["trajectory_joints_xt"].shape == (5, 10, 21, 3) and str(d["handedness"]) == "right"
    assert pixels_to_rays(r.keypoints2d, r.K).shape == (21, 2)


def test_capsule_occlusion_flags_a_joint_behind_the_palm():
    from core.occlusion import joint_occlusion

    g = np.load(DATA / "anny_right_256_gt.npz")
    cam = torch.tensor(np.asarray(g["joints_cam"], np.float32))[None]
    palm = cam[0, [0, 5, 9, 13, 17]].mean(0)
    toward = -palm / palm.norm()                       # unit vector from the palm to the camera
    behind, front = cam.clone(), cam.clone()
    behind[0, 8] = palm - 0.04 * toward                # the index tip 4 cm behind the palm centre
    front[0, 8] = palm + 0.04 * toward
    assert joint_occlusion(behind)[0, 8] and not joint_occlusion(front)[0, 8]


def test_occlusion_aware_lifter_flags_second_pass_and_warm_start_is_unchanged():
    from core.diffusion import GaussianDiffusion, make_schedule
    from core.nets.joint_diffusion import JointDiffusionConfig, JointDiffusionNet
    from training.train_joint_diffusion import widen_condition

    torch.manual_seed(0)
    base = JointDiffusionNet(JointDiffusionConfig(width=32, depth=1, heads=2)).eval()
    for p in base.parameters():                        # adaLN starts at zero: make the block do something
        torch.nn.init.normal_(p, 0, 0.05)
    cfg = JointDiffusionConfig(width=32, depth=1, heads=2, cond_dim=3)
    wide = JointDiffusionNet(cfg).eval()
    wide.load_state_dict(widen_condition(base.state_dict(), cfg))
    x, t = torch.randn(2, 21, 3), torch.tensor([5, 700])
    c2d, ctx = torch.randn(2, 21, 2), torch.randn(2, 3)
    flags0 = torch.zeros(2, 21, 1)
    torch.testing.assert_close(base(x, t, c2d, ctx), wide(x, t, torch.cat([c2d, flags0], -1), ctx))
    torch.nn.init.normal_(wide.inp.weight, 0, 0.05)    # now the flag matters
    assert not torch.allclose(wide(x, t, torch.cat([c2d, flags0], -1), ctx),
                              wide(x, t, torch.cat([c2d, flags0 + 1], -1), ctx))

    lifter = JointLifter(wide, GaussianDiffusion(make_schedule("linear", 1000)))
    assert lifter.takes_occlusion
    rays = torch.tensor(pixels_to_rays(np.load(DATA / "anny_right_256_gt.npz")["kp2d"],
                                       np.load(DATA / "anny_right_256_gt.npz")["K"]), dtype=torch.float32)[None]
    c, _, occ = lifter.condition(rays)
    assert c.shape == (1, 21, 3) and occ.dtype == torch.bool and occ.shape == (1, 21)
    torch.testing.assert_close(c[..., 2], occ.float())
    given = torch.zeros(1, 21, dtype=torch.bool)
    given[0, 4] = True
    assert lifter.condition(rays, given)[0][0, 4, 2] == 1
    res = lifter.lift_rays(rays[0].numpy(), n=3, steps=2)
    assert res.extra["occluded"].shape == (21,) and res.x0.shape == (3, 21, 3)
    assert lifter.sample_rays(rays.repeat(2, 1, 1), n=3, steps=2).shape == (2, 3, 21, 3)


def test_per_hypothesis_jitter_moves_only_flagged_keypoints():
    from core.diffusion import GaussianDiffusion, make_schedule
    from core.nets.joint_diffusion import JointDiffusionConfig, JointDiffusionNet

    net = JointDiffusionNet(JointDiffusionConfig(width=32, depth=1, heads=2, cond_dim=3)).eval()
    lifter = JointLifter(net, GaussianDiffusion(make_schedule("linear", 1000)))
    c2d = torch.cat([torch.rand(2, 21, 2) * 2 - 1, torch.zeros(2, 21, 1)], -1)
    c2d[0, [4, 8], 2] = 1                                  # hand 0: two keypoints flagged hidden
    ctx = torch.randn(2, 3)
    c, x = lifter.per_hypothesis(c2d, ctx, n=5, seed=3)
    assert c.shape == (10, 21, 3) and x.shape == (10, 3)
    torch.testing.assert_close(x, ctx.repeat_interleave(5, 0))
    moved = (c[..., :2] - c2d.repeat_interleave(5, 0)[..., :2]).norm(dim=-1)   # (10,21)
    assert (moved[:5, [4, 8]] > 0).all() and (moved[:5, [4, 8]] < 0.5).all()
    assert moved[:5][:, [j for j in range(21) if j not in (4, 8)]].max() == 0
    assert moved[5:].max() == 0                            # nothing flagged: identical copies
    assert len({tuple(h[4, :2].tolist()) for h in c[:5]}) == 5   # each hypothesis its own draw
    torch.testing.assert_close(c, lifter.per_hypothesis(c2d, ctx, n=5, seed=3)[0])   # seeded
    assert not torch.equal(c, lifter.per_hypothesis(c2d, ctx, n=5, seed=4)[0])
    lifter.occluded_jitter = 0.0
    torch.testing.assert_close(lifter.per_hypothesis(c2d, ctx, n=5)[0], c2d.repeat_interleave(5, 0))
