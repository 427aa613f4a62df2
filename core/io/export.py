"""Writing results atomically: meshes (.obj/.ply/.glb via trimesh) and npz files."""
from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from core.errors import InputError

MESH_FORMATS = ("obj", "ply", "glb")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
    """Write through a temporary file in the same folder and rename: a crash leaves no half file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray,
              vertex_colors: np.ndarray | None = None) -> pathlib.Path:
    """Write one mesh; the format comes from the suffix (.obj, .ply, .glb)."""
    import trimesh

    path = pathlib.Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise InputError(f"unsupported mesh format '.{fmt}' (use {', '.join('.' + f for f in MESH_FORMATS)})")
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False,
                           vertex_colors=vertex_colors)
    data = mesh.export(file_type=fmt)
    if isinstance(data, str):
        data = data.encode()
    return atomic_write(path, lambda f: f.write(data))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> pathlib.Path:
    """Write an uncompressed npz atomically (no object arrays)."""
    return atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))
