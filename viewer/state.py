"""Plain evented models of what the window shows (no Qt; napari's `components/` pattern).

Each model is a psygnal evented dataclass: assigning a field (`display.mode = "best"`) emits
`display.events.mode(new, old)` when the value changed, and `display.events` relays every field's
event (psygnal's `SignalGroup`). Small arrays (the joint mask) are compared by value; engine results,
images and meshes by identity, so a new array always notifies and comparing big arrays costs nothing.
Methods that change several fields do it inside `batch(model)`, so observers run once the model is
consistent. Widgets and the scene controller observe these; nothing here imports Qt or torch.
"""
from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from psygnal import evented

from core.joints import NUM_JOINTS
from core.prior.choices import DEFAULT_HYPOTHESES, DEFAULT_ITERS, DEFAULT_REFINE_ITERS, PRIORS, SCHEDULES, TASK_RANGES

DISPLAY_MODES = ("all", "aggregate", "best", "single")
VIEWS = ("pose", "image")   # what the 3D view shows: a hand / DPoser completion, or an image result
_SAME = operator.is_


@contextmanager
def batch(model: Any) -> Iterator[None]:
    """Set several fields of an evented `model`, notify once all are set (each changed field once, with
    its last value). psygnal's own `model.events.paused()` does not hold back the field events of an
    evented dataclass (psygnal 0.16.1; tests/test_view_models.py), so each field's signal is paused."""
    with ExitStack() as stack:
        for signal in model.events.signals.values():
            # queued (new, old) pairs → one (last new, first old)
            stack.enter_context(signal.paused(reducer=lambda first, last: (last[0], *first[1:])))
        yield


@evented(equality_operators={"vertices": _SAME, "joints": _SAME})
@dataclass
class HandState:
    """A single displayed hand (pose file, neutral hand): vertices (V,3), joints (21,3), metres."""

    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    source: str = "neutral hand"

    def set(self, vertices: np.ndarray, joints: np.ndarray, source: str) -> None:
        with batch(self):
            self.joints = np.asarray(joints, np.float32)
            self.source = source
            self.vertices = np.asarray(vertices, np.float32)


@evented(equality_operators={"image": _SAME, "detections": _SAME})
@dataclass
class ImageState:
    """The current photo, the hands detected in it, the chosen one and the sides the user forced (a new
    photo starts with none: `ImageRuns.open_image`)."""

    path: str | None = None
    image: np.ndarray | None = None          # (H,W,3) uint8 RGB
    detections: list[Any] = field(default_factory=list)
    chosen: int = 0
    forced_sides: dict[int, str] = field(default_factory=dict)   # the user's flips: hand index → 'left' | 'right'

    def set(self, path: str, image: np.ndarray, detections: list[Any], chosen: int = 0) -> None:
        with batch(self):
            self.path, self.image, self.detections, self.chosen = path, image, list(detections), chosen

    def force_side(self, index: int, side: str) -> None:
        """Remember the user's side for hand `index` of this image (kept by every re-run of it)."""
        self.forced_sides = {**self.forced_sides, int(index): side}


@evented(equality_operators={"result": _SAME, "reprojection_px": _SAME})
@dataclass
class ResultState:
    """The engine's result for the chosen hand, plus per-hypothesis summaries computed by core.
    Observers of a new result listen to `events.result` (emitted after `reprojection_px` is set)."""

    result: Any = None                         # viewer.engine.ViewResult
    reprojection_px: np.ndarray | None = None  # (N,)

    @property
    def n(self) -> int:
        return 0 if self.result is None else int(self.result.joint_hypotheses.shape[0])

    @property
    def best(self) -> int:
        return int(np.argmin(self.reprojection_px)) if self.reprojection_px is not None and self.n else 0

    def set(self, result: Any, reprojection_px: np.ndarray | None) -> None:
        self.reprojection_px = reprojection_px
        self.result = result


@evented(equality_operators={"results": _SAME, "reprojection": _SAME})
@dataclass
class HandsState:
    """Every estimated hand of the photo (issue 26): `results[i]` is hand i's result (None while it is not
    estimated), `reprojection[i]` its per-hypothesis reprojection errors. The selected hand is
    `ImageState.chosen`; its result is also `ResultState.result` (what the hypothesis panel, the denoising
    slider and DPoser use)."""

    results: list = field(default_factory=list)
    reprojection: list = field(default_factory=list)

    def set(self, results: list, reprojection: list) -> None:
        with batch(self):
            self.reprojection = list(reprojection)
            self.results = list(results)

    @property
    def estimated(self) -> list[int]:
        return [i for i, r in enumerate(self.results) if r is not None]


