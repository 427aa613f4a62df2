"""Stage-2 mesh resources and the SpiralNet++ autoencoder (fast: tiny models, no training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.mesh.sampling import load_sampling
from core.mesh.spiral import spiral_sequences, vertex_adjacency
from core.nets.mesh_ae import LATENT_DIM, MeshAE, MeshAEConfig, SpiralConv, kl_loss


@pytest.fixture(scope="module")
def sampling():
    return load_sampling()


def test_resource_levels_and_spirals(sampling):
    assert sampling.num_vertices[0] == 1609
    assert sampling.num_vertices == sorted(sampling.num_vertices, reverse=True)
    faces = sampling.level_faces
    for l, sp in enumerate(sampling.spirals):
        nv = sampling.num_vertices[l]
        assert sp.shape == (nv, 9)
        assert torch.equal(sp[:, 0], torch.arange(nv))          # spiral starts at the vertex itself
        adj = vertex_adjacency(faces[l], nv)
        # the next entries are the 1-ring (at least 3 of them on a manifold mesh)
        for v in range(0, nv, max(1, nv // 50)):
            ring = adj[v]
            k = min(len(ring), 8)
            assert set(sp[v, 1:1 + k].tolist()) <= ring
            assert len(set(sp[v].tolist())) == 9                  # no repeats on this mesh


def test_spiral_order_is_rotation_invariant():
    # Spirals depend on connectivity and local angles only, not on the mesh's placement.
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=1)
    v = np.asarray(ico.vertices) * np.random.default_rng(1).uniform(0.9, 1.1, (len(ico.vertices), 1))
    f = np.asarray(ico.faces)
    a = spiral_sequences(v, f, 9)
    assert len(set(a[0].tolist())) == 9
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    if np.linalg.det(rot) < 0:
        rot[:, 0] *= -1
    b = spiral_sequences(v @ rot.T + 0.3, f, 9)
    np.testing.assert_array_equal(a, b)


def test_resampling_rows_are_barycentric(sampling):
    for m in sampling.down + sampling.up:
        rows = m.sum(1)
        torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-4, rtol=0)
        assert (m >= -1e-6).all()
        assert int((m.abs() > 0).sum(1).max()) <= 3
    # down then up of the template stays within a few mm
    t = sampling.template.double()
    for l in range(len(sampling.down)):
        d, u = sampling.down[l].double(), sampling.up[l].double()
        err = (u @ (d @ t) - t).norm(dim=1).mean() * 1000
        assert err < 5.0, f"level {l}: {err:.2f} mm"
        t = d @ t


def test_joint_regressor_matches_model_joints(sampling, anny_hand):
    from core.pose_sampler import sample_poses, sample_shapes

    reg = sampling.joint_regressor
    torch.testing.assert_close(reg.sum(1), torch.ones(21), atol=1e-4, rtol=0)
    assert (reg >= 0).all()
    with torch.no_grad():
        out = anny_hand(torch.tensor([[0.3, -1.0, 0.5]] * 8), torch.from_numpy(sample_poses(8, 5)),
                        torch.from_numpy(sample_shapes(8, 5)))
    j = torch.einsum("jv,bvc->bjc", reg, out.vertices)
    err = (j - out.joints).norm(dim=-1).mean() * 1000
    assert err < 2.0, f"regressor error {err:.2f} mm"


def test_spiral_conv_fast_path_matches_gather():
    torch.manual_seed(0)
    sp = torch.randint(0, 30, (30, 9))
    for cin, cout in ((8, 3), (4, 16)):
        conv = SpiralConv(cin, cout, sp)
        x = torch.randn(2, 30, cin)
        ref = conv.lin(x[:, sp.reshape(-1)].reshape(2, 30, -1))
        torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-5)


def test_autoencoder_shapes_gradients_and_overfit(sampling):
    torch.manual_seed(0)
    ae = MeshAE(sampling, MeshAEConfig(channels=[8, 8, 16, 16]))
    x = (sampling.template - sampling.template.mean(0)) / 0.1
    x = torch.stack([x, x * torch.tensor([1.0, 0.9, 1.1])])
    y, mu, logvar = ae(x)
    assert y.shape == x.shape and mu.shape == (2, LATENT_DIM)
    opt = torch.optim.Adam(ae.parameters(), 3e-3)
    first = None
    for _ in range(60):
        y, mu, logvar = ae(x)
        loss = (y - x).abs().mean() + 1e-3 * kl_loss(mu, logvar)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    v, j = ae.decode_metres(mu)
    assert v.shape == (2, 1609, 3) and j.shape == (2, 21, 3)
    torch.testing.assert_close(j[:, 0], torch.zeros(2, 3))        # root-relative


def test_latent_whitening_round_trip(sampling):
    ae = MeshAE(sampling, MeshAEConfig(channels=[8, 8, 16, 16]))
    ae.latent_mean.normal_()
    ae.latent_std.uniform_(0.5, 2)
    z = torch.randn(3, LATENT_DIM)
    torch.testing.assert_close(ae.denormalise_latent(ae.normalise_latent(z)), z)
    assert "latent_mean" in ae.state_dict() and "down.0.idx" not in ae.state_dict()
