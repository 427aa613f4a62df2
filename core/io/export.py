"""Writing results: meshes (.obj/.ply/.glb via trimesh) and npz files, through core/io/atomic.py."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from core.errors import InputError
from core.io.atomic import write_bytes, write_npz, write_stream

MESH_FORMATS = ("obj", "ply", "glb")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
    """`write(file)` through the one guarded atomic write (core/io/atomic.py); creates missing folders
    (the CLI's `--out`); a failure raises one `OutputError` and leaves no file behind."""
    return write_stream(path, write, parents=True)


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
    return write_bytes(path, data, parents=True)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> pathlib.Path:
    """Write an uncompressed npz atomically (no object arrays)."""
    return write_npz(path, arrays, parents=True)
