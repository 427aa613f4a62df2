"""Plain evented models of what the window shows (no Qt): the hand being displayed and the status."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.events import Signal


@dataclass
class HandState:
    """The displayed hand: vertices (V,3), joints (21,3) in metres, and where it came from."""

    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    source: str = "neutral hand"
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def set(self, vertices: np.ndarray, joints: np.ndarray, source: str) -> None:
        self.vertices = np.asarray(vertices, np.float32)
        self.joints = np.asarray(joints, np.float32)
        self.source = source
        self.changed.emit(self)
