"""DDP support of the training scripts (training/distributed.py), on CPU with the gloo backend.

Real `torchrun --standalone --nproc_per_node 2` launches of tiny runs (batch 2, a few iterations, a
handful of test meshes; nothing is exported except into tmp folders): the two ranks must end with
bit-identical parameters (`--check-sync`), and a run with the model deliberately left unwrapped must
fail that check, so the check can see unsynchronised gradients (i.e. the ranks really draw different
data). Rank 0 alone writes the (resumable) checkpoint, which plain `python -m` and torchrun both resume.
The image encoder and mesh LDM read a tiny two-split shard set (labels of `make_dataset`, random images).
"""
from __future__ import annotations

import json
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
TINY_JOINT = ["--batch", "4", "--table-size", "64", "--width", "16", "--depth", "1", "--heads", "2", "--threads", "1",
              "--warmup", "1", "--ckpt-every", "1000", "--eval-every", "1000", "--device", "cpu"]
TINY_ENCODER = ["--batch", "2", "--threads", "1", "--ckpt-every", "1000", "--eval-every", "1000", "--device", "cpu"]
TINY_LDM = ["--batch", "2", "--threads", "1", "--width", "32", "--depth", "1", "--stage1-samples", "2",
            "--eval-images", "1", "--eval-hyp", "2", "--ckpt-every", "1000", "--eval-every", "1000", "--device", "cpu"]

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


def _saves(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "] saved " in ln]


