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


class Cancelled(PoseViewerError):
    """A long run was cancelled by the user."""


class HandModelError(PoseViewerError):
    """A hand model cannot be built or used (missing / invalid model file, bad parameters)."""
