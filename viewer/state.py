"""Plain evented models of what the window shows (no Qt, napari's `components/` pattern).

Widgets observe `model.changed` (called with the model); the 3D scene and panels render them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.events import Signal

DISPLAY_MODES = ("all", "aggregate", "best", "single")


@dataclass
class HandState:
    """A single displayed hand (pose file, neutral hand): vertices (V,3), joints (21,3), metres."""

    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    source: str = "neutral hand"
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def set(self, vertices: np.ndarray, joints: np.ndarray, source: str) -> None:
        self.vertices = np.asarray(vertices, np.float32)
        self.joints = np.asarray(joints, np.float32)
        self.source = source
        self.changed.emit(self)


@dataclass
class ImageState:
    """The current photo, the hands detected in it and the chosen one."""

    path: str | None = None
    image: np.ndarray | None = None          # (H,W,3) uint8 RGB
    detections: list[Any] = field(default_factory=list)
    chosen: int = 0
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def set(self, path: str, image: np.ndarray, detections: list[Any], chosen: int = 0) -> None:
        self.path, self.image, self.detections, self.chosen = path, image, list(detections), chosen
        self.changed.emit(self)

    def choose(self, index: int) -> None:
        if 0 <= index < len(self.detections) and index != self.chosen:
            self.chosen = index
            self.changed.emit(self)


@dataclass
class ResultState:
    """The engine's result for the chosen hand, plus per-hypothesis summaries computed by core."""

    result: Any = None                        # core Stage1Result / CascadeResult
    reprojection_px: np.ndarray | None = None # (N,)
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    @property
    def n(self) -> int:
        return 0 if self.result is None else int(self.result.joint_hypotheses.shape[0])

    @property
    def best(self) -> int:
        return int(np.argmin(self.reprojection_px)) if self.reprojection_px is not None and self.n else 0

    def set(self, result: Any, reprojection_px: np.ndarray | None) -> None:
        self.result, self.reprojection_px = result, reprojection_px
        self.changed.emit(self)


@dataclass
class DisplayState:
    """How hypotheses are shown: mode, selected index, spread colouring."""

    mode: str = "all"
    index: int = 0
    color_by_spread: bool = False
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def update(self, **kw: Any) -> None:
        if "mode" in kw and kw["mode"] not in DISPLAY_MODES:
            raise ValueError(f"unknown display mode {kw['mode']!r}")
        changed = {k: v for k, v in kw.items() if getattr(self, k) != v}
        for k, v in changed.items():
            setattr(self, k, v)
        if changed:
            self.changed.emit(self)


@dataclass
class TrajectoryState:
    """Position in the denoising trajectory: step 0 = noise, the last step = the result."""

    step: int = 0
    n_steps: int = 0                           # number of positions (0 = no trajectory)
    playing: bool = False
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def reset(self, n_steps: int) -> None:
        self.n_steps, self.step, self.playing = n_steps, max(n_steps - 1, 0), False
        self.changed.emit(self)

    def extend(self, n_steps: int) -> None:
        """Steps appended to the same trajectory: the position stays (on the result if it was there)."""
        at_result = self.step >= self.n_steps - 1
        self.n_steps = n_steps
        self.step = max(n_steps - 1, 0) if at_result else min(self.step, max(n_steps - 1, 0))
        self.changed.emit(self)

    def set_step(self, step: int) -> None:
        step = int(np.clip(step, 0, max(self.n_steps - 1, 0)))
        if step != self.step:
            self.step = step
            self.changed.emit(self)

    def advance(self, delta: int = 1) -> None:
        self.set_step(self.step + delta)


@dataclass
class PoseSource:
    """A pose to complete: pose parameters when known (pose file, random, neutral), else only joints
    (an image result, a joints JSON). Joints (21,3) metres are what the user sees and masks."""

    label: str
    joints: np.ndarray
    pose: np.ndarray | None = None
    global_orient: np.ndarray | None = None
    shape: np.ndarray | None = None
    vertices: np.ndarray | None = None


@dataclass
class MaskState:
    """Hidden joints (True = hidden) with an undo history (Ctrl+Z)."""

    hidden: np.ndarray = field(default_factory=lambda: np.zeros(21, bool))
    history: list[np.ndarray] = field(default_factory=list, repr=False)
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def set(self, hidden: np.ndarray) -> None:
        hidden = np.asarray(hidden, bool).reshape(21)
        if np.array_equal(hidden, self.hidden):
            return
        self.history.append(self.hidden.copy())
        self.hidden = hidden.copy()
        self.changed.emit(self)

    def toggle(self, joint: int) -> None:
        h = self.hidden.copy()
        h[joint] = not h[joint]
        self.set(h)

    def undo(self) -> bool:
        if not self.history:
            return False
        self.hidden = self.history.pop()
        self.changed.emit(self)
        return True


@dataclass
class CompletionState:
    """The pose being completed, the DPoser run's result and the iteration shown by the scrubber."""

    source: PoseSource | None = None
    result: Any = None                     # core.prior.TTOResult
    vertices: np.ndarray | None = None     # (S,V,3) meshes of the final hypotheses
    live_joints: np.ndarray | None = None  # (S,21,3) while a run is going
    iteration: int = 0
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def set_source(self, source: PoseSource) -> None:
        self.source, self.result, self.vertices, self.live_joints, self.iteration = source, None, None, None, 0
        self.changed.emit(self)

    def set_result(self, result: Any, vertices: np.ndarray | None) -> None:
        self.result, self.vertices, self.live_joints = result, vertices, None
        self.iteration = len(result.t_schedule)
        self.changed.emit(self)

    def set_live(self, joints: np.ndarray, iteration: int) -> None:
        self.live_joints, self.iteration = joints, iteration
        self.changed.emit(self)

    def set_iteration(self, iteration: int) -> None:
        if self.result is not None:
            iteration = int(np.clip(iteration, 0, len(self.result.t_schedule)))
        if iteration != self.iteration:
            self.iteration = iteration
            self.changed.emit(self)
