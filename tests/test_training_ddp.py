"""DDP support of the training scripts (training/distributed.py), on CPU with the gloo backend.

Real `torchrun --standalone --nproc_per_node 2` launches of tiny runs (batch 2, a few iterations, a
handful of test meshes; nothing is exported): the two ranks must end with bit-identical parameters
(`--check-sync`), and a run with the model deliberately left unwrapped must fail that check, so the
check can see unsynchronised gradients. Rank 0 alone writes the (resumable) checkpoint.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ["--batch", "2", "--n-test", "4", "--threads", "1", "--warmup", "1", "--ckpt-every", "1000",
        "--eval-every", "1000", "--device", "cpu"]
TINY_DPOSER = ["--batch", "16", "--width", "32", "--blocks", "1", "--threads", "1", "--warmup", "1",
               "--no-export", "--device", "cpu"]

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""          # CPU / gloo even on a GPU machine
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def torchrun(module: str, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", module, *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)


def plain(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)


def _out(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


def test_mesh_ae_ddp_two_ranks_in_sync_then_plain_resume(tmp_path):
    out = tmp_path / "mesh_ae"
    r = torchrun("training.train_mesh_ae", "--out", str(out), "--iters", "2", "--check-sync", *TINY)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "DDP: 2 processes (gloo, cpu), batch 2 per rank = 4 per step" in log
    assert "sync check: max |param difference| over 2 ranks = 0 (in sync)" in log
    saves = [ln for ln in log.splitlines() if "] saved " in ln]
    assert saves == [f"[rank 0] saved {out / 'ckpt.pt'} at iteration 2"], saves   # rank 0, once
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.pt"]
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["state"]["it"] == 2 and ck["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck["model"]), "checkpoint must hold the unwrapped model"
    assert log.count("final test (4 meshes of the held-out split)") == 1   # 2 + 2 meshes, summed on rank 0

    # The plain (non-torchrun) path: same command without torchrun resumes the DDP checkpoint.
    r = plain("training.train_mesh_ae", "--out", str(out), "--iters", "3", "--check-sync", *TINY)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert f"resumed from {out / 'ckpt.pt'} at iteration 2" in log
    assert "DDP:" not in log and "] saved " not in log and "over 1 ranks = 0 (in sync)" in log
    ck2 = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck2["state"]["it"] == 3 and ck2["world_size"] == 1
    assert any(not torch.equal(ck["model"][k], ck2["model"][k]) for k in ck["model"])


def test_mesh_ae_sync_check_catches_unsynchronised_ranks(tmp_path):
    """Negative control: same launch, model not wrapped in DDP → each rank steps on its own batch and
    the parameters drift apart; --check-sync must report it and fail the run."""
    r = torchrun("training.train_mesh_ae", "--out", str(tmp_path / "nosync"), "--iters", "1", "--check-sync",
                 "--no-ddp-wrap", *TINY)
    log = _out(r)
    assert r.returncode != 0, log[-4000:]
    assert "NOT IN SYNC" in log


def test_dposer_plain_then_ddp_resume_in_sync(tmp_path):
    out = tmp_path / "dposer"
    r = plain("training.train_dposer", "--out", str(out), "--steps", "2", *TINY_DPOSER)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "] saved " not in log and "final heldout(ema)" in log
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 2 and ck["world_size"] == 1

    # torchrun resumes it on both ranks (model, EMA, optimizer state) and keeps them identical.
    r = torchrun("training.train_dposer", "--out", str(out), "--steps", "4", "--check-sync", *TINY_DPOSER)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert log.count(f"resumed from {out / 'last.pt'} at step 2") == 1        # printed by rank 0 only
    assert "per rank × 2 processes (gloo, cpu)" in log
    assert "sync check: max |weight difference| (model and EMA) over 2 ranks = 0 (in sync)" in log
    saves = [ln for ln in log.splitlines() if "] saved " in ln]
    assert saves == [f"[rank 0] saved {out / 'last.pt'} at step 4"], saves
    assert log.count("final heldout(ema)") == 1
    ck2 = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck2["step"] == 4 and ck2["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck2["model"])
    assert any(not torch.equal(ck["ema"][k], ck2["ema"][k]) for k in ck["ema"])


def test_distributed_helpers_single_process():
    from training import distributed

    env = distributed.DistEnv()
    assert env.is_main and not env.distributed and env.world_size == 1
    m = torch.nn.Linear(2, 2)
    assert distributed.wrap(m, env) is m and distributed.unwrap(m) is m
    assert distributed.rank_seed([3, 5], env) == [3, 5]
    assert distributed.rank_seed(3, distributed.DistEnv(rank=2, world_size=4)) == [3, 2]
    assert list(distributed.shard(list(range(10)), distributed.DistEnv(rank=1, world_size=4))) == [1, 5, 9]
    assert list(distributed.shard(list(range(3)), env)) == [0, 1, 2]
    assert env.all_reduce_mean([1.0, 2.0]) == [1.0, 2.0] and env.max_float(4.0) == 4.0
    assert env.params_max_diff(m) == 0.0


# --- the cascade's three scripts (stage 1 lifter, stage 2 image encoder and mesh LDM) ----------------

TINY_JD = ["--batch", "4", "--table-size", "256", "--width", "32", "--depth", "1", "--heads", "2", "--threads", "1",
           "--eval-every", "1000", "--ckpt-every", "1000", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_renders(tmp_path_factory) -> list[str]:
    """16 train + 8 test rendered samples (training.data.make_dataset), the stage-2 scripts' input."""
    root = tmp_path_factory.mktemp("renders")
    for split, n in (("train", 16), ("test", 8)):
        r = plain("training.data.make_dataset", "--split", split, "--n", str(n), "--shard-size", str(n),
                  "--out", str(root / split))
        assert r.returncode == 0, _out(r)[-4000:]
    return ["--data", str(root / "train"), "--test", str(root / "test"), "--batch", "2", "--threads", "1",
            "--eval-every", "1000", "--ckpt-every", "1000", "--device", "cpu"]


