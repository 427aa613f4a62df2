"""Writes a synthetic MANO-format pickle (random arrays with MANO's layout; never real MANO data).

Arrays are wrapped in stand-in classes registered under `chumpy.ch.Ch` and real scipy sparse
matrices, as in official files, so the restricted unpickler is exercised on the same structure.
"""
from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import scipy.sparse as sp

N_VERTS = 778


def _fake_chumpy_module():
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x}

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    return mod


def write_fake_mano(path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    # A crude hand-like template: wrist at the origin, fingers along +y, tips at the MANO tip indices.
    v = rng.normal(0, 0.02, (N_VERTS, 3)) + np.array([0, 0.08, 0])
    faces = np.array([[i, (i + 1) % N_VERTS, (i + 2) % N_VERTS] for i in range(0, N_VERTS - 2, 2)])
    j_reg = np.zeros((16, N_VERTS))
    for j in range(16):
        idx = rng.choice(N_VERTS, 8, replace=False)
        j_reg[j, idx] = 1 / 8
    weights = rng.random((N_VERTS, 16))
    weights /= weights.sum(1, keepdims=True)
    kintree = np.array([[4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], list(range(16))])
    mod = _fake_chumpy_module()
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = mod
    try:
        data = {
            "f": faces.astype(np.uint32),
            "v_template": mod.Ch(v),
            "shapedirs": mod.Ch(rng.normal(0, 1e-3, (N_VERTS, 3, 10))),
            "posedirs": rng.normal(0, 1e-4, (N_VERTS, 3, 135)),
            "J_regressor": sp.csc_matrix(j_reg),
            "kintree_table": kintree,
            "weights": mod.Ch(weights),
            "hands_components": rng.normal(size=(45, 45)),
            "hands_mean": np.zeros(45),
            "bs_style": "lbs",
        }
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]
