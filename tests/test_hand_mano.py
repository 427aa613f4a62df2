"""MANO backend on a synthetic MANO-format file generated here (no MANO data is shipped)."""
import pickle

import numpy as np
import pytest
import torch

from core.hand.base import HandModelError
from core.hand.mano_file import read_mano_pickle
from core.hand.mano_hand import ManoHand
from tests.mano_fixture import write_fake_mano


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mano")
    write_fake_mano(d / "MANO_RIGHT.pkl")
    return d


def test_restricted_unpickler_reads_chumpy_and_sparse(mano_dir):
    data = read_mano_pickle(mano_dir / "MANO_RIGHT.pkl")
    assert data["v_template"].shape == (778, 3)
    assert data["J_regressor"].shape == (16, 778) and isinstance(data["J_regressor"], np.ndarray)
    assert "bs_style" not in data  # only the keys the model needs are kept


def test_mano_forward(mano_dir):
    hand = ManoHand(mano_dir)
    out = hand(torch.zeros(2, 3), torch.randn(2, 45) * 0.2, torch.zeros(2, 10))
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 21, 3)
    assert torch.allclose(out.joints[:, 0], torch.zeros(2, 3), atol=1e-6)  # wrist at origin
    tips = out.vertices[:, [744, 320, 443, 554, 671]]
    assert torch.allclose(out.joints[:, [4, 8, 12, 16, 20]], tips, atol=1e-6)
    assert torch.allclose(hand.joints(pose=torch.zeros(1, 45)), hand(pose=torch.zeros(1, 45)).joints, atol=1e-6)


def test_missing_or_wrong_mano_folder(tmp_path):
    with pytest.raises(HandModelError, match="not configured"):
        ManoHand(None)
    with pytest.raises(HandModelError, match="does not exist"):
        ManoHand(tmp_path / "nowhere")
    with pytest.raises(HandModelError, match="MANO_RIGHT.pkl not found"):
        ManoHand(tmp_path)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"hello": 1}))
    with pytest.raises(HandModelError, match="missing keys"):
        ManoHand(tmp_path)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(HandModelError, match="not a MANO model file"):
        ManoHand(tmp_path)


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"f": Evil()}))
    with pytest.raises(HandModelError, match="refusing"):
        read_mano_pickle(path)
    assert not marker.exists()
    import os

    path.write_bytes(pickle.dumps({"f": os.system}))
    with pytest.raises(HandModelError, match="refusing"):
        read_mano_pickle(path)
