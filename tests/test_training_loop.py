"""The shared training-loop pieces (training/loop.py, training/checkpoint.py, training/results_doc.py):
the schedule each script used before it was shared, the EMA step, the wall-clock budget, the flags
and their old spellings, the atomic checkpoint and the resume of the older checkpoint layouts."""
from __future__ import annotations

import argparse
import json
import math
import pathlib

import pytest
import torch

from training import checkpoint, distributed
from training.loop import Budget, add_common_args, ema_update, lr_at, make_ema, optimiser_step, set_lr
from training.results_doc import write_section


def _cos(p: float) -> float:
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1)))


@pytest.mark.parametrize("it", [0, 1, 99, 100, 101, 250, 5000])
@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0, 1.7])
def test_lr_at_reproduces_the_schedules_the_scripts_had(it, progress):
    base = 2e-3
    # joint diffusion / mesh AE / DPoser: warm-up replaces the cosine factor
    old = base * (it + 1) / 100 if it < 100 else base * _cos(progress)
    assert lr_at(it, progress, base, 100) == old
    # image encoder / mesh LDM: the warm-up ramp multiplies the cosine factor
    old = base * min(1, (it + 1) / 100) * _cos(progress)
    assert lr_at(it, progress, base, 100, decay_in_warmup=True) == old


def test_lr_at_shape():
    assert lr_at(0, 0.0, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 0.0, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(10, 0.5, 1.0, 10) == pytest.approx(0.51)
    assert lr_at(10, 1.0, 1.0, 10) == pytest.approx(0.02)
    assert lr_at(10, 2.0, 1.0, 10) == pytest.approx(0.02)   # clamped past the end


def test_set_lr_scales_groups():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr_scale": 0.5}], lr=1.0)
    set_lr(opt, 0.2)
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.1]


def test_ema_update_ramp_and_decay():
    net = torch.nn.Linear(2, 1)
    ema = make_ema(net)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
        for p in ema.parameters():
            p.fill_(0.0)
    ema_update(ema, net, 0, 0.999)                # ramp: d = 1/10
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.9))
    ema_update(ema, net, 10**6, 0.5)             # decay caps d
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.95))


def test_budget_iterations_and_time():
    env = distributed.DistEnv()
    state = checkpoint.fresh_state()
    b = Budget(state, iters=4, minutes=0, env=env)
    state["it"] = 2
    assert b.progress() == 0.5 and not b.done()
    state["it"] = 4
    assert b.done()
    state = {"it": 0, "elapsed": 59.0, "log": []}        # resumed run: time already spent counts
    b = Budget(state, iters=1000, minutes=2, env=env)
    b.tick()
    assert state["elapsed"] >= 59.0 and b.progress() == pytest.approx(state["elapsed"] / 120)
    state["elapsed"] = 120.0
    assert b.done() and b.minutes_spent == 2.0
    assert b.advance() == 1 and state["it"] == 1 and state["elapsed"] >= 120.0


def test_optimiser_step_clips_each_set_on_its_own():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([a, b], lr=1.0)
    loss = (torch.tensor([3.0, 4.0, 0.0]) * a).sum() + (torch.tensor([0.3, 0.4, 0.0]) * b).sum()
    optimiser_step(opt, loss, [a], [b], max_norm=1.0)
    assert torch.allclose(a, torch.tensor([-0.6, -0.8, 0.0]))    # gradient norm 5 → clipped to 1
    assert torch.allclose(b, torch.tensor([-0.3, -0.4, 0.0]))    # norm 0.5: left as is


