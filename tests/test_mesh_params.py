"""Anny parameters for mesh hypotheses (core.mesh.params): shapes, rotations, and that the shipped head's
parameters reproduce the mesh they were read from."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.mesh.params import (ParamHead, hypothesis_params, matrix_to_rot6d, parametric_meshes,
                              params_from_vertices, rot6d_to_matrix)


def test_rot6d_round_trip_and_orthonormal():
    from core.geometry import axis_angle_to_matrix

    r = axis_angle_to_matrix(torch.randn(20, 3))
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(r)), r, atol=1e-5)
    q = rot6d_to_matrix(torch.randn(50, 6))
    assert torch.allclose(q.transpose(-1, -2) @ q, torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(q), torch.ones(50), atol=1e-5)


def test_untrained_head_gives_rest_pose_and_neutral_shape():
    from core.hand.anny_hand import NEUTRAL_SHAPE

    p = hypothesis_params(ParamHead(), torch.randn(5, 168))
    assert p["global_orient"].shape == (5, 3) and p["pose"].shape == (5, 45) and p["shape"].shape == (5, 10)
    assert all(v.dtype == np.float32 for v in p.values())
    assert np.abs(p["pose"]).max() < 1e-5 and np.abs(p["global_orient"]).max() < 1e-5
    np.testing.assert_allclose(p["shape"], np.tile(NEUTRAL_SHAPE, (5, 1)), atol=1e-6)


def test_bad_latents_are_refused():
    with pytest.raises(ValueError, match="latents must be"):
        hypothesis_params(ParamHead(), torch.zeros(3, 100))


@pytest.fixture(scope="module")
def shipped():
    from core.mesh.params import load_param_head
    from core.nets.mesh_ae import load_mesh_ae

    return load_param_head(), load_mesh_ae()


def test_parameters_reproduce_their_mesh(anny_hand, shipped):
    """Meshes of known parameters → the AE encoder → the head → Anny: the parametric mesh must lie close
    to the input mesh (the head is trained for this; an untrained head is ~30 mm off)."""
    from core.metrics import pa_mpjpe
    from core.pose_sampler import sample_poses, sample_shapes
    from training.data.camera import sample_orientations

    head, ae = shipped
    rng = np.random.default_rng(11)
    n = 16
    with torch.no_grad():
        v = anny_hand(torch.as_tensor(sample_orientations(n, rng), dtype=torch.float32),
                      torch.as_tensor(sample_poses(n, rng)), torch.as_tensor(sample_shapes(n, rng))).vertices
    p = params_from_vertices(head, ae, v + torch.tensor([0.1, -0.2, 0.5]))   # translation does not matter
    pv, pj = parametric_meshes(anny_hand, p)
    err = np.linalg.norm(pv - v.numpy(), axis=-1).mean(1) * 1000
    pa = pa_mpjpe(pv, v.numpy()) * 1000
    assert err.mean() < 12.0, err
    assert pa.mean() < 7.0, pa
    assert pj.shape == (n, 21, 3) and np.abs(pj[:, 0]).max() < 1e-6      # wrist at the origin
    untrained = parametric_meshes(anny_hand, params_from_vertices(ParamHead(), ae, v))[0]
    assert (np.linalg.norm(untrained - v.numpy(), axis=-1).mean(1) * 1000).mean() > 2 * err.mean()


def test_params_from_vertices_refuses_wrong_topology(shipped):
    head, ae = shipped
    with pytest.raises(ValueError, match="vertices must be"):
        params_from_vertices(head, ae, torch.zeros(2, 100, 3))


def test_params_for_latents_splits_hypotheses_and_aggregate(anny_hand, shipped):
    from core.mesh.params import params_for_latents

    head, ae = shipped
    z = (torch.randn(7, 168) * 0.5 * ae.latent_std + ae.latent_mean).numpy()
    mp = params_for_latents(head, ae, z, z.mean(0), hand=anny_hand)
    assert mp.hyp_pose.shape == (7, 45) and mp.hyp_global_orient.shape == (7, 3) and mp.hyp_shape.shape == (7, 10)
    assert mp.pose.shape == (45,) and mp.shape.shape == (10,) and mp.global_orient.shape == (3,)
    assert mp.hyp_vertices.shape == (7, anny_hand.num_vertices, 3) and mp.vertices.shape == (anny_hand.num_vertices, 3)
    single = hypothesis_params(head, ae.normalise_latent(torch.as_tensor(z[2:3])))
    np.testing.assert_allclose(mp.hyp_pose[2], single["pose"][0], atol=1e-5)
    again = parametric_meshes(anny_hand, {"global_orient": mp.global_orient[None], "pose": mp.pose[None],
                                          "shape": mp.shape[None]})[0][0]
    np.testing.assert_allclose(mp.vertices, again, atol=1e-6)
    names = {"param_hypotheses_global_orient", "param_hypotheses_pose", "param_hypotheses_shape",
             "param_global_orient", "param_pose", "param_shape"}
    assert set(params_for_latents(head, ae, z, z.mean(0)).npz()) == names      # no hand: parameters only
    keys = mp.npz()
    assert set(keys) == names | {"param_vertex_hypotheses", "param_vertices", "param_joint_hypotheses",
                                 "param_joints"}
    assert keys["param_vertex_hypotheses"].shape == (7, anny_hand.num_vertices, 3)