def _stage_args(module: str, renders: list[str]) -> list[str]:
    if module == "training.train_joint_diffusion":
        return TINY_JD
    extra = ["--eval-images", "4", "--eval-hyp", "2"] if module == "training.train_mesh_ldm" else []
    return renders + extra


@pytest.mark.parametrize("module, model_key", [("training.train_joint_diffusion", "net"),
                                               ("training.train_image_encoder", "model"),
                                               ("training.train_mesh_ldm", "model")])
def test_cascade_scripts_ddp_two_ranks_in_sync_then_plain_resume(tmp_path, tiny_renders, module, model_key):
    out = tmp_path / "run"
    args = _stage_args(module, tiny_renders)
    r = torchrun(module, "--out", str(out), "--iters", "2", "--check-sync", *args)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "DDP: 2 processes (gloo, cpu)" in log
    assert "over 2 ranks = 0 (in sync)" in log
    saves = [ln for ln in log.splitlines() if "] saved " in ln]
    assert saves == [f"[rank 0] saved {out / 'ckpt.pt'} at iteration 2"], saves   # rank 0, once
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck[model_key]), "checkpoint must hold the unwrapped model"

    # Plain python resumes the DDP checkpoint on one process and trains on.
    r = plain(module, "--out", str(out), "--iters", "3", "--check-sync", *args)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "resumed" in log and "at iteration 2" in log and "DDP:" not in log
    ck2 = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck2["world_size"] == 1
    assert any(not torch.equal(ck[model_key][k], ck2[model_key][k]) for k in ck[model_key])


def test_joint_diffusion_sync_check_catches_unsynchronised_ranks(tmp_path):
    r = torchrun("training.train_joint_diffusion", "--out", str(tmp_path / "nosync"), "--iters", "1",
                 "--check-sync", "--no-ddp-wrap", *TINY_JD)
    log = _out(r)
    assert r.returncode != 0, log[-4000:]
    assert "NOT IN SYNC" in log
