"""DPoser refinement of a photo's result (core/refine.py, issue 25 item 3): fit, mirroring, npz keys, CLI."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from core.cli import main
from core.errors import Cancelled
from core.joints import mirror_x
from core.paths import SAMPLE_IMAGE
from core.refine import refine_hand, reprojection_px


@pytest.fixture(scope="module")
def sample_result(hand_image):
    from core.pipeline import ImagePipeline

    pipe = ImagePipeline.load("cpu", mesh=True)
    (r,) = pipe.run(hand_image, n=6, steps=3, seed=0)
    assert r.params is not None and r.handedness == "right"
    return pipe, r


@pytest.fixture(scope="module")
def prior():
    from core.prior import load_prior

    return load_prior()


def test_refinement_fits_the_keypoints_and_returns_every_hypothesis(sample_result, prior):
    pipe, r = sample_result
    ref = refine_hand(prior, pipe.mesh.param_hand, r, iters=30, lr=0.1)
    n = r.params.hyp_pose.shape[0]
    p = ref.params
    assert p.hyp_pose.shape == (n, 45) and p.hyp_global_orient.shape == (n, 3) and p.hyp_shape.shape == (n, 10)
    assert p.hyp_vertices.shape == r.params.hyp_vertices.shape and p.vertices.shape == r.params.vertices.shape
    assert ref.hyp_transl.shape == (n, 3) and ref.reprojection_px_after.shape == (n + 1,)
    # The shape is held; pose and orientation move.
    np.testing.assert_allclose(p.hyp_shape, r.params.hyp_shape, atol=1e-6)
    assert np.abs(p.hyp_pose - r.params.hyp_pose).max() > 1e-3
    # The fit lowers the keypoint error of the aggregate, and the reported errors are the real ones.
    assert ref.reprojection_px_after[-1] < ref.reprojection_px_before[-1]
    after = reprojection_px(p.joints + ref.transl, r.keypoints2d, r.K)
    assert abs(float(after) - float(ref.reprojection_px_after[-1])) < 1e-3
    before = reprojection_px(r.params.joints + r.mesh_cam_t, r.keypoints2d, r.K)
    assert abs(float(before) - float(ref.reprojection_px_before[-1])) < 1e-3
    # Meshes are root-relative like the result's (wrist at the origin).
    np.testing.assert_allclose(p.joints[0], 0.0, atol=1e-5)


def test_left_hand_is_fitted_in_the_mirror_and_mirrored_back(sample_result, prior):
    """The same hand seen in the mirrored photo (a left hand: keypoints u → 2cx − u, translation x → −x,
    the parameters unchanged since they describe the right-hand model) refines to the mirrored meshes."""
    pipe, r = sample_result
    K = r.K
    kp = r.keypoints2d.copy()
    kp[:, 0] = 2 * K[0, 2] - kp[:, 0]
    left = dataclasses.replace(r, stage1=dataclasses.replace(r.stage1, keypoints2d=kp, handedness="left"),
                               mesh=dataclasses.replace(r.mesh, mesh_cam_t=r.mesh_cam_t * np.array([-1, 1, 1], np.float32)))
    hand = pipe.mesh.param_hand
    a = refine_hand(prior, hand, r, iters=5)
    b = refine_hand(prior, hand, left, iters=5)
    np.testing.assert_allclose(b.params.vertices, mirror_x(a.params.vertices), atol=1e-5)
    np.testing.assert_allclose(b.hyp_transl, a.hyp_transl * np.array([-1, 1, 1]), atol=1e-5)
    np.testing.assert_allclose(b.reprojection_px_after, a.reprojection_px_after, atol=1e-3)
    np.testing.assert_allclose(b.params.hyp_pose, a.params.hyp_pose, atol=1e-6)


def test_refinement_can_be_cancelled_and_needs_parameters(sample_result, prior):
    pipe, r = sample_result
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 2:
            stop.set()

    with pytest.raises(Cancelled):
        refine_hand(prior, pipe.mesh.param_hand, r, iters=50, progress=progress, cancel=stop)
    assert seen == [1, 2]
    with pytest.raises(ValueError, match="no hand-model parameters"):
        refine_hand(prior, pipe.mesh.param_hand, dataclasses.replace(r, params=None))


def test_refinement_refuses_another_hand_model(sample_result, prior):
    """A MANO hand (the user's choice in the window) cannot take the parameter head's Anny parameters."""
    pipe, r = sample_result

    class Other:
        name = "mano"

    with pytest.raises(ValueError, match="needs the Anny hand model"):
        refine_hand(prior, Other(), r)


def test_refined_keys_in_the_result_npz(sample_result, prior):
    pipe, r = sample_result
    r2 = dataclasses.replace(r, refined=refine_hand(prior, pipe.mesh.param_hand, r, iters=3))
    d = r2.to_npz_dict()
    n = r.params.hyp_pose.shape[0]
    assert d["refined_hypotheses_pose"].shape == (n, 45) and d["refined_pose"].shape == (45,)
    assert d["refined_vertex_hypotheses"].shape == d["vertex_hypotheses"].shape
    assert d["refined_hypotheses_transl"].shape == (n, 3) and int(d["refined_iters"]) == 3
    assert "refined_pose" not in r.to_npz_dict()


def test_infer_refine_writes_keys_and_meshes(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["infer", str(SAMPLE_IMAGE), "--out", str(out), "-n", "4", "--steps", "2", "--refine",
                 "--refine-iters", "10", "--trajectory-params"]) == 0
    folder = out / SAMPLE_IMAGE.stem
    d = np.load(folder / "result.npz")
    assert d["refined_vertex_hypotheses"].shape[0] == 4 and int(d["refined_iters"]) == 10
    assert d["refined_reprojection_px_after"][-1] < d["refined_reprojection_px_before"][-1]
    assert (folder / "mesh_refined.obj").exists()
    assert d["trajectory_param_pose"].shape == (2, 4, 45)   # --trajectory-params: (steps, N, 45)
    assert "refined" in capsys.readouterr().out


def test_infer_refine_without_meshes_is_one_line_error(tmp_path, capsys):
    assert main(["infer", str(SAMPLE_IMAGE), "--out", str(tmp_path), "--stage", "1", "--refine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--refine" in err and "Traceback" not in err
