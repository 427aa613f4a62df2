"""Typed, user-facing errors: each carries one readable line for the CLI and the GUI."""
from __future__ import annotations


class PoseViewerError(Exception):
    """Base class: `str(err)` is a single readable line (no traceback needed)."""


class InputError(PoseViewerError):
    """A user-provided file is unreadable, malformed, too large or of an unsupported kind."""


class NoHandError(PoseViewerError):
    """No hand was detected in an image."""


class WeightsError(PoseViewerError):
    """Shipped weights are missing or corrupt; the message names the file and the retrain command."""


class OutputError(PoseViewerError):
    """A result file (mesh, npz, screenshot, settings) could not be written; nothing partial is left."""


class Cancelled(PoseViewerError):
    """A long run was cancelled by the user."""


def raise_if_cancelled(cancel, message: str = "cancelled") -> None:
    """Raise `Cancelled` when `cancel` (None, a threading.Event or a callable → bool) says so: the one
    check every long loop (DDIM steps, decoding, test-time optimisation) makes between iterations."""
    if cancel is None:
        return
    flag = cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())
    if flag:
        raise Cancelled(message)


class HandModelError(PoseViewerError):
    """A hand model cannot be built or used (missing / invalid model file, bad parameters)."""


def one_line(exc: BaseException) -> str:
    """First line of an exception's message, never empty: how the CLI and the window show an error."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