@evented(equality_operators={"refinement": _SAME})
@dataclass
class DisplayState:
    """What the 3D view shows (`view`: 'pose' or 'image') and how an image result's hypotheses are
    shown: mode, selected index, spread colouring, parametric meshes, before / after refinement."""

    view: str = "pose"
    mode: str = "all"
    index: int = 0
    color_by_spread: bool = False
    param_mesh: bool = False    # draw the parametric Anny meshes (issue 25) instead of the decoder's
    refined: bool = True        # after refinement (the default once there is one) / before it
    refinement: Any = None      # (HandResult, viewer.refine_job.RefineOutcome) of the selected hand, or None

    def refinement_of(self, r: Any) -> Any:
        """The refinement drawn for result `r` (a RefineOutcome), or None: before-refinement is chosen, or
        `r` has none (a refinement belongs to the result it was run on)."""
        if self.refined and self.refinement is not None and self.refinement[0] is r:
            return self.refinement[1]
        return None

    def meshes(self, r: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The result's (mesh hypotheses (N,V,3), aggregate (V,3)) to draw: the refined meshes after a
        refinement, else the decoder's, or with `param_mesh` the parametric Anny meshes when the result
        has them."""
        ref = self.refinement_of(r)
        if ref is not None:
            return ref.hyp_vertices, ref.vertices
        p = getattr(r, "params", None)
        if self.param_mesh and p is not None and p.hyp_vertices is not None:
            return p.hyp_vertices, p.vertices
        return getattr(r, "vertex_hypotheses", None), getattr(r, "vertices", None)

    def skeletons(self, r: Any) -> tuple[np.ndarray, np.ndarray]:
        """The result's (joint hypotheses (N,21,3), aggregate joints (21,3)) to draw with `meshes(r)`."""
        ref = self.refinement_of(r)
        if ref is not None:
            return ref.hyp_joints, ref.joints
        mesh_joints = getattr(r, "mesh_joints", None)
        return r.joint_hypotheses, (r.joints if mesh_joints is None else mesh_joints)

    def update(self, **kw: Any) -> None:
        """Set several fields at once (validated); observers run once all are set."""
        if "mode" in kw and kw["mode"] not in DISPLAY_MODES:
            raise ValueError(f"unknown display mode {kw['mode']!r}")
        if "view" in kw and kw["view"] not in VIEWS:
            raise ValueError(f"unknown view {kw['view']!r}")
        with batch(self):
            for k, v in kw.items():
                setattr(self, k, v)

    def selected(self, best: int) -> int:
        """The hypothesis drawn as 'the selected one': the best in 'best' mode, else `index`."""
        return best if self.mode == "best" else self.index


@evented(equality_operators={"outcomes": _SAME})
@dataclass
class RefineState:
    """DPoser refinement of the selected hand's hypotheses against its 2D keypoints (issue 25 item 3):
    the iterations asked for, whether a run is going (and on which hand), and the refinements done,
    each kept with the hand and the result it was run on (a new result of that hand drops it)."""

    iters: int = DEFAULT_REFINE_ITERS
    running: bool = False
    hand: int = -1                                       # the hand being (or last) refined
    outcomes: dict = field(default_factory=dict)         # hand index → (HandResult, RefineOutcome)

    def outcome_for(self, index: int, result: Any) -> Any:
        """The refinement of hand `index` if it was run on `result` (this very result), else None."""
        result_and_outcome = self.outcomes.get(index)
        return result_and_outcome if result_and_outcome is not None and result_and_outcome[0] is result else None

    def store(self, index: int, result: Any, outcome: Any) -> None:
        self.outcomes = {**self.outcomes, int(index): (result, outcome)}

    def forget_replaced(self, results: list) -> None:
        """Drop the refinements whose hand now has another result (a new photo, a re-run)."""
        keep = {i: ro for i, ro in self.outcomes.items() if i < len(results) and results[i] is ro[0]}
        if len(keep) != len(self.outcomes):
            self.outcomes = keep


@evented(equality_operators={"frames": _SAME})
@dataclass
class TrajectoryState:
    """The denoising trajectory as display frames (label, kind 'joints' | 'mesh', points), noise → result,
    and the position in it: step 0 = noise, the last step = the result.

    `frames` is emitted when a trajectory is set or extended; the position set with it emits nothing of
    its own (observers of `frames` read `step`). `step` is emitted only when the position moves within the
    same trajectory: a scrub (the scene draws it at the scrubbing level of detail)."""

    frames: list = field(default_factory=list)
    step: int = 0
    playing: bool = False

    @property
    def n_steps(self) -> int:
        return len(self.frames)

    @property
    def at_result(self) -> bool:
        return self.step >= self.n_steps - 1

    @property
    def label(self) -> str:
        if not self.frames:
            return "no trajectory"
        return self.frames[-1][0] + " (result)" if self.at_result else self.frames[self.step][0]

    def reset(self, frames: list) -> None:
        """A new trajectory, shown at its result."""
        self._set_frames(list(frames), max(len(frames) - 1, 0))
        self.playing = False

    def extend(self, frames: list) -> None:
        """Steps appended to the same trajectory: the position stays (on the result if it was there)."""
        last = max(len(frames) - 1, 0)
        self._set_frames(list(frames), last if self.at_result else min(self.step, last))

    def _set_frames(self, frames: list, step: int) -> None:
        with self.events.step.blocked():
            self.step = step
        self.frames = frames

    def set_step(self, step: int) -> None:
        self.step = int(np.clip(step, 0, max(self.n_steps - 1, 0)))

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


@evented
@dataclass
class MaskState:
    """Hidden joints (True = hidden; compared by value) with an undo history (Ctrl+Z)."""

    hidden: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, bool))
    history: list[np.ndarray] = field(default_factory=list, repr=False)

    def set(self, hidden: np.ndarray) -> None:
        hidden = np.asarray(hidden, bool).reshape(NUM_JOINTS)
        if np.array_equal(hidden, self.hidden):
            return
        self.history.append(self.hidden.copy())
        self.hidden = hidden.copy()

    def toggle(self, joint: int) -> None:
        h = self.hidden.copy()
        h[joint] = not h[joint]
        self.set(h)

    def clear(self) -> None:
        self.set(np.zeros(NUM_JOINTS, bool))

    def undo(self) -> bool:
        if not self.history:
            return False
        self.hidden = self.history.pop()
        return True


