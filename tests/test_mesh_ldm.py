"""Stage-2 Mesh LDM (DiT, adaLN-Zero, per-level cross-attention): tiny random models, fast."""
from __future__ import annotations

import pytest
import torch

from core.diffusion import GaussianDiffusion, make_schedule
from core.nets.image_encoder import ImageEncoder, ImageEncoderConfig
from core.nets.mesh_ldm import MeshLDM, MeshLDMConfig

TINY_ENC = ImageEncoderConfig(widths=[8, 8, 16, 16], stem=8, res=64)


def tiny(width=32, depth=2):
    torch.manual_seed(0)
    enc = ImageEncoder(TINY_ENC).eval()
    ldm = MeshLDM(MeshLDMConfig(width=width, depth=depth, heads=2, cross_heads=2, level_dims=enc.level_dims))
    return enc, ldm


def randomise(m: torch.nn.Module):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_encoder_levels():
    enc = ImageEncoder(TINY_ENC)
    toks, hm, j = enc(torch.rand(2, 3, 64, 64))
    assert [t.shape[1] for t in toks] == [64, 64, 16, 4]        # at res 64: 16² pooled to 8², 8², 4², 2²
    assert [t.shape[2] for t in toks] == [8, 8, 16, 16]
    assert hm.shape == (2, 21, 16, 16) and j.shape == (2, 21, 3)


def test_adaln_zero_starts_at_zero_output():
    enc, ldm = tiny()
    levels = enc.features(torch.rand(1, 3, 64, 64))
    out = ldm(torch.randn(4, 168), torch.full((4,), 10), torch.randn(4, 21, 3), levels=levels)
    assert out.shape == (4, 168)
    assert torch.count_nonzero(out) == 0


def test_context_once_per_image_equals_per_sample_context():
    enc, ldm = tiny()
    randomise(ldm)
    levels = enc.features(torch.rand(2, 3, 64, 64))
    x, j, t = torch.randn(6, 168), torch.randn(6, 21, 3), torch.randint(0, 1000, (6,))
    ctx = ldm.prepare_context(levels)                         # 2 images, 3 hypotheses each (sample-major)
    folded = ldm(x, t, j, ctx)
    per_sample = ldm(x, t, j, levels=[l.repeat_interleave(3, 0) for l in levels])
    torch.testing.assert_close(folded, per_sample, atol=1e-5, rtol=1e-4)
    # the image matters and the joints matter
    other = ldm(x, t, j, levels=[l.flip(0).repeat_interleave(3, 0) for l in levels])
    assert (other - per_sample).abs().max() > 1e-4
    assert (ldm(x, t, j + 1, ctx) - folded).abs().max() > 1e-4
    with pytest.raises(ValueError):
        ldm(x[:5], t[:5], j[:5], ctx)


def test_ddim_with_shared_context_and_training_signal():
    enc, ldm = tiny()
    diff = GaussianDiffusion(make_schedule("linear"))
    with torch.no_grad():
        levels = enc.features(torch.rand(1, 3, 64, 64))
    ctx = ldm.prepare_context(levels)
    j = torch.randn(5, 21, 3)
    res = diff.ddim_sample(ldm, (5, 168), steps=4, seed=0, joints=j, context=ctx)
    assert res.xs.shape == (5, 5, 168) and res.x0_preds.shape == (4, 5, 168)
    # a few optimisation steps reduce the x0 loss on a fixed batch
    opt = torch.optim.Adam(ldm.parameters(), 3e-3)
    x0 = torch.randn(8, 168)
    jj = torch.randn(8, 21, 3)
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (8,), generator=g)
    xt = diff.q_sample(x0, t, torch.randn(8, 168, generator=g))
    lv = [l.expand(8, -1, -1) for l in levels]
    losses = []
    for _ in range(40):
        loss = ((ldm(xt, t, jj, levels=lv) - x0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_default_size_fits_the_cpu_budget():
    ldm = MeshLDM()
    # 2 × 50 hypotheses × 10 steps must stay well under the ~0.7 s stage-2 share (~150 GFLOP/s peak).
    total = ldm.flops_per_sample() * 100 * 10
    assert total < 40e9, f"{total / 1e9:.1f} GFLOP"
