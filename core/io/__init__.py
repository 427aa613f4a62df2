"""Reading user files (images, pose files) and writing results (meshes, npz) safely."""
from __future__ import annotations

import os
import pathlib

from core.errors import InputError


def check_input_file(path: str | os.PathLike, kind: str, max_bytes: int) -> pathlib.Path:
    """A user file must exist, be a regular non-empty file and not exceed `max_bytes`."""
    p = pathlib.Path(path)
    if not p.exists():
        raise InputError("file not found")
    if not p.is_file():
        raise InputError(f"is a folder or a special file, not {kind}")
    size = p.stat().st_size
    if size == 0:
        raise InputError("empty file (0 bytes)")
    if size > max_bytes:
        raise InputError(f"{kind} too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
    return p
