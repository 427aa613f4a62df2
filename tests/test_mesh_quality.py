"""The roughness figure (core.mesh.roughness) and the decoder's surface terms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.mesh.roughness import (SurfaceTerms, dihedral_angles, face_adjacency, roughness, roughness_per_mesh,
                                 unique_edges)


def grid(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A flat n×n vertex grid in the z = 0 plane, two triangles a cell."""
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], 1)
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            f += [(a, b, d), (a, d, c)]
    return v, np.array(f)


def test_adjacency_of_a_tetrahedron():
    faces = np.array([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    adj = face_adjacency(faces)
    assert len(adj) == 6 and len(unique_edges(faces)) == 6
    assert {tuple(sorted(p)) for p in adj.tolist()} == {(i, j) for i in range(4) for j in range(i + 1, 4)}


def test_folded_pair_is_90_degrees_and_flat_grid_zero():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 3, 1]])   # two faces sharing edge 0-1, at a right angle
    assert dihedral_angles(v, faces).item() == pytest.approx(90.0, abs=1e-6)
    gv, gf = grid()
    assert roughness(gv, gf) == pytest.approx(0.0, abs=1e-6)


def test_noise_makes_a_surface_rougher_and_bad_input_is_refused():
    gv, gf = grid(10)
    rng = np.random.default_rng(0)
    noisy = np.stack([gv + rng.normal(0, s, gv.shape) * [0, 0, 1] for s in (0.02, 0.2)])
    r = roughness_per_mesh(noisy, gf)
    assert 0 < r[0] < r[1]
    with pytest.raises(ValueError):
        roughness(np.zeros((2, 5)), gf)
    with pytest.raises(ValueError):
        face_adjacency(np.zeros((4, 4), int))


def test_clean_anny_is_smooth_and_noise_is_not(anny_hand):
    from core.pose_sampler import sample_poses

    with torch.no_grad():
        v = anny_hand(torch.zeros(4, 3), torch.as_tensor(sample_poses(4, 1))).vertices
    clean = roughness(v, anny_hand.faces)
    assert 5 < clean < 16, clean                          # the figure of DESIGN §6 is 11-12° in sampled poses
    rough = roughness(v + torch.randn_like(v) * 0.001, anny_hand.faces)   # 1 mm vertex noise
    assert rough > 2 * clean


def test_surface_terms_zero_on_target_positive_off_it(anny_hand):
    with torch.no_grad():
        v = anny_hand(torch.zeros(2, 3), torch.zeros(2, 45)).vertices / 0.1
    terms = SurfaceTerms(anny_hand.faces, v.shape[1])
    same = terms(v, v)
    assert all(float(x) == pytest.approx(0.0, abs=1e-6) for x in same.values())
    noisy = (v + torch.randn_like(v) * 0.01).requires_grad_(True)
    out = terms(noisy, v)
    assert all(float(x.detach()) > 0 for x in out.values())
    sum(out.values()).backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0
    # a smooth offset (translation) leaves the Laplacian and edge terms unchanged
    shifted = terms(v + 0.5, v)
    assert float(shifted["lap"]) < 1e-5 and float(shifted["edge"]) < 1e-5


def test_decoder_finetune_keeps_encoder_and_latent_statistics(tmp_path):
    """train_mesh_ae --finetune-decoder: a few steps from the shipped weights change the decoder only — the
    encoder and the latent mean / std the mesh LDM relies on are exported bit-for-bit unchanged."""
    from safetensors.torch import load_file

    from core.paths import MODELS_DIR
    from training import train_mesh_ae

    rc = train_mesh_ae.main(["--finetune-decoder", "--out", str(tmp_path / "run"), "--iters", "3", "--batch", "4",
                             "--n-test", "4", "--threads", "1", "--export", "--models-dir", str(tmp_path / "models")])
    assert rc == 0
    old = load_file(str(MODELS_DIR / "mesh_ae.safetensors"))
    new = load_file(str(tmp_path / "models" / "mesh_ae.safetensors"))
    assert set(old) == set(new)
    frozen = [k for k in old if k.startswith(("enc", "latent_"))]
    assert frozen and all(torch.equal(old[k], new[k]) for k in frozen)
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith(("dec", "head")))
