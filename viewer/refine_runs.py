"""The Refine controller (issue 25 item 3): DPoser refinement of the selected hand's hypotheses and aggregate
against its 2D keypoints, run by the DPoser process (`viewer/refine_job.py`), which it shares with the
completions (`viewer.runs.RunnerOwner`). No widgets here: it fills `model.refine`, `model.display` and
`model.status`."""
from __future__ import annotations

import logging

from PySide6 import QtCore

from viewer.runs import RunnerOwner
from viewer.state import ViewerModel

log = logging.getLogger("pose-viewer")


class RefineRuns(QtCore.QObject):
    """DPoser refinement of the selected hand's hypotheses and aggregate against its 2D keypoints (issue 25
    item 3), in the DPoser process (`viewer/refine_job.py`). The refinement belongs to the hand and the
    result it was run on: shown (after / before: `display.refined`) while that result is the selected
    one, dropped when the hand gets a new result (a new photo, a re-run); saved with the result
    (`HandResult.refined` → the `refined_*` keys of File ▸ Save result .npz)."""

    def __init__(self, model: ViewerModel, runner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.runner = model, runner
        self.status = model.status
        self.jobs = RunnerOwner.of(runner)
        self._target = None          # the HandResult being refined
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_cancelled)
        model.hands.events.results.connect(self._on_hands)
        model.result_state.events.result.connect(self._on_result)

    def toggle(self) -> bool:
        """The Refine button: refine the selected hand, or cancel the refinement that is running."""
        if self.model.refine.running:
            self.cancel()
            return True
        return self.refine()

    def refine(self) -> bool:
        """Refine the selected hand's result (cancels a DPoser run in flight)."""
        from viewer.refine_job import trim_for_refine

        m = self.model
        r = m.result_state.result
        if r is None or m.image_state.image is None:
            return self.status.fail("no image result to refine: open a photo first")
        if getattr(r, "params", None) is None or getattr(r, "mesh", None) is None:
            return self.status.fail("this result has no hand-model parameters to refine "
                                    "(the cascade's mesh stage is needed)")
        self.status.error = None
        self.cancel()                      # our own run in flight, if any (reported as cancelled)
        index, n = m.image_state.chosen, r.joint_hypotheses.shape[0]
        self.status.message = (f"Refining {n} hypotheses of hand {index + 1} with DPoser "
                               f"({m.refine.iters} iterations)…")
        self._target = r
        m.refine.hand = index
        m.refine.running = True            # before the start: a process that cannot start fails at once
        self.jobs.start(self, ("refine", trim_for_refine(r), {"iters": int(m.refine.iters)}))
        return True

    def cancel(self) -> None:
        if self.model.refine.running and self.jobs.owns(self):
            self.runner.cancel()

    def show_refined(self, after: bool) -> None:
        """The before / after toggle: the refined meshes or the ones the cascade gave (nothing is re-run)."""
        self.model.display.refined = bool(after)

    # -- outcomes --------------------------------------------------------------------------------------
    def _end(self) -> bool:
        """This controller's run is over (any outcome); False if the outcome is another controller's."""
        if not (self.jobs.owns(self) and self.model.refine.running):
            return False
        self.model.refine.running = False
        return True

    def _on_finished(self, outcome) -> None:
        if not self._end():
            return
        m, target, self._target = self.model, self._target, None
        index = m.refine.hand
        if not (index < len(m.hands.results) and m.hands.results[index] is target):
            self.status.message = "Refinement done, but its hand has a new result since: not shown."
            return
        target.refined = outcome.refinement          # saved with the result (refined_* npz keys)
        m.refine.store(index, target, outcome)
        if m.result_state.result is target:
            m.display.update(refinement=(target, outcome), refined=True)
        ref = outcome.refinement
        self.status.timing_tip = ""
        self.status.timing = f"refine {ref.seconds * 1000:.0f} ms"
        self.status.message = (
            f"Refined {len(ref.hyp_transl)} hypotheses of hand {index + 1} ({ref.iters} iterations): mean keypoint "
            f"error {outcome.error_before:.1f} → {outcome.error_after:.1f} px (aggregate "
            f"{ref.reprojection_px_before[-1]:.1f} → {ref.reprojection_px_after[-1]:.1f} px)")

    def _on_failed(self, message: str, tb: str) -> None:
        if self._end():
            self._target = None
            log.debug(tb)
            self.status.fail(f"refinement failed: {message}")

    def _on_cancelled(self) -> None:
        if self._end():
            self._target = None
            self.status.message = "Refinement cancelled; the meshes are unchanged."

    # -- the selected hand -----------------------------------------------------------------------------
    def _on_hands(self) -> None:
        """Hands with new results lose their refinement; a run on a replaced result is cancelled."""
        m = self.model
        m.refine.forget_replaced(m.hands.results)
        replaced = not any(r is self._target for r in m.hands.results)
        if m.refine.running and self._target is not None and replaced:
            self.cancel()

    def _on_result(self, r) -> None:
        """The selected hand changed (or got a new result): show its own refinement, if any."""
        m = self.model
        m.display.refinement = m.refine.outcome_for(m.image_state.chosen, r)
