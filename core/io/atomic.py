"""The one guarded, atomic write behind every file the app and the CLI write.

A write goes to a temporary file in the target folder, is flushed to disk (fsync), gets the mode the
user's umask gives a new file (or the replaced file's mode), and is renamed over the target: readers see
the old file or the new one, never half of one. On any failure the temporary file is removed and one
`OutputError` with a one-line reason is raised ("folder is read-only", "disk full", ...).

Three entry points, all ending in the same commit step:
- `write_bytes(path, data)`: encoded content (meshes exported to bytes, PNGs encoded in memory);
- `write_stream(path, write)`: a writer that wants a file object (`np.savez`), buffered in memory first;
- `write_via_path(path, write, verify=...)`: a library that insists on a file name (VTK, Qt, trimesh):
  it writes a temporary path with the same suffix, which is verified (non-empty, `verify`) and renamed.
`write_npz` and `write_png` are the two shapes used everywhere.
"""
from __future__ import annotations

import errno
import io
import os
import pathlib
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from core.errors import OutputError

#: The raw write every byte goes through (fault-injection tests patch this to simulate a full disk).
_os_write = os.write

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"

_REASONS = {
    errno.EACCES: "permission denied (read-only folder?)",
    errno.EPERM: "permission denied",
    errno.EROFS: "the folder is on a read-only file system",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the disk (or the file-size limit)",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a part of the folder path is a file",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error on the disk",
}


def describe_os_error(exc: OSError) -> str:
    """A short human reason for a failed write (no errno numbers, no paths)."""
    return _REASONS.get(exc.errno or -1, exc.strerror or type(exc).__name__)


def output_error(path: str | os.PathLike, exc: OSError | str) -> OutputError:
    """`OutputError("cannot write <path>: <reason>")`: the one message shape for a failed write."""
    reason = exc if isinstance(exc, str) else describe_os_error(exc)
    return OutputError(f"cannot write {os.fspath(path)}: {reason}")


def new_file_mode(path: pathlib.Path) -> int:
    """Mode for the committed file: the replaced file's mode if there is one, else 0o666 & ~umask
    (what `open(path, 'w')` would give; `mkstemp`'s 0o600 would hide results from other users)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (no race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)   # fallback: read by setting it, then restore at once
    os.umask(mask)
    return mask


def ensure_folder(folder: str | os.PathLike) -> pathlib.Path:
    """Create an output folder (and its parents) or raise one `OutputError`."""
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise output_error(folder, "a file of that name exists (not a folder)") from None
    except OSError as exc:
        raise output_error(folder, exc) from None
    return folder


def _check_target(path: pathlib.Path, parents: bool) -> None:
    if path.name in ("", ".", ".."):
        raise output_error(path, "no file name")
    if parents:
        ensure_folder(path.parent)
    elif not path.parent.is_dir():
        raise output_error(path, "the folder does not exist" if not path.parent.exists()
                           else "a part of the folder path is a file")
    if path.is_dir():
        raise output_error(path, "it is a folder")


def _temp(path: pathlib.Path, suffix: str = "") -> tuple[int, pathlib.Path]:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    return fd, pathlib.Path(tmp)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = _os_write(fd, view)
        if n <= 0:   # a zero-length write on a regular file means no space
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _commit(fd: int, tmp: pathlib.Path, path: pathlib.Path) -> None:
    """fsync + mode + rename (+ best-effort fsync of the folder); closes `fd`."""
    try:
        os.fsync(fd)
        os.fchmod(fd, new_file_mode(path))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass   # some file systems refuse fsync on a folder; the rename itself is done
    finally:
        os.close(dfd)


def _discard(fd: int | None, tmp: pathlib.Path) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _finish(path: pathlib.Path, tmp: pathlib.Path, fd: int | None, fill: Callable[[int | None], int]) -> pathlib.Path:
    """`fill(fd)` completes the temporary file and returns an open descriptor of it; then fsync, mode,
    rename. Any failure removes the temporary file: an OSError becomes one `OutputError`."""
    try:
        fd = fill(fd)
        handed, fd = fd, None
        _commit(handed, tmp, path)
    except OSError as exc:
        _discard(fd, tmp)
        raise output_error(path, exc) from None
    except BaseException:
        _discard(fd, tmp)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview, *, parents: bool = False) -> pathlib.Path:
    """Write `data` to `path` atomically; `parents=True` creates missing folders (CLI `--out`)."""
    path = pathlib.Path(path)
    _check_target(path, parents)
    fd, tmp = _temp(path)

    def fill(fd: int) -> int:
        _write_all(fd, data)
        return fd

    return _finish(path, tmp, fd, fill)


def write_stream(path: str | os.PathLike, write: Callable[[BinaryIO], Any], *, parents: bool = False) -> pathlib.Path:
    """`write(file_object)` into memory, then `write_bytes`: a failing writer leaves nothing on disk."""
    buf = io.BytesIO()
    write(buf)
    return write_bytes(path, buf.getbuffer(), parents=parents)


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any], *, parents: bool = False) -> pathlib.Path:
    """An uncompressed `.npz` (no object arrays: readers load it with `allow_pickle=False`)."""
    import numpy as np

    plain = {}
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise ValueError(f"npz entry '{key}' is an object array (not loadable without pickle)")
        plain[key] = a
    return write_stream(path, lambda f: np.savez(f, **plain), parents=parents)


def png_is_complete(data: bytes | bytearray | memoryview) -> bool:
    """A PNG that starts with the signature and ends with the IEND chunk (a cut-off file does not)."""
    data = bytes(data[:8]) + bytes(data[-8:]) if len(data) >= 16 else b""
    return data[:8] == _PNG_SIGNATURE and data[8:] == _PNG_END


def write_png(path: str | os.PathLike, png: bytes | bytearray | memoryview, *, parents: bool = False) -> pathlib.Path:
    """Write encoded PNG bytes atomically, refusing an empty or truncated encoding."""
    if not png_is_complete(png):
        raise output_error(path, "the image could not be encoded as PNG")
    return write_bytes(path, png, parents=parents)


def write_via_path(path: str | os.PathLike, write: Callable[[pathlib.Path], Any], *, parents: bool = False,
                   verify: Callable[[pathlib.Path], bool] | None = None) -> pathlib.Path:
    """For libraries that write a file name themselves: `write(tmp_path)` (same suffix as `path`, in
    the same folder), then the file must exist, be non-empty and pass `verify`; `write` returning
    False (Qt's `save`) counts as a failure. Then fsync, mode, rename — or one `OutputError`."""
    path = pathlib.Path(path)
    _check_target(path, parents)
    fd, tmp = _temp(path, path.suffix)
    os.close(fd)

    def fill(_fd: None) -> int:
        ok = write(tmp)
        if ok is False:
            raise output_error(path, "the writer reported a failure (disk full or read-only?)")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise output_error(path, "nothing was written (disk full or read-only?)")
        if verify is not None and not verify(tmp):
            raise output_error(path, "the written file is incomplete (disk full?)")
        return os.open(tmp, os.O_RDWR)

    return _finish(path, tmp, None, fill)


def png_file_is_complete(path: pathlib.Path) -> bool:
    """`verify` for `write_via_path` of a PNG written by VTK or Qt."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(-8, os.SEEK_END)
            return png_is_complete(head + f.read(8))
    except OSError:
        return False
