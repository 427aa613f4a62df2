"""Anny parameters of every mesh hypothesis in the pipeline's results (issue 25): `HandResult.params`, the
`param_*` keys of result.npz, left hands mirrored like the decoded meshes, no head → no parameters, and a
hypothesis saved as a pose file that `pose-viewer complete` completes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cascade import CascadeEstimator, MeshStage, _load_param_head
from core.cli import main
from core.joints import mirror_x
from core.mesh.params import ParamHead, parametric_meshes
from core.paths import SAMPLE_IMAGE
from tests.test_cascade import N, STEPS, FakeStage1, _randomise, _stage1, mirrored_pair, tiny_mesh_stage

PARAM_KEYS = {"param_hypotheses_global_orient": (N, 3), "param_hypotheses_pose": (N, 45),
              "param_hypotheses_shape": (N, 10), "param_global_orient": (3,), "param_pose": (45,),
              "param_shape": (10,), "param_joint_hypotheses": (N, 21, 3), "param_joints": (21, 3)}


@pytest.fixture(scope="module")
def stage_with_head():
    """The tiny random stage-2 networks plus a random (real) parameter head: varied parameters."""
    ms = tiny_mesh_stage()
    head = ParamHead()
    _randomise(head, 5)
    ms.param_head = head.eval()
    return ms


def _anny(ms: MeshStage, go, pose, shape) -> tuple[np.ndarray, np.ndarray]:
    return parametric_meshes(ms.param_hand, {"global_orient": np.atleast_2d(go), "pose": np.atleast_2d(pose),
                                             "shape": np.atleast_2d(shape)})


def test_params_in_hand_result_and_npz(stage_with_head):
    est = CascadeEstimator(stage1=FakeStage1(_stage1()), mesh_stage=stage_with_head)
    (r,) = est.run(np.zeros((240, 320, 3), np.uint8), n=N, steps=STEPS)
    assert r.params is not None and r.params is r.mesh.params
    assert "params_s" in r.timings
    d = r.to_npz_dict()
    v = r.vertices.shape[0]
    for k, shape in dict(PARAM_KEYS, param_vertex_hypotheses=(N, v, 3), param_vertices=(v, 3)).items():
        assert d[k].shape == shape and d[k].dtype == np.float32, k
    assert np.ptp(d["param_hypotheses_pose"], axis=0).max() > 1e-3   # one set per hypothesis, not copies
    # the stored meshes are the Anny meshes of the stored parameters (right hand: no mirroring)
    pv, pj = _anny(stage_with_head, d["param_global_orient"], d["param_pose"], d["param_shape"])
    np.testing.assert_allclose(d["param_vertices"], pv[0], atol=1e-5)
    hv, _ = _anny(stage_with_head, d["param_hypotheses_global_orient"], d["param_hypotheses_pose"],
                  d["param_hypotheses_shape"])
    np.testing.assert_allclose(d["param_vertex_hypotheses"], hv, atol=1e-5)


def test_left_hand_params_are_the_right_models_and_meshes_mirrored(stage_with_head):
    right, left, img = mirrored_pair()
    pr = stage_with_head.run_hand(img, right, steps=STEPS, seed=3).params
    pl = stage_with_head.run_hand(img, left, steps=STEPS, seed=3).params
    np.testing.assert_allclose(pl.hyp_pose, pr.hyp_pose, atol=1e-5)        # the right-hand model's parameters
    np.testing.assert_allclose(pl.global_orient, pr.global_orient, atol=1e-5)
    np.testing.assert_allclose(pl.hyp_vertices, mirror_x(pr.hyp_vertices), atol=1e-5)
    np.testing.assert_allclose(pl.vertices, mirror_x(pr.vertices), atol=1e-5)
    np.testing.assert_allclose(pl.joints, mirror_x(pr.joints), atol=1e-5)
    assert np.abs(pl.vertices[:, 0] - pr.vertices[:, 0]).max() > 1e-3  # mirroring is not a no-op here


def test_several_hands_batched_get_their_params(stage_with_head):
    from core.multihand import mesh_hands

    w = 320
    s1s = [_stage1("right", w, seed=1), _stage1("left", w, seed=2)]
    img = np.random.default_rng(0).integers(0, 255, (240, w, 3), np.uint8)
    out = mesh_hands(stage_with_head, img, s1s, steps=STEPS, seed=0)
    for r, mirrored in zip(out, (False, True)):
        p = r.params
        assert p.hyp_pose.shape == (N, 45) and p.hyp_vertices.shape == r.vertex_hypotheses.shape
        pv, pj = _anny(stage_with_head, p.global_orient, p.pose, p.shape)
        want_v, want_j = (mirror_x(pv[0]), mirror_x(pj[0])) if mirrored else (pv[0], pj[0])
        np.testing.assert_allclose(p.vertices, want_v, atol=1e-5)
        np.testing.assert_allclose(p.joints, want_j, atol=1e-5)
    assert not np.allclose(out[0].params.hyp_pose, out[1].params.hyp_pose)


def test_no_head_no_params_no_error(tmp_path):
    assert _load_param_head(tmp_path) is None                # weights missing: no parameters, no error
    ms = tiny_mesh_stage()
    assert ms.param_head is None
    est = CascadeEstimator(stage1=FakeStage1(_stage1()), mesh_stage=ms)
    (r,) = est.run(np.zeros((240, 320, 3), np.uint8), n=N, steps=STEPS)
    assert r.params is None and r.mesh.params is None
    assert not any(k.startswith("param_") for k in r.to_npz_dict())


def test_pose_file_arrays_round_trip(stage_with_head, tmp_path):
    from core.errors import InputError
    from core.io.atomic import write_npz
    from core.io.poses import load_pose_file, pose_file_arrays

    p = stage_with_head.run_hand(np.zeros((240, 320, 3), np.uint8), _stage1("left"), steps=STEPS).params
    write_npz(tmp_path / "h2.npz", pose_file_arrays(p, 2, "left"))
    pf = load_pose_file(tmp_path / "h2.npz")
    assert pf.model == "anny" and pf.side == "left"
    np.testing.assert_allclose(pf.pose, p.hyp_pose[2])
    np.testing.assert_allclose(pf.global_orient, p.hyp_global_orient[2])
    np.testing.assert_allclose(pf.shape, p.hyp_shape[2])
    np.testing.assert_allclose(pf.joints, p.hyp_joints[2])
    agg = pose_file_arrays(p, None, "left")
    np.testing.assert_allclose(agg["pose"], p.pose)
    with pytest.raises(InputError, match="hypothesis 99"):
        pose_file_arrays(p, 99)


def test_infer_writes_params_and_pose_files_that_complete_opens(tmp_path, capsys):
    """The shipped models on the sample photo: param_* keys, the parametric aggregate close to the decoded
    one, and a hypothesis saved as a pose file completed by `pose-viewer complete`."""
    try:
        head = _load_param_head()
    except Exception as exc:   # noqa: BLE001 - any failure to load is reported by the test below
        pytest.fail(f"parameter head: {exc}")
    if head is None:
        pytest.skip("parameter head not shipped")
    n = 6
    out = tmp_path / "out"
    rc = main(["infer", str(SAMPLE_IMAGE), "--out", str(out), "-n", str(n), "--steps", "5", "--device", "cpu",
               "--stage", "2", "--pose-files"])
    assert rc == 0, capsys.readouterr().err
    folder = out / SAMPLE_IMAGE.stem
    r = np.load(folder / "result.npz")
    assert r["param_hypotheses_pose"].shape == (n, 45) and r["param_pose"].shape == (45,)
    assert r["param_vertex_hypotheses"].shape == r["vertex_hypotheses"].shape
    err_mm = np.linalg.norm(r["param_vertices"] - r["vertices"], axis=1).mean() * 1000
    assert err_mm < 10.0, f"parametric aggregate {err_mm:.1f} mm from the decoded one"
    poses = sorted(p.name for p in (folder / "poses").iterdir())
    assert poses == ["aggregate.npz"] + [f"hypothesis_{i:03d}.npz" for i in range(n)]
    with np.load(folder / "poses" / "hypothesis_003.npz") as z:
        np.testing.assert_allclose(z["pose"], r["param_hypotheses_pose"][3])
        assert str(z["side"]) == str(r["handedness"])
    rc = main(["complete", str(folder / "poses" / "hypothesis_003.npz"), "--out", str(tmp_path / "done"),
               "--mask", "8,12", "-n", "2", "--iters", "30", "--prior", "dposer"])
    assert rc == 0, capsys.readouterr().err
    with np.load(tmp_path / "done" / "hypothesis_003.npz") as z:
        assert z["joints"].shape == (2, 21, 3) and np.isfinite(z["joints"]).all()
        # the visible joints stay where the hypothesis put them
        vis = np.ones(21, bool)
        vis[[8, 12]] = False
        np.testing.assert_allclose(z["observed"], r["param_joint_hypotheses"][3], atol=1e-6)
        err = np.linalg.norm(z["joints"][:, vis] - z["observed"][vis], axis=-1).mean() * 1000
        assert err < 8.0, err   # mm, as tests/test_complete_cli.py asks of a 30-iteration completion


def test_trajectory_params_per_step_and_the_last_step_is_the_result(stage_with_head):
    """Parameters of every stage-2 step's x̂0 mesh (asked for): (S,N,·) arrays in the npz, and the last
    step's x̂0 is the final sample, so its parameters are the result's."""
    est = CascadeEstimator(stage1=FakeStage1(_stage1()), mesh_stage=stage_with_head)
    (r,) = est.run(np.zeros((240, 320, 3), np.uint8), n=N, steps=STEPS)
    assert "trajectory_param_pose" not in r.to_npz_dict()
    tp = est.trajectory_params(r)
    s = r.trajectory_latents_x0.shape[0]
    assert tp["pose"].shape == (s, N, 45) and tp["global_orient"].shape == (s, N, 3)
    assert tp["shape"].shape == (s, N, 10)
    assert np.abs(tp["pose"][0] - tp["pose"][-1]).max() > 1e-4   # the steps differ
    np.testing.assert_allclose(tp["pose"][-1], r.params.hyp_pose, atol=1e-4)
    d = r.to_npz_dict()
    assert d["trajectory_param_pose"].shape == (s, N, 45)