def _plain_resume(module: str, out: pathlib.Path, *args: str) -> str:
    """The same command without torchrun, on the folder a 2-rank run left at iteration 2: it must resume
    there as one process (no DDP, no rank-tagged saves, trivially in sync). Returns its log."""
    r = plain(module, *args, "--iters", "3", "--check-sync")
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert f"resumed from {out / 'ckpt.pt'} at iteration 2" in log
    assert "DDP:" not in log and "] saved " not in log and "over 1 ranks = 0 (in sync)" in log
    return log


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> pathlib.Path:
    """train/ (8 samples) and test/ (4 samples) shard folders: `make_dataset` labels, random images."""
    import numpy as np

    from training.data.make_dataset import SampleGenerator

    threads = torch.get_num_threads()
    gen = SampleGenerator(render=False)
    torch.set_num_threads(threads)
    root = tmp_path_factory.mktemp("shards")
    for split, seed, n in (("train", 1, 8), ("test", 2, 4)):
        d = gen.shard(seed, 0, n)
        d["images"] = np.random.default_rng(seed).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
        (root / split).mkdir()
        np.savez(root / split / "shard_00000.npz", **d)
    return root


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
    _plain_resume("training.train_mesh_ae", out, "--out", str(out), *TINY)
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
    assert ck["state"]["it"] == 2 and ck["world_size"] == 1

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
    assert ck2["state"]["it"] == 4 and ck2["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck2["model"])
    assert any(not torch.equal(ck["ema"][k], ck2["ema"][k]) for k in ck["ema"])


def test_joint_diffusion_ddp_in_sync_export_then_plain_resume(tmp_path):
    out, models = tmp_path / "joint", tmp_path / "models"
    r = torchrun("training.train_joint_diffusion", "--out", str(out), "--iters", "2", "--check-sync", "--export",
                 "--models-dir", str(models), *TINY_JOINT)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "DDP: 2 processes (gloo, cpu), batch 4 per rank = 8 per step" in log
    assert "sync check: max |weight difference| (model and EMA) over 2 ranks = 0 (in sync)" in log
    assert log.count("joint table table_seed0_n64.npy") == 1               # built by rank 0, loaded by rank 1
    assert _saves(log) == [f"[rank 0] saved {out / 'ckpt.pt'} at iteration 2"], _saves(log)
    assert log.count("val it 2:") == 1 and log.count("exported ") == 1      # rank 0 evaluates and exports
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["state"]["it"] == 2 and ck["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck["model"]), "checkpoint must hold the unwrapped model"
    entry = json.loads((models / "manifest.json").read_text())["joint_diffusion"]
    assert entry["train_command"].startswith("torchrun --nproc_per_node 2 -m training.train_joint_diffusion --out ")

    _plain_resume("training.train_joint_diffusion", out, "--out", str(out), *TINY_JOINT)
    ck2 = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck2["state"]["it"] == 3 and ck2["world_size"] == 1
    assert any(not torch.equal(ck["ema"][k], ck2["ema"][k]) for k in ck["ema"])


def test_image_encoder_plain_then_ddp_resume_in_sync(tmp_path, shards):
    out = tmp_path / "encoder"
    data = ["--data", str(shards / "train"), "--test", str(shards / "test"), "--out", str(out)]
    r = plain("training.train_image_encoder", *data, "--iters", "2", *TINY_ENCODER)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "DDP:" not in log and "] saved " not in log and "final test: {" in log
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["state"]["it"] == 2 and ck["world_size"] == 1

    r = torchrun("training.train_image_encoder", *data, "--iters", "4", "--check-sync", *TINY_ENCODER)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert log.count(f"resumed from {out / 'ckpt.pt'} at iteration 2") == 1  # printed by rank 0 only
    assert "DDP: 2 processes (gloo, cpu), batch 2 per rank = 4 per step" in log
    assert "sync check: max |weight difference| over 2 ranks = 0 (in sync)" in log
    assert _saves(log) == [f"[rank 0] saved {out / 'ckpt.pt'} at iteration 4"], _saves(log)
    assert log.count("final test: {") == 1
    ck2 = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck2["state"]["it"] == 4 and ck2["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck2["model"])
    assert any(not torch.equal(ck["model"][k], ck2["model"][k]) for k in ck["model"])


def test_mesh_ldm_ddp_shared_cache_in_sync_then_plain_resume(tmp_path, shards):
    out = tmp_path / "ldm"
    data = ["--data", str(shards / "train"), "--test", str(shards / "test"), "--out", str(out)]
    r = torchrun("training.train_mesh_ldm", *data, "--iters", "2", "--check-sync", *TINY_LDM)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert "DDP: 2 processes (gloo, cpu), batch 2 per rank = 4 per step" in log
    assert "sync check: max |weight difference| (model and EMA) over 2 ranks = 0 (in sync)" in log
    # Rank 0 builds the test cache (it alone evaluates) and the train cache, which rank 1 then loads.
    assert log.count("cache: 4 samples") == 1 and log.count("cache: 8 samples") == 1, log[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["cache_test_4_m10.pt", "cache_train_8_m2.pt", "ckpt.pt"]
    assert _saves(log) == [f"[rank 0] saved {out / 'ckpt.pt'} at iteration 2"], _saves(log)
    assert log.count("final test: {") == 1
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["state"]["it"] == 2 and ck["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck["model"])

    log = _plain_resume("training.train_mesh_ldm", out, *data, *TINY_LDM)
    assert "cache:" not in log
    ck2 = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck2["state"]["it"] == 3 and ck2["world_size"] == 1
    assert any(not torch.equal(ck["ema"][k], ck2["ema"][k]) for k in ck["ema"])

    # Warm start of a new run from a .safetensors export (as from resources/models/mesh_ldm.safetensors).
    from safetensors.torch import save_file

    save_file(ck2["ema"], str(tmp_path / "ldm.safetensors"))
    warm = tmp_path / "warm"
    r = plain("training.train_mesh_ldm", "--data", str(shards / "train"), "--test", str(shards / "test"),
              "--out", str(warm), "--init", str(tmp_path / "ldm.safetensors"), "--iters", "1", *TINY_LDM)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    assert f"warm start from the weights of {tmp_path / 'ldm.safetensors'}" in log
    ck3 = torch.load(warm / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck3["state"]["it"] == 1
    # EMA after one step is 0.999 · init + 0.001 · model: within 1e-3 of the exported weights.
    assert max((ck3["ema"][k] - ck2["ema"][k]).abs().max().item() for k in ck2["ema"]) < 1e-3


@pytest.mark.parametrize("module", ["train_joint_diffusion", "train_image_encoder", "train_mesh_ldm"])
def test_sync_check_catches_unsynchronised_ranks_new_scripts(tmp_path, shards, module):
    """Negative control as for the mesh AE: without the DDP wrapper the ranks' different batches make
    the weights drift apart, so --check-sync fails the run (and the passing runs above are not trivial)."""
    data = ["--data", str(shards / "train"), "--test", str(shards / "test")]
    tiny = {"train_joint_diffusion": TINY_JOINT, "train_image_encoder": data + TINY_ENCODER,
            "train_mesh_ldm": data + TINY_LDM}[module]
    r = torchrun(f"training.{module}", "--out", str(tmp_path / "nosync"), "--iters", "1", "--check-sync",
                 "--no-ddp-wrap", *tiny)
    log = _out(r)
    assert r.returncode != 0, log[-4000:]
    assert "NOT IN SYNC" in log


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
    assert env.check_sync(m) is True
    assert distributed.rank_int_seed(7, env) == 7                      # rank 0: a single process's seed
    other = distributed.rank_int_seed(7, distributed.DistEnv(rank=1, world_size=2))
    assert other not in range(7, 7 + 10**6) and 0 <= other < 2**63
    assert env.command("training.x", ["--out", "a b"]) == "python -m training.x --out 'a b'"
    assert distributed.DistEnv(rank=1, world_size=2).command("training.x", []) == \
        "torchrun --nproc_per_node 2 -m training.x "
    with env.main_first():   # no process group: just runs the block
        pass


def test_mesh_ldm_encoder_fine_tuning_trains_and_exports_the_encoder(tmp_path, shards):
    """--encoder-lr: the encoder is trained with the LDM (not frozen) and exported under its own name,
    which the exported LDM names, so the cascade loads the pair."""
    import shutil

    from safetensors.torch import load_file

    from core.cascade import MeshStage
    from core.paths import MODELS_DIR

    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    out = tmp_path / "ft"
    r = plain("training.train_mesh_ldm", "--data", str(shards / "train"), "--test", str(shards / "test"),
              "--out", str(out), "--iters", "3", "--encoder-lr", "1.0", "--export", "--models-dir", str(models),
              *TINY_LDM)
    log = _out(r)
    assert r.returncode == 0, log[-4000:]
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["mesh_ldm"]["config"]["image_encoder"] == "image_encoder_ldm"
    before = load_file(str(models / "image_encoder.safetensors"))
    after = load_file(str(models / manifest["image_encoder_ldm"]["file"]))
    assert before.keys() == after.keys()
    # (A fresh LDM's adaLN-zero gates pass no gradient to the image tokens at first, hence the large
    # encoder learning rate of this 3-iteration run, warm-up included.)
    assert any(not torch.equal(before[k], after[k]) for k in before), "the encoder was not trained"
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    assert "encoder" in ck and "ema_encoder" in ck
    stage = MeshStage.from_weights("cpu", models_dir=models)
    assert all(torch.equal(p.detach(), after[k]) for k, p in stage.encoder.state_dict().items())
    # --eval-only of the run evaluates with its own (fine-tuned) encoder.
    r = plain("training.train_mesh_ldm", "--data", str(shards / "train"), "--test", str(shards / "test"),
              "--out", str(out), "--encoder-lr", "1.0", "--eval-only", "--models-dir", str(models), *TINY_LDM)
    assert r.returncode == 0, _out(r)[-4000:]
    assert f"resumed from {out / 'ckpt.pt'} at iteration 3" in r.stdout and '"pa_mpvpe"' in r.stdout