@evented(equality_operators={"source": _SAME, "result": _SAME, "vertices": _SAME, "live_joints": _SAME})
@dataclass
class CompletionState:
    """The pose being completed, the DPoser run's result, the iteration shown by the scrubber and the
    highlighted completion (`selected`)."""

    source: PoseSource | None = None
    result: Any = None                     # core.prior.TTOResult
    vertices: np.ndarray | None = None     # (S,V,3) meshes of the final hypotheses
    live_joints: np.ndarray | None = None  # (S,21,3) while a run is going
    iteration: int = 0
    selected: int = 0

    @property
    def n_iterations(self) -> int:
        return 0 if self.result is None else len(self.result.t_schedule)

    @property
    def final(self) -> bool:
        """The final result is shown (not a live update, not an earlier iteration)."""
        return self.result is not None and self.live_joints is None and self.iteration >= self.n_iterations

    def display_joints(self) -> np.ndarray | None:
        """(S,21,3) joints shown now: live during a run, the scrubbed iteration, or the final result."""
        if self.live_joints is not None:
            return self.live_joints
        if self.result is None:
            return None
        if self.result.traj_joints is not None and self.iteration < self.n_iterations:
            return self.result.traj_joints[self.iteration]
        return self.result.joints

    def set_source(self, source: PoseSource) -> None:
        with batch(self):
            self.result, self.vertices, self.live_joints, self.iteration = None, None, None, 0
            self.source = source

    def set_result(self, result: Any, vertices: np.ndarray | None) -> None:
        with batch(self):
            self.vertices, self.live_joints = vertices, None
            self.selected = min(self.selected, len(result.pose) - 1)
            self.iteration = len(result.t_schedule)
            self.result = result

    def set_live(self, joints: np.ndarray, iteration: int) -> None:
        with batch(self):
            self.iteration = iteration
            self.live_joints = joints

    def set_iteration(self, iteration: int) -> None:
        if self.result is not None:
            iteration = int(np.clip(iteration, 0, self.n_iterations))
        self.iteration = iteration


@evented
@dataclass
class RunSettings:
    """Image-run settings (the Settings dock): hypotheses N, DDIM steps, seed, mode, device, and whether
    a photo's hands are looked for with the crop search too (`all_hands`, issue 26)."""

    n: int = 50
    steps: int = 10
    seed: int = 0
    mode: str = "cloud"      # 'cloud': one mesh per joint hypothesis; 'paper': mean joints → one mesh
    device: str = "auto"
    all_hands: bool = False  # every hand: the palm detector's and the crop search's (~1-2 s more a photo)

    def values(self) -> dict:
        return asdict(self)


@evented
@dataclass
class CompletionSettings:
    """DPoser completion settings (the DPoser dock): S, prior, schedule, t range, iterations."""

    n: int = DEFAULT_HYPOTHESES
    prior: str = PRIORS[0]
    schedule: str = SCHEDULES[0]
    t_max: float = TASK_RANGES["completion"][0]
    t_min: float = TASK_RANGES["completion"][1]
    iters: int = DEFAULT_ITERS

    def values(self) -> dict:
        return asdict(self)


def _never_equal(_a: Any, _b: Any) -> bool:
    return False


@evented(equality_operators={"message": _never_equal, "error": _never_equal})
@dataclass
class StatusState:
    """What the status bar says: the last message, the last error (None once an action starts well;
    every assignment notifies, the same text twice included) and the last run's timing."""

    message: str = ""
    error: str | None = None
    timing: str = ""
    timing_tip: str = ""

    def fail(self, text: str) -> bool:
        """Report a problem (the current state is kept); returns False for `return status.fail(...)`."""
        self.error = text
        return False


class ViewerModel:
    """Everything the window shows, as evented models (napari's `ViewerModel`): what the scene controller
    draws, what the panels edit, what the run controllers fill in."""

    def __init__(self) -> None:
        self.hand = HandState()
        self.image_state = ImageState()
        self.result_state = ResultState()
        self.hands = HandsState()
        self.display = DisplayState()
        self.trajectory = TrajectoryState()
        self.mask = MaskState()
        self.completion = CompletionState()
        self.run_settings = RunSettings()
        self.completion_settings = CompletionSettings()
        self.refine = RefineState()
        self.status = StatusState()
