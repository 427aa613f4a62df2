"""Run controllers: they start engine jobs (in the engine processes, `viewer.process_worker`) and put what
comes back into the models (`model.status` for messages, errors and timings). No widgets here.

`ImageRuns`: photo → detect → estimate (the cascade process), another hand of the same photo, re-run,
flip the chosen hand's side (forced for that hand of that photo from then on).
`CompletionRuns`: the pose to complete (pose file, image result, random, neutral) and DPoser runs (the
prior process), re-run (debounced) when the schedule changes.
`RunnerOwner`: which controller's job is live on the DPoser runner (completions here, refinements in
`viewer.refine_runs`).
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np
from PySide6 import QtCore

from viewer.state import PoseSource, ViewerModel

log = logging.getLogger("pose-viewer")


class RunnerOwner(QtCore.QObject):
    """Which controller's job is live on a runner that several share (the DPoser process serves completions
    and refinements): the runner has one live job, and its signals carry no job kind. One per runner
    (a Qt child of it): `RunnerOwner.of(runner)`."""

    def __init__(self, runner: QtCore.QObject) -> None:
        super().__init__(runner)
        self.runner = runner
        self.owner: object | None = None

    @classmethod
    def of(cls, runner: QtCore.QObject) -> "RunnerOwner":
        found = runner.findChild(cls)
        return found if found is not None else cls(runner)

    def start(self, owner: object, job: tuple) -> int:
        """Start `job` for `owner`: the live job (whoever's) is cancelled first, and its owner hears of it."""
        self.runner.cancel()
        self.owner = owner
        return self.runner.start(job)

    def owns(self, owner: object) -> bool:
        return self.owner is owner


class ImageRuns(QtCore.QObject):
    """Image runs; the current result stays on screen until a run succeeds."""

    opened = QtCore.Signal(str)      # a photo's result is shown (recent files)

    def __init__(self, model: ViewerModel, runner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.runner = model, runner
        self.status = model.status
        self.engine_kind = "not loaded"
        self.running_path: str | None = None
        self._early_shown = False   # the live run's result is on screen (its mesh trajectory still to come)
        self._fresh = False         # the live run detects anew (a new photo): the user's flips are forgotten
        runner.partial.connect(self._on_early_estimate)
        runner.finished.connect(self._on_final_estimate)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_cancelled)

    def open_image(self, path: str) -> bool:
        """Start load → detect → estimate in the engine process."""
        self.status.error = None
        self.status.message = f"Estimating {pathlib.Path(path).name}…"
        self._start(path, None, None, 0)
        return True

    def choose_hand(self, index: int) -> None:
        """Select another hand of the current image: shown at once when it is estimated, else estimated."""
        st = self.model.image_state
        if st.image is None or not 0 <= index < len(st.detections):
            return
        hands = self.model.hands
        if index < len(hands.results) and hands.results[index] is not None:
            self.select_hand(index)
        else:
            self._start(st.path, st.image, st.detections, index)

    def select_hand(self, index: int) -> None:
        """Hand `index` (estimated) becomes the selected one: the hypothesis panel, the denoising slider and
        DPoser follow it (issue 26)."""
        from core.hypotheses import trajectory_frames

        m = self.model
        r = m.hands.results[index]
        m.image_state.chosen = index
        m.trajectory.reset(trajectory_frames(r))
        m.display.index = min(m.display.index, r.joint_hypotheses.shape[0] - 1)
        m.result_state.set(r, m.hands.reprojection[index])
        m.display.view = "image"
        self.status.message = self._describe(m.image_state.path, r, index)

    def add_box(self, box) -> bool:
        """A hand the detectors missed, in a box the user drew (x0, y0, x1, y1 px): landmarks in the box (best of
        4 rotations by presence), then the cascade as for any hand; it becomes the selected hand."""
        st = self.model.image_state
        if st.image is None:
            return self.status.fail("no photo: open one first, then draw a box around a hand")
        self.status.error = None
        self.status.message = "Looking for a hand in the box…"
        self._start(st.path, st.image, st.detections, st.chosen, box=[float(x) for x in box])
        return True

    def redetect(self) -> None:
        """Look for the current photo's hands again (the detector settings changed) and estimate them all."""
        st = self.model.image_state
        if st.image is None:
            return
        self.status.error = None
        every = self.model.run_settings.all_hands
        self.status.message = ("Looking for every hand (palm detector and crop search)…" if every
                               else "Looking for the hands (palm detector)…")
        self._start(st.path, st.image, None, 0)

    def rerun(self) -> None:
        """Run the current image again with the current settings (every estimated hand, in one batch)."""
        st = self.model.image_state
        if st.image is None or not st.detections:
            return
        hands = self.model.hands.estimated or [st.chosen]
        self._start(st.path, st.image, st.detections, st.chosen, hands=hands)

    def flip_side(self) -> bool:
        """The chosen hand is the other side (left ↔ right): re-estimate it with that side forced. The flip
        sticks for that hand of this photo (re-runs with other settings keep it); a new photo resets it."""
        from core.side import other

        st, r = self.model.image_state, self.model.result_state.result
        if r is None or st.image is None:
            return self.status.fail("no image result to flip: open a photo first")
        side = other(r.handedness)
        st.force_side(st.chosen, side)
        self.status.error = None
        self.status.message = f"Re-estimating as a {side} hand…"
        self.rerun()
        return True

    def _start(self, path, image, detections, chosen: int, hands: list[int] | None = None, box=None) -> None:
        self.running_path = path
        self._early_shown = False
        # A new detection starts with the sides decided by the engine; a re-run keeps the user's flips.
        self._fresh = detections is None
        side = "auto" if detections is None else self.model.image_state.forced_sides.get(chosen, "auto")
        extra = {"side": side, "hands": hands, "box": box}
        self.runner.start((path, image, detections, chosen, {**self.model.run_settings.values(), **extra}))

    def _on_failed(self, message: str, tb: str) -> None:
        log.debug(tb)   # shown with --debug
        name = pathlib.Path(self.running_path).name if self.running_path else ""
        self.status.fail(f"{name}: {message}" if name else message)

    def _on_cancelled(self) -> None:
        if self._early_shown:   # cancelled while the mesh trajectory was being decoded
            self._early_shown = False
            self.status.message = ("Cancelled: the result is shown without the mesh steps of its denoising "
                                   "trajectory (re-run to get them).")
        else:
            self.status.message = "Cancelled; the previous result is kept."

    def _on_early_estimate(self, est) -> None:
        """The run's result before its mesh trajectory is decoded: shown at once."""
        self._show(est)
        self._early_shown = True

    def _on_final_estimate(self, est) -> None:
        """The complete estimate: when its result is already shown, only the decoded mesh steps of the
        denoising trajectory are new (appended after the joint steps: the frame on screen stays)."""
        if not self._early_shown:
            self._show(est)
            return
        from core.hypotheses import trajectory_frames

        self._early_shown = False
        shown = self.model.hands.results
        for i, done in zip(est.indices or [est.chosen], est.results or [est.result]):
            if i < len(shown) and shown[i] is not None:
                shown[i].mesh_trajectory_vertices = done.mesh_trajectory_vertices
        r = self.model.result_state.result        # the selected hand (the user may have picked another)
        if r is not None and r.mesh_trajectory_vertices is not None:
            self.model.trajectory.extend(trajectory_frames(r))

    def _show(self, est) -> None:
        from core.hypotheses import trajectory_frames

        m = self.model
        n = est.result.joint_hypotheses.shape[0]
        if self._fresh:
            m.image_state.forced_sides = {}        # a new photo: no flips yet
        # every hand's result (issue 26): a new photo starts afresh, a run of some hands updates those
        same = not self._fresh and m.image_state.path == est.path and len(m.hands.results) <= len(est.detections)
        results = list(m.hands.results) if same else []
        reproj = list(m.hands.reprojection) if same else []
        results += [None] * (len(est.detections) - len(results))
        reproj += [None] * (len(est.detections) - len(reproj))
        for i, r, e in zip(est.indices or [est.chosen], est.results or [est.result],
                           est.reprojections or [est.reprojection_px]):
            results[i], reproj[i] = r, e
        m.image_state.set(est.path, est.image, est.detections, est.chosen)
        m.hands.set(results, reproj)
        m.trajectory.reset(trajectory_frames(est.result))
        m.display.index = min(m.display.index, n - 1)     # valid for the old result and the new one
        m.result_state.set(est.result, est.reprojection_px)
        m.display.view = "image"
        self.opened.emit(est.path)
        self.status.message = self._describe(est.path, est.result, est.chosen)
        self.engine_kind = est.engine_kind
        self.status.timing_tip = est.engine_note
        self.status.timing = f"{est.seconds * 1000:.0f} ms · {est.engine_kind}"


    def _describe(self, path: str | None, r, index: int) -> str:
        """The status line of the selected hand."""
        n, hands = r.joint_hypotheses.shape[0], len(self.model.image_state.detections)
        extra = f" · hand {index + 1} of {hands} (click one to select it)" if hands > 1 else ""
        side = r.side.describe() if r.side is not None else f"{r.handedness} hand"
        return f"{pathlib.Path(path or '').name}: {n} hypotheses, {side} (H flips it){extra}"


class CompletionRuns(QtCore.QObject):
    """DPoser completions of `model.completion.source` with `model.mask` and `model.completion_settings`."""

    started = QtCore.Signal()        # a completion was started (the DPoser dock comes to the front)
    opened = QtCore.Signal(str)      # a pose file is shown (recent files)
    RERUN_AFTER_MS = 200             # a schedule change re-runs once it settles (dragging a handle)

    def __init__(self, model: ViewerModel, runner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.runner = model, runner
        self.status = model.status
        self.neutral = None                    # core.neutral_hand.NeutralHand (the shipped neutral hand)
        self._rerun_timer = QtCore.QTimer(self, singleShot=True, interval=self.RERUN_AFTER_MS)
        self._rerun_timer.timeout.connect(self.complete)
        self.jobs = RunnerOwner.of(runner)   # the runner also serves refinements (RefineRuns)
        runner.partial.connect(lambda p: self.jobs.owns(self) and model.completion.set_live(p[1], p[0]))
        runner.finished.connect(self._on_completion)
        runner.failed.connect(lambda message, tb: self.jobs.owns(self)
                              and (log.debug(tb) or self.status.fail(message)))

    # -- the pose to complete ------------------------------------------------------------------------
    def show_source(self, source: PoseSource) -> None:
        """Make `source` the pose to complete and show it (cancels a completion in flight)."""
        self.runner.cancel()
        self.model.completion.set_source(source)
        self.model.display.update(view="pose")

    def use(self, which: str) -> bool:
        """The DPoser dock's source buttons: 'result' (the image result), 'random' or 'neutral'."""
        from core.errors import one_line

        m = self.model
        if which == "result":
            r = m.result_state.result
            if r is None:
                return self.status.fail("no image result yet: open a photo first")
            sel = m.display.selected(m.result_state.best) if m.display.mode in ("best", "single") else None
            mesh_joints = getattr(r, "mesh_joints", None)
            joints = r.joint_hypotheses[sel] if sel is not None else (r.joints if mesh_joints is None else mesh_joints)
            label = f"{pathlib.Path(m.image_state.path or '').name} " + (
                f"hypothesis #{sel}" if sel is not None else "aggregate")
            if getattr(r, "params", None) is not None:
                return self._use_params(r, sel, label)
            source = PoseSource(label, np.asarray(joints, np.float32))
        elif which == "random":
            try:   # sampled and posed in the DPoser process (this one has no torch, no hand model)
                source = self.runner.call(("random_source", int(np.random.default_rng().integers(1 << 30))))
            except Exception as exc:  # noqa: BLE001 - e.g. missing prior weights
                return self.status.fail(one_line(exc))
        else:
            source = self.neutral_source()
        self.show_source(source)
        return True

    def _use_params(self, r, sel: int | None, label: str) -> bool:
        """Complete from the result's Anny parameters (issue 25; the refined ones while the refinement is
        drawn): the hypothesis `sel` (None: the aggregate) posed by the DPoser process, so DPoser starts
        from a pose, not from joints alone (a left hand is the right-hand model's mirror image, as for a
        left pose file)."""
        from core.errors import one_line
        from core.io.poses import pose_file_arrays

        refined = self.model.display.refinement_of(r)      # the refined hypotheses when they are drawn
        a = pose_file_arrays(r.params if refined is None else refined.refinement.params, sel, r.handedness)
        label += " (" + ("refined " if refined is not None else "") + "Anny parameters" + (
            ", left, mirrored)" if r.handedness == "left" else ")")
        try:
            source = self.runner.call(("source_from_pose", label, a["pose"], a["global_orient"], a["shape"]))
        except Exception as exc:  # noqa: BLE001 - e.g. the DPoser process failed to start
            return self.status.fail(one_line(exc))
        self.model.hand.set(source.vertices, source.joints, label)
        self.show_source(source)
        return True

    def neutral_source(self) -> PoseSource:
        """The shipped neutral hand (rest pose, palm to the camera) as a pose to complete."""
        h = self.neutral
        return PoseSource("neutral hand", h.joints, np.zeros(45, np.float32), h.global_orient, None, h.vertices)

    def open_pose(self, path: str) -> bool:
        """Show a pose file and make it the pose to complete (a left hand is shown mirrored as a right one)."""
        from core.errors import HandModelError, InputError, PoseViewerError, one_line
        from core.io.poses import load_pose_file
        from core.joints import mirror_x

        p = pathlib.Path(path)
        try:
            pf = load_pose_file(str(p))
            if pf.model != "anny":
                raise InputError("MANO pose files are shown with `pose-viewer mesh --mano-dir`; "
                                 "the viewer's DPoser works on the Anny pose layout")
            if pf.pose is not None:
                source = self.runner.call(("source_from_pose", p.name, pf.pose, pf.global_orient, pf.shape))
            else:
                joints = mirror_x(pf.joints) if pf.side == "left" else pf.joints
                source = PoseSource(p.name + (" (left, mirrored)" if pf.side == "left" else ""),
                                    (joints - joints[:1]).astype(np.float32))
        except (PoseViewerError, HandModelError, OSError, ValueError) as exc:
            return self.status.fail(f"{p.name}: {one_line(exc)}")
        self.status.error = None
        if source.vertices is not None:
            self.model.hand.set(source.vertices, source.joints, p.name)
        if pf.mask is not None:
            self.model.mask.set(pf.mask)
        self.show_source(source)
        self.opened.emit(path)
        self.status.message = f"Showing {p.name}"
        return True

    # -- runs -------------------------------------------------------------------------------------------
    def complete(self) -> bool:
        """Run DPoser on the current source and mask (cancels a completion in flight)."""
        m = self.model
        src, hidden = m.completion.source, m.mask.hidden.copy()
        self.status.error = None
        if src is None:
            return self.status.fail("nothing to complete: open a pose or a photo first")
        if not hidden.any():
            return self.status.fail("no joint is hidden: click joints (or use a preset) to hide them first")
        if hidden.all():
            return self.status.fail("all joints are hidden: leave some visible")
        settings = m.completion_settings.values()
        m.display.update(view="pose")
        job_source = dataclasses.replace(src, vertices=None)   # the child needs no mesh
        self.jobs.start(self, (job_source, hidden, settings))
        self.started.emit()
        self.status.message = f"Completing {int(hidden.sum())} hidden joints with {settings['prior']}…"
        return True

    def schedule_changed(self) -> None:
        """Settings changed: re-run once they settle, if there is a completion to redo."""
        if self.model.completion.result is not None or self.runner.busy:
            self._rerun_timer.start()

    @property
    def rerun_scheduled(self) -> bool:
        return self._rerun_timer.isActive()

    def cancel_scheduled_rerun(self) -> None:
        """Forget a re-run scheduled by a settings change (scripted use sets several at once)."""
        self._rerun_timer.stop()

    def _on_completion(self, payload) -> None:
        if not self.jobs.owns(self):
            return
        result, vertices = payload
        self.model.completion.set_result(result, vertices)
        s = self.model.completion_settings
        self.status.timing_tip = ""
        self.status.timing = f"DPoser {result.seconds * 1000:.0f} ms"
        self.status.message = f"{len(result.pose)} completions ({s.prior}, {s.schedule} schedule)"