def _parse(argv, **kw):
    ap = argparse.ArgumentParser()
    add_common_args(ap, out="runs/x", iters=10, batch=4, lr=1e-3, threads=1, **kw)
    ap.add_argument("--export-dir", dest="models_dir", type=pathlib.Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def test_common_args_defaults_and_old_spellings():
    a = _parse([], warmup=5)
    assert a.out == pathlib.Path("runs/x") and a.iters == 10 and a.warmup == 5 and not a.export
    assert a.models_dir is None and not hasattr(a, "ema") and not hasattr(a, "ckpt_every")
    assert _parse(["--steps", "7"], iters_aliases=("--steps",)).iters == 7
    assert _parse(["--export-dir", "d"]).models_dir == pathlib.Path("d")
    assert _parse(["--models-dir", "d", "--export"]).models_dir == pathlib.Path("d")
    with pytest.raises(SystemExit):
        _parse(["--steps", "7"])                          # only where a script keeps that spelling


def _module_and_opt():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return net, opt


def test_save_is_atomic_and_resumes(tmp_path, capsys):
    net, opt = _module_and_opt()
    ema = make_ema(net)
    env = distributed.DistEnv()
    state = {"it": 7, "elapsed": 12.5, "log": [{"it": 7, "x": 1.0}]}
    args = argparse.Namespace(out=tmp_path, width=3)
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, env, state, net, opt, args, ema, mean=torch.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]   # no temporary file left
    ck = torch.load(path, weights_only=True)
    assert ck["args"] == {"out": str(tmp_path), "width": 3} and ck["world_size"] == 1 and "mean" in ck

    net2 = torch.nn.Linear(3, 2)
    ema2 = torch.nn.Linear(3, 2)
    state2, opt_state = checkpoint.resume(path, net2, env, ema2)
    assert state2 == state and opt_state is not None
    assert torch.equal(net2.weight, net.weight) and torch.equal(ema2.weight, ema.weight)
    assert f"resumed from {path} at iteration 7" in capsys.readouterr().out
    assert checkpoint.resume(tmp_path / "none.pt", net2, env) == (checkpoint.fresh_state(), None)


def test_rank_other_than_zero_does_not_write(tmp_path):
    net, opt = _module_and_opt()
    checkpoint.save(tmp_path / "ckpt.pt", distributed.DistEnv(rank=1, world_size=2), checkpoint.fresh_state(), net, opt)
    assert not (tmp_path / "ckpt.pt").exists()


def test_older_layouts_resume(tmp_path):
    """Joint-diffusion checkpoints ("net", "iter", JSON "log", Path args) and DPoser ones ("step") of
    runs made before the shared format load into the current layout."""
    net, opt = _module_and_opt()
    old_jd = tmp_path / "jd.pt"
    torch.save({"net": net.state_dict(), "ema": net.state_dict(), "opt": opt.state_dict(), "iter": 250,
                "elapsed": 61.0, "args": {"out": pathlib.PosixPath("runs/x")}, "log": json.dumps([{"iter": 250}]),
                "world_size": 1}, old_jd)
    ck = checkpoint.load(old_jd)
    assert ck["state"] == {"it": 250, "elapsed": 61.0, "log": [{"iter": 250}]} and "model" in ck
    net2 = torch.nn.Linear(3, 2)
    state, _ = checkpoint.restore(ck, old_jd, net2, distributed.DistEnv(), torch.nn.Linear(3, 2))
    assert state["it"] == 250 and torch.equal(net2.weight, net.weight)

    old_dposer = tmp_path / "last.pt"
    torch.save({"model": net.state_dict(), "ema": net.state_dict(), "opt": opt.state_dict(), "step": 40,
                "mean": torch.zeros(2), "std": torch.ones(2), "args": {}, "world_size": 1}, old_dposer)
    ck = checkpoint.load(old_dposer)
    assert ck["state"] == {"it": 40, "elapsed": 0.0, "log": []} and torch.equal(ck["std"], torch.ones(2))

    torch.save({"weights": net.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(SystemExit, match="not a training checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def test_write_section_replaces_only_its_block(tmp_path):
    doc = tmp_path / "results.md"
    write_section("<!-- a:begin -->\nA1\n<!-- a:end -->\n", "a", doc)
    write_section("<!-- b:begin -->\nB1\n<!-- b:end -->\n", "b", doc)
    write_section("<!-- a:begin -->\nA2\n<!-- a:end -->\n", "a", doc)
    text = doc.read_text()
    assert text.startswith("# Results") and "A2" in text and "A1" not in text and "B1" in text
    assert text.index("A2") < text.index("B1")                  # replaced in place, not appended
