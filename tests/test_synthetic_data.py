"""Synthetic data: samplers, camera placement, keypoint noise, shards and renders (fast, no real data)."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from core.geometry import project
from core.pose_sampler import LIMITS, sample_global_orient, sample_poses, sample_shapes
from training.data.camera import (
    CROP_SIZE, PALM_NORMAL, add_keypoint_noise, place_in_camera, sample_intrinsics, sample_orientations,
)

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@pytest.fixture(scope="module")
def generator():
    from training.data.make_dataset import SampleGenerator

    torch.set_num_threads(1)
    return SampleGenerator(render=False)


@pytest.fixture(scope="module")
def renderer(generator):
    from training.data.render import HandRenderer

    try:
        r = HandRenderer(generator.hand.faces)
    except Exception as exc:  # pragma: no cover - machine without an off-screen OpenGL
        pytest.skip(f"off-screen rendering unavailable: {exc}")
    yield r
    r.close()


def test_samplers_deterministic_and_within_limits():
    a, b = sample_poses(500, 7), sample_poses(500, 7)
    assert a.shape == (500, 45) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_poses(500, 8))
    assert (a >= LIMITS[:, 0] - 1e-6).all() and (a <= LIMITS[:, 1] + 1e-6).all()
    s = sample_shapes(500, 7)
    assert s.shape == (500, 10) and s.dtype == np.float32
    assert (s[:, :6] >= 0).all() and (s[:, :6] <= 1).all() and (np.abs(s[:, 6:]) <= 1).all()
    np.testing.assert_array_equal(sample_global_orient(5, 3), sample_global_orient(5, 3))


def test_orientations_favour_palm_or_back_views():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    nz = np.abs(Rotation.from_rotvec(sample_orientations(4000, rng)).apply(PALM_NORMAL)[:, 2])
    assert nz.mean() > 0.55  # uniform rotations give 0.5


def test_camera_places_hand_inside_crop(generator):
    rng = np.random.default_rng(1)
    pose, shape, orient = sample_poses(16, rng), sample_shapes(16, rng), sample_orientations(16, rng)
    joints, verts = generator._hands(orient, pose, shape)
    for k in range(16):
        K = sample_intrinsics(rng)
        assert 300 <= K[0, 0] <= 600 and K[0, 0] == K[1, 1]
        transl, fill = place_in_camera(joints[k], verts[k], K, rng)
        uv = project(verts[k] + transl, K)
        assert (verts[k] + transl)[:, 2].min() > 0.05
        extent = (uv.max(0) - uv.min(0)).max() / CROP_SIZE
        assert abs(extent - fill) < 0.01, (extent, fill)
        assert uv.min() > -0.05 * CROP_SIZE and uv.max() < 1.05 * CROP_SIZE


def test_keypoint_noise():
    rng = np.random.default_rng(0)
    kp = rng.uniform(60, 200, (200, 21, 2))
    noisy, conf = add_keypoint_noise(kp, np.random.default_rng(3))
    noisy2, conf2 = add_keypoint_noise(kp, np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, noisy2)
    np.testing.assert_array_equal(conf, conf2)
    assert noisy.shape == kp.shape and conf.shape == (200, 21) and noisy.dtype == np.float32
    assert (conf >= 0).all() and (conf <= 1).all()
    err = np.linalg.norm(noisy - kp, axis=-1)
    inlier = conf >= 0.5
    assert np.median(err[inlier]) < 6 and (~inlier).any()
    assert err[~inlier].mean() > 3 * np.median(err[inlier])  # low confidence marks the outliers
    single, c = add_keypoint_noise(kp[0], np.random.default_rng(3))
    assert single.shape == (21, 2) and c.shape == (21,)


def test_shard_deterministic_and_consistent(generator):
    a = generator.shard(seed=5, index=0, n=6)
    b = generator.shard(seed=5, index=0, n=6)
    c = generator.shard(seed=5, index=1, n=6)
    expected = {"K": (6, 3, 3), "pose": (6, 45), "shape": (6, 10), "global_orient": (6, 3), "transl": (6, 3),
                "joints_cam": (6, 21, 3), "kp2d": (6, 21, 2), "kp2d_noisy": (6, 21, 2), "kp_conf": (6, 21)}
    assert {k: v.shape for k, v in a.items()} == expected
    assert all(v.dtype == np.float32 for v in a.values())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["pose"], c["pose"])
    with torch.no_grad():
        j = generator.hand.joints(torch.from_numpy(a["global_orient"]), torch.from_numpy(a["pose"]),
                                  torch.from_numpy(a["shape"])).numpy()
    np.testing.assert_allclose(j + a["transl"][:, None], a["joints_cam"], atol=1e-5)
    for i in range(6):
        np.testing.assert_allclose(project(a["joints_cam"][i].astype(np.float64), a["K"][i]), a["kp2d"][i], atol=1e-3)


def test_relabel_recovers_labels_and_follows_a_wrist_shift(generator):
    from training.data.relabel import relabel_shard

    a = generator.shard(seed=5, index=0, n=6)
    same = relabel_shard(generator.hand, a)
    for k, v in same.items():
        np.testing.assert_allclose(v, a[k], atol=2e-5)
    # Labels from an older keypoint definition (wrist elsewhere): tips stay put, translation follows.
    old = dict(a, joints_cam=a["joints_cam"] + np.float32([0.0, 0.01, 0.0]))
    old["joints_cam"][:, 0] += 0.02
    new = relabel_shard(generator.hand, old)
    np.testing.assert_allclose(new["joints_cam"], a["joints_cam"] + np.float32([0.0, 0.01, 0.0]), atol=2e-5)
    np.testing.assert_allclose(new["kp2d_noisy"] - new["kp2d"], a["kp2d_noisy"] - a["kp2d"], atol=1e-3)


def test_render_overlays_projected_keypoints(generator, renderer):
    rng = np.random.default_rng(11)
    pose, shape = sample_poses(3, rng, ("open", "relaxed", "point")), sample_shapes(3, rng)
    orient = sample_orientations(3, rng)
    joints, verts = generator._hands(orient, pose, shape)
    bg = np.full((CROP_SIZE, CROP_SIZE, 3), 0.5)
    renderer.forearm_prob = 0.0
    try:
        for k, (cx, cy) in enumerate([(128, 128), (80, 170), (190, 100)]):  # off-centre principal points too
            K = np.array([[420.0, 0, cx], [0, 420.0, cy], [0, 0, 1]])
            transl, _ = place_in_camera(joints[k], verts[k], K, rng)
            img = renderer.render(verts[k] + transl, K, np.random.default_rng(k), background=bg)
            assert img.shape == (CROP_SIZE, CROP_SIZE, 3) and img.dtype == np.uint8
            mask = renderer.last_alpha > 0.5
            assert 0.03 < mask.mean() < 0.7
            assert np.abs(img[mask].astype(float) - 127.5).mean() > 10  # the hand is not background
            # Wrist, MCP and PIP keypoints lie inside the hand: the mask must cover their pixels.
            uv = np.round(project(joints[k] + transl, K)).astype(int)
            inner = [0, 2, 5, 6, 9, 10, 13, 14, 17, 18]
            hits = [mask[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3].any() for u, v in uv[inner]]
            assert np.mean(hits) >= 0.9, hits
            # The rendered silhouette equals the mesh's triangles rasterised with our own projection.
            tri = np.round(project(verts[k] + transl, K)[generator.hand.faces] * 8).astype(np.int32)
            ours = np.zeros((CROP_SIZE, CROP_SIZE), np.uint8)
            for t in tri:
                cv2.fillConvexPoly(ours, t, 1, shift=3)
            iou = (mask & (ours > 0)).sum() / (mask | (ours > 0)).sum()
            assert iou > 0.95, iou
    finally:
        renderer.forearm_prob = 0.9


def test_detector_noise_occluded_options():
    """Defaults keep the old noise stream; `occluded_outlier_prob` sets the outlier rate of hidden
    keypoints; `occluded_parent_jump` slides those outliers along the finger (towards the parent)."""
    import torch

    from core.joints import PARENTS
    from training.data.lifting import detector_noise

    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    rays = torch.randn(400, 21, 2, generator=torch.Generator().manual_seed(1)) * 0.1
    occ = torch.zeros(400, 21, dtype=torch.bool)
    occ[:, 8] = True                                   # the index fingertip is hidden everywhere
    old = detector_noise(rays, g(), occluded=occ, occlusion_noise=1.0)
    same = detector_noise(rays, g(), occluded=occ, occlusion_noise=1.0, occluded_outlier_prob=None,
                          occluded_parent_jump=0.0)
    assert torch.equal(old, same)
    side = (rays.max(1).values - rays.min(1).values).max(-1).values
    big = lambda out: ((out - rays)[:, 8].norm(dim=-1) > 0.07 * side).float().mean()  # noqa: E731
    rare = detector_noise(rays, g(), sigma_range=(0.001, 0.002), occluded=occ, occlusion_noise=1.0,
                          occluded_outlier_prob=0.0)
    often = detector_noise(rays, g(), sigma_range=(0.001, 0.002), occluded=occ, occlusion_noise=1.0,
                           occluded_outlier_prob=1.0)
    assert big(rare) < 0.02 and big(often) > 0.95
    slid = detector_noise(rays, g(), sigma_range=(0.001, 0.002), occluded=occ, occlusion_noise=1.0,
                          occluded_outlier_prob=1.0, occluded_parent_jump=1.0)
    p = int(PARENTS[8])
    d = rays[:, p] - rays[:, 8]
    u = ((slid[:, 8] - rays[:, 8]) * d).sum(-1) / (d * d).sum(-1)    # position along tip → parent
    off = (slid[:, 8] - rays[:, 8] - u[:, None] * d).norm(dim=-1)    # distance from that line
    assert ((u > 0.45) & (u < 2.05)).float().mean() > 0.95
    assert (off < 0.02 * side).float().mean() > 0.95
