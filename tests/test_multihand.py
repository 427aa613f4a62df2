"""Several hands in one engine call (core.multihand, issue 26): one hand batched is the one-hand call draw
for draw; several hands batched give every hand its own result in its own place."""
import numpy as np
import pytest

from core.geometry import project
from core.io.images import load_image
from core.paths import MODELS_DIR, SAMPLE_IMAGE


def tiled(image: np.ndarray) -> np.ndarray:
    """The sample and its mirror side by side, that row and its mirror below: four hands."""
    top = np.concatenate([image, image[:, ::-1]], 1)
    return np.ascontiguousarray(np.concatenate([top, top[:, ::-1]], 0))


@pytest.fixture(scope="module")
def pipe():
    if not (MODELS_DIR / "mesh_ldm.safetensors").exists():
        pytest.fail("stage-2 weights are missing: resources/models/mesh_ldm.safetensors")
    from core.pipeline import ImagePipeline

    return ImagePipeline.load("cpu", mesh=True)


def test_one_hand_batched_is_the_one_hand_call(pipe):
    from core.multihand import lift_hands, mesh_hands

    img = load_image(str(SAMPLE_IMAGE))
    det = pipe.detect(img)[0]
    pipe.decide_sides(img, [det])
    K = np.array([[256.0, 0, 128], [0, 256, 128], [0, 0, 1]])
    a = pipe.stage1.run_detection(det, K, n=6, steps=3, seed=5)
    (b,) = lift_hands(pipe.stage1, [det], K, n=6, steps=3, seed=5)
    np.testing.assert_array_equal(a.joint_hypotheses, b.joint_hypotheses)
    np.testing.assert_array_equal(a.trajectory_x0, b.trajectory_x0)
    np.testing.assert_array_equal(a.cam_t, b.cam_t)
    ma = pipe.mesh.run_hand(img, a, steps=3, seed=5)
    (mb,) = mesh_hands(pipe.mesh, img, [b], steps=3, seed=5)
    np.testing.assert_array_equal(ma.vertex_hypotheses, mb.vertex_hypotheses)
    np.testing.assert_array_equal(ma.vertices, mb.vertices)
    np.testing.assert_array_equal(ma.faces, mb.faces)
    np.testing.assert_array_equal(ma.trajectory_latents_x0, mb.trajectory_latents_x0)


def test_four_hands_in_one_batch_land_on_their_hands(pipe):
    img = tiled(load_image(str(SAMPLE_IMAGE)))
    dets = pipe.detect(img)
    assert len(dets) == 4
    results = pipe.estimate(img, dets, n=8, steps=3, seed=0)
    assert len(results) == 4
    for r, det in zip(results, dets):
        assert r.vertex_hypotheses.shape[0] == 8 and r.trajectory_latents_x0.shape[:2] == (3, 8)
        # the aggregate mesh at its own translation projects onto its own hand's keypoints
        uv = project(r.mesh_joints + r.mesh_cam_t, r.K)
        assert np.linalg.norm(uv - det.keypoints2d, axis=1).mean() < 0.15 * (det.box[2] - det.box[0])
    centres = np.array([project((r.vertices + r.mesh_cam_t).mean(0, keepdims=True), r.K)[0] for r in results])
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(4) for j in range(i)) > 100   # four places
    # the hypotheses of different hands differ (each hand its own noise slice)
    assert not np.allclose(results[0].joint_hypotheses, results[1].joint_hypotheses, atol=1e-3)
