"""Shipped weights: loaded without pickle, checked against the manifest, clear errors when damaged."""
import json
import pickle

import pytest
import torch

from core.errors import WeightsError
from core.weights import load_weights, save_weights


@pytest.fixture
def models(tmp_path):
    save_weights("tiny", {"w": torch.ones(3, 4), "b": torch.zeros(4)}, {"width": 4},
                 "python -m training.train_tiny", metrics={"mm": 1.0}, models_dir=tmp_path)
    return tmp_path


def test_roundtrip_and_manifest(models):
    state, entry = load_weights("tiny", models_dir=models)
    assert state["w"].dtype == torch.float32 and torch.equal(state["w"], torch.ones(3, 4))
    assert entry["config"] == {"width": 4} and len(entry["sha256"]) == 64
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["tiny"]["train_command"] == "python -m training.train_tiny"


def test_missing_file_names_the_retrain_command(models):
    (models / "tiny.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing.*training.train_tiny"):
        load_weights("tiny", models_dir=models)
    with pytest.raises(WeightsError, match="missing"):
        load_weights("other", models_dir=models)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_file_is_refused(models, damage):
    p = models / "tiny.safetensors"
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        p.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        p.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="checksum.*training.train_tiny"):
        load_weights("tiny", models_dir=models)


def test_corrupt_file_without_checksum_is_still_refused(models):
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["tiny"]["sha256"] = ""
    (models / "manifest.json").write_text(json.dumps(manifest))
    (models / "tiny.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_weights("tiny", models_dir=models)


def test_pickle_disguised_as_weights_never_runs(models, tmp_path):
    marker = tmp_path / "payload-ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    manifest = json.loads((models / "manifest.json").read_text())
    manifest["tiny"]["sha256"] = ""
    (models / "manifest.json").write_text(json.dumps(manifest))
    (models / "tiny.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeightsError):
        load_weights("tiny", models_dir=models)
    assert not marker.exists()


def test_broken_manifest(models):
    (models / "manifest.json").write_text("{oops")
    with pytest.raises(WeightsError, match="manifest"):
        load_weights("tiny", models_dir=models)


def test_wrong_shape_weights_name_the_retrain_command(tmp_path):
    """A well-formed file whose tensors do not fit the network (e.g. from another architecture)."""
    import shutil

    from core.paths import MODELS_DIR
    from core.stage1 import JointLifter

    shutil.copy(MODELS_DIR / "manifest.json", tmp_path / "manifest.json")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["joint_diffusion"]
    save_weights("joint_diffusion", {"head.weight": torch.zeros(7, 7)}, entry["config"], entry["train_command"],
                 models_dir=tmp_path)
    with pytest.raises(WeightsError, match="does not match the network: .*wrong-shape.*retrain with") as err:
        JointLifter.from_weights("cpu", models_dir=tmp_path)
    assert "\n" not in str(err.value)
