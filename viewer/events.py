"""A minimal evented-state helper (napari's pattern, no Qt): models emit, widgets observe."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Signal:
    """A list of callbacks called with the new value when the state changes."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            cb(*args)
