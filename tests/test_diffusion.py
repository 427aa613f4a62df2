"""Diffusion engine: schedules, forward noising, DDIM sampling, trajectory, progress and cancel."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.diffusion import GaussianDiffusion, ddim_timesteps, make_schedule
from core.errors import Cancelled


def test_linear_schedule_matches_paper():
    s = make_schedule("linear", 1000, 1e-4, 1e-2)
    assert s.num_steps == 1000
    assert float(s.betas[0]) == pytest.approx(1e-4)
    assert float(s.betas[-1]) == pytest.approx(1e-2)
    abar = s.alphas_cumprod.numpy()
    assert np.all(np.diff(abar) < 0)
    assert abar[-1] == pytest.approx(np.prod(1 - np.linspace(1e-4, 1e-2, 1000)))


def test_cosine_schedule_ends_near_pure_noise():
    s = make_schedule("cosine", 1000)
    abar = s.alphas_cumprod.numpy()
    assert abar[0] > 0.999 and abar[-1] < 1e-4
    assert np.all(np.diff(abar) <= 0)


def test_unknown_schedule_rejected():
    with pytest.raises(ValueError):
        make_schedule("quadratic")


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 1) == [999]
    ts = ddim_timesteps(1000, 10)
    assert len(ts) == 10 and ts[0] == 999 and ts == sorted(ts, reverse=True) and ts[-1] == 100
    assert len(set(ddim_timesteps(1000, 50))) == 50
    with pytest.raises(ValueError):
        ddim_timesteps(1000, 0)


def test_q_sample_statistics():
    d = GaussianDiffusion(make_schedule("linear"))
    x0 = torch.full((20000, 3), 2.0)
    t = torch.full((20000,), 500)
    xt = d.q_sample(x0, t, generator_noise := torch.randn(20000, 3))
    a = float(d.schedule.alphas_cumprod[500])
    assert torch.allclose(xt, a ** 0.5 * x0 + (1 - a) ** 0.5 * generator_noise)
    assert float(xt.mean()) == pytest.approx(2 * a ** 0.5, abs=0.02)


@pytest.mark.parametrize("shape", [(4, 21, 3), (3, 7), (2, 21, 8)])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_oracle_denoiser_reaches_target(shape, eta):
    """A denoiser that always predicts the same x0 must end exactly at x0 (any shape, any η)."""
    d = GaussianDiffusion(make_schedule("linear"))
    target = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    res = d.ddim_sample(lambda x, t: target.expand_as(x), shape, steps=10, eta=eta, seed=3)
    assert torch.allclose(res.x0, target, atol=1e-5)
    assert res.xs.shape == (11,) + shape and res.x0_preds.shape == (10,) + shape
    assert torch.allclose(res.xs[-1], res.x0)
    assert not torch.allclose(res.xs[0], target, atol=0.1)   # starts from noise


def test_ddim_conditions_and_timesteps_reach_denoiser():
    d = GaussianDiffusion(make_schedule("cosine"))
    seen = []

    def den(x, t, cond):
        seen.append(int(t[0]))
        assert t.shape == (x.shape[0],) and cond.shape == (x.shape[0], 2)
        return torch.zeros_like(x)

    d.ddim_sample(den, (5, 3), steps=4, cond=torch.ones(5, 2))
    assert seen == ddim_timesteps(1000, 4)


def test_seed_reproducible_and_hypotheses_distinct():
    d = GaussianDiffusion()
    den = lambda x, t: 0.5 * x  # noqa: E731 - a denoiser that keeps the noise's diversity
    a = d.ddim_sample(den, (8, 21, 3), steps=5, seed=7).x0
    b = d.ddim_sample(den, (8, 21, 3), steps=5, seed=7).x0
    c = d.ddim_sample(den, (8, 21, 3), steps=5, seed=8).x0
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert float((a[0] - a[1]).abs().max()) > 1e-3


def test_progress_and_cancel():
    d = GaussianDiffusion()
    calls = []
    d.ddim_sample(lambda x, t: x, (2, 3), steps=6, record=False, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 6) for i in range(1, 7)]
    ev = threading.Event()
    done = []

    def prog(i, n):
        done.append(i)
        if i == 2:
            ev.set()

    with pytest.raises(Cancelled):
        d.ddim_sample(lambda x, t: x, (2, 3), steps=6, progress=prog, cancel=ev)
    assert done == [1, 2]
    with pytest.raises(Cancelled):
        d.ddim_sample(lambda x, t: x, (2, 3), steps=6, cancel=lambda: True)


def test_training_loss_decreases_for_learnable_target():
    """One parameter denoiser: x̂0 = w·x_t + b learns the mean of a constant dataset."""
    torch.manual_seed(0)
    d = GaussianDiffusion()
    lin = torch.nn.Linear(3, 3)
    opt = torch.optim.Adam(lin.parameters(), lr=0.1)
    x0 = torch.full((256, 3), 1.5)
    first = d.training_loss(lambda x, t: lin(x), x0).item()
    for _ in range(80):
        loss = d.training_loss(lambda x, t: lin(x), x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_inference_precision_bf16_only_on_request_and_for_large_batches(monkeypatch):
    from core.device import BF16_MIN_BATCH, inference_precision

    monkeypatch.setenv("POSE_VIEWER_BF16", "1")
    with inference_precision("cpu", BF16_MIN_BATCH):
        assert torch.is_autocast_enabled("cpu")
    with inference_precision("cpu", 1):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv("POSE_VIEWER_BF16", "0")
    with inference_precision("cpu", 1000):
        assert not torch.is_autocast_enabled("cpu")


def test_ddim_in_bf16_stays_float32_and_close(monkeypatch):
    from core.diffusion import GaussianDiffusion, make_schedule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    diff = GaussianDiffusion(make_schedule("linear", 1000))
    out = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("POSE_VIEWER_BF16", flag)
        with torch.no_grad():
            r = diff.ddim_sample(lambda x, t: net(x), (32, 8), steps=5, seed=1)
        assert r.x0.dtype == torch.float32 and r.x0_preds.dtype == torch.float32
        out[flag] = r.x0
    assert not torch.equal(out["0"], out["1"])          # bf16 really ran
    torch.testing.assert_close(out["0"], out["1"], atol=0.05, rtol=0.05)
