"""Silence native libraries (MediaPipe/TFLite/absl, NVIDIA Warp) that print to the process's stderr,
so the CLI's output stays one readable line per event. `--debug` (POSE_VIEWER_DEBUG=1) keeps them."""
from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.RLock()
_depth = 0
_saved: int | None = None


@contextlib.contextmanager
def native_stderr_silenced():
    """Redirect file descriptor 2 to /dev/null for the duration (re-entrant, process-wide)."""
    global _depth, _saved
    if os.environ.get("POSE_VIEWER_DEBUG"):
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                _saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
            except OSError:   # no stderr to redirect: nothing to silence
                _saved = None
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                os.dup2(_saved, 2)
                os.close(_saved)
                _saved = None
