"""The cascade's stage-2 path with tiny random models (no detector, no shipped weights needed),
plus a check of the shipped stage-2 weights when they exist. The pipeline around it: test_pipeline.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cascade import CascadeEstimator, MeshStage
from core.commands.infer import write_meshes
from core.detector import Detection, crop_box
from core.errors import Cancelled, WeightsError
from core.mesh.sampling import load_sampling
from core.nets.image_encoder import ImageEncoder, ImageEncoderConfig
from core.nets.mesh_ae import MeshAE, MeshAEConfig
from core.nets.mesh_ldm import MeshLDM, MeshLDMConfig
from core.results import Stage1Result

N, STEPS = 6, 3


def _randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def tiny_mesh_stage() -> MeshStage:
    """A real MeshStage with tiny random networks (fast; meshes of no particular shape)."""
    torch.manual_seed(0)
    enc = ImageEncoder(ImageEncoderConfig(widths=[8, 8, 16, 16], stem=8, res=64))
    ldm = MeshLDM(MeshLDMConfig(width=32, depth=1, heads=2, cross_heads=2, level_dims=enc.level_dims))
    _randomise(ldm, 1)
    ae = MeshAE(load_sampling(), MeshAEConfig(channels=[8, 8, 16, 16]))
    _randomise(ae, 2)
    return MeshStage(enc, ldm, ae)


@pytest.fixture(scope="module")
def mesh_stage():
    return tiny_mesh_stage()


def _stage1(handedness="right", width=320, seed=0):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(100, 200, (21, 2))
    hyps = rng.normal(0, 0.03, (N, 21, 3))
    hyps -= hyps[:, :1]
    K = np.array([[400.0, 0, width / 2], [0, 400, 120], [0, 0, 1]])
    return Stage1Result(keypoints2d=kp, keypoints2d_score=np.ones(21), hand_score=0.9, handedness=handedness, K=K,
                        box=np.array([80, 80, 220, 220.0]), joint_hypotheses=hyps, joints=hyps.mean(0),
                        cam_t=np.array([0, 0, 0.5]), trajectory_xt=np.zeros((STEPS + 1, N, 21, 3)),
                        trajectory_x0=np.zeros((STEPS, N, 21, 3)), timesteps=np.arange(STEPS))


class FakeStage1:
    """Stage 1 stand-in: finds one hand and returns a fixed stage-1 result, stepping its progress."""

    def __init__(self, result):
        self.result = result
        self.detector = self

    def detect(self, image):
        kp = self.result.keypoints2d
        return [Detection(kp, np.ones(21), 0.9, self.result.handedness, crop_box(kp),
                          image_size=(image.shape[1], image.shape[0]))]

    def run_detection(self, det, K, n=50, steps=10, progress=None, **kw):
        for i in range(steps):
            if progress:
                progress(i + 1, steps)
        return self.result


def test_run_shapes_frames_and_keys(mesh_stage, tmp_path):
    s1 = _stage1()
    est = CascadeEstimator(stage1=FakeStage1(s1), mesh_stage=mesh_stage)
    img = np.full((240, 320, 3), 128, np.uint8)
    seen = []
    (r,) = est.run(img, n=N, steps=STEPS, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 2 * STEPS) for i in range(1, 2 * STEPS + 1)]
    assert r.vertex_hypotheses.shape == (N, 1609, 3) and r.vertices.shape == (1609, 3)
    assert r.mesh_joint_hypotheses.shape == (N, 21, 3) and r.mesh_joints.shape == (21, 3)
    np.testing.assert_allclose(r.mesh_joints[0], 0, atol=1e-6)                 # root-relative
    np.testing.assert_allclose(r.mesh_joint_hypotheses[:, 0], 0, atol=1e-6)
    assert r.trajectory_latents_xt.shape == (STEPS + 1, N, 168)
    assert r.trajectory_latents_x0.shape == (STEPS, N, 168)
    assert r.faces.shape == (3196, 3)
    assert np.isfinite(r.mesh_cam_t).all()
    d = r.to_npz_dict()
    for k in ("vertex_hypotheses", "vertices", "faces", "mesh_joint_hypotheses", "mesh_joints", "joint_hypotheses",
              "cam_t", "mesh_cam_t", "trajectory_mesh_latents_xt", "trajectory_joints_xt"):
        assert k in d, k
    arrays = {}
    assert d["stage"] == 2 and d["vertex_hypotheses"].shape == (N, 1609, 3)
    paths = write_meshes(r, tmp_path, fmt="ply", save_hypotheses=True)
    assert len(paths) == N + 1 and all(p.exists() for p in paths)
    # hypotheses differ (different joint conditions / noise), the aggregate is one of a kind
    assert np.abs(r.vertex_hypotheses[0] - r.vertex_hypotheses[1]).max() > 1e-6


def test_features_once_per_hand(mesh_stage, monkeypatch):
    calls = {"features": 0, "context": 0}
    f0, c0 = mesh_stage.encoder.features, mesh_stage.ldm.prepare_context

    def features(x):
        calls["features"] += 1
        return f0(x)

    def context(x):
        calls["context"] += 1
        return c0(x)

    monkeypatch.setattr(mesh_stage.encoder, "features", features)
    monkeypatch.setattr(mesh_stage.ldm, "prepare_context", context)
    est = CascadeEstimator(stage1=FakeStage1(_stage1()), mesh_stage=mesh_stage)
    est.run(np.zeros((240, 320, 3), np.uint8), n=N, steps=5)
    assert calls == {"features": 1, "context": 1}


def mirrored_pair(w: int = 320):
    """A right hand's stage-1 result, the same hand seen in the mirrored image (a left hand), and a
    uniform image (the crops of both are identical)."""
    right = _stage1("right", w)
    left = _stage1("left", w)
    left.keypoints2d = np.c_[w - 1 - right.keypoints2d[:, 0], right.keypoints2d[:, 1]]
    left.joint_hypotheses = right.joint_hypotheses * np.array([-1.0, 1, 1])
    left.K = right.K.copy()
    left.K[0, 2] = w - 1 - right.K[0, 2]
    return right, left, np.full((240, w, 3), 90, np.uint8)


def test_left_hand_is_the_mirror_of_the_right_hand(mesh_stage):
    right, left, img = mirrored_pair()
    rr = mesh_stage.run_hand(img, right, steps=STEPS, seed=3)
    rl = mesh_stage.run_hand(img, left, steps=STEPS, seed=3)
    np.testing.assert_allclose(rl.vertex_hypotheses, rr.vertex_hypotheses * [-1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(rl.vertices, rr.vertices * [-1, 1, 1], atol=1e-5)
    np.testing.assert_array_equal(rl.faces, rr.faces[:, ::-1])   # winding flipped with the mirror
    # the mirrored mesh still projects where the keypoints are
    from core.geometry import project

    for r, s1 in ((rr, right), (rl, left)):
        uv = project(r.mesh_joints + r.mesh_cam_t, s1.K)
        assert np.isfinite(uv).all()


def test_cancel(mesh_stage):
    est = CascadeEstimator(stage1=FakeStage1(_stage1()), mesh_stage=mesh_stage)
    with pytest.raises(Cancelled):
        est.run(np.zeros((240, 320, 3), np.uint8), n=N, steps=STEPS, cancel=lambda: True)


def test_shipped_stage2_weights_reconstruct_and_run():
    """When the trained stage-2 weights are shipped: the AE reconstructs a sampled hand within 10 mm
    and the full stage 2 gives finite meshes of hand size."""
    try:
        ms = MeshStage.from_weights("cpu")
    except WeightsError as exc:
        pytest.skip(f"stage-2 weights not shipped: {exc}")
    from core.hand import load_hand_model
    from core.pose_sampler import sample_poses, sample_shapes

    hand = load_hand_model()
    with torch.no_grad():
        out = hand(torch.tensor([[0.2, 2.0, -0.4]]), torch.from_numpy(sample_poses(1, 11)),
                   torch.from_numpy(sample_shapes(1, 11)))
        z = ms.ae.encode_metres(out.vertices)
        v, j = ms.decode_latents(z)
    gt = out.vertices[0].numpy()
    gt_rr = gt - (ms.ae.joint_regressor.numpy() @ gt)[0]
    err = np.linalg.norm(v[0] - gt_rr, axis=1).mean() * 1000
    assert err < 10.0, f"AE reconstruction {err:.1f} mm"
    crop = torch.rand(1, 3, ms.encoder.config.res, ms.encoder.config.res)
    res = ms.sample(crop, (out.joints - out.joints[:, :1]).numpy().repeat(4, 0), steps=3)
    ext = np.ptp(res.vertices, axis=0).max()
    assert np.isfinite(res.vertex_hypotheses).all() and 0.08 < ext < 0.35, ext
