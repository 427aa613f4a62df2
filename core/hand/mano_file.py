"""Read a MANO `.pkl` with a restricted unpickler: numpy arrays, scipy sparse and chumpy arrays only.

Official MANO files hold chumpy objects (chumpy does not import on Python 3.11) and scipy sparse
matrices. The unpickler below maps those classes to inert stand-ins that only record their state,
refuses every other global (so a crafted pickle cannot run code), and returns plain numpy arrays.
"""
from __future__ import annotations

import io
import pathlib
import pickle

import numpy as np

from core.errors import HandModelError

REQUIRED_KEYS = ("f", "v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights",
                 "hands_components", "hands_mean")


class _Recorded:
    """Stand-in for a chumpy / scipy.sparse object: keeps the pickled state, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.args = args
        self.state: dict = {}

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {"_state": state}


class _Chumpy(_Recorded):
    pass


class _Sparse(_Recorded):
    pass


def _reconstructor(cls, base, state):
    if cls not in (_Chumpy, _Sparse):
        raise pickle.UnpicklingError("unexpected object in MANO file")
    return cls()


def _newobj(cls, *args):
    if cls not in (_Chumpy, _Sparse):
        raise pickle.UnpicklingError("unexpected object in MANO file")
    return cls()


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store array bytes as latin-1 text; only that encoding is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError("unexpected encoding in MANO file")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return getattr(np.core.multiarray if module == "numpy.core.multiarray" else np._core.multiarray, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("copy_reg", "copyreg") and name == "__newobj__":
            return _newobj
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module in ("__builtin__", "builtins") and name == "object":
            return object
        if module.startswith("chumpy"):
            return _Chumpy
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _Sparse
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (not part of a MANO file)")


def _to_numpy(value):
    if isinstance(value, _Chumpy):
        if "x" in value.state:
            return np.asarray(value.state["x"])
        raise HandModelError("unsupported chumpy object in the MANO file (not a plain array)")
    if isinstance(value, _Sparse):
        import scipy.sparse as sp

        st = value.state
        shape = st.get("_shape", st.get("shape"))
        fmt = st.get("format", "csc")
        if fmt == "coo":
            m = sp.coo_matrix((st["data"], (st["row"], st["col"])), shape=shape)
        else:
            cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
            m = cls((st["data"], st["indices"], st["indptr"]), shape=shape)
        return np.asarray(m.toarray())
    return value


def read_mano_pickle(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Load a MANO model file safely; raise HandModelError naming what is wrong."""
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HandModelError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except HandModelError:
        raise
    except Exception as exc:
        raise HandModelError(f"{path}: not a MANO model file ({exc})") from exc
    if not isinstance(data, dict):
        raise HandModelError(f"{path}: not a MANO model file (top level is {type(data).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise HandModelError(f"{path}: not a MANO model file (missing keys: {', '.join(missing)})")
    out = {k: _to_numpy(v) for k, v in data.items() if k in REQUIRED_KEYS}
    for k, v in out.items():
        if not isinstance(v, np.ndarray) or v.dtype == object:
            raise HandModelError(f"{path}: key '{k}' is not a numeric array")
    return out
