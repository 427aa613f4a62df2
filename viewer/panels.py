"""Dock panels: run settings, hypothesis display, denoising trajectory. Each edits and observes its
evented model (viewer/state.py); `bind` keeps a widget and a model field equal both ways."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from viewer.icons import icon
from viewer.state import DISPLAY_MODES, DisplayState, RefineState, ResultState, RunSettings, TrajectoryState


def bind(widget: QtWidgets.QWidget, model, name: str) -> None:
    """Two-way binding of a spin box / combo box / check box / slider to `model.<name>`: the widget shows
    the model's value and edits it; a model change updates the widget without echoing its signal."""
    if isinstance(widget, QtWidgets.QComboBox):
        show, changed = widget.setCurrentText, widget.currentTextChanged
    elif isinstance(widget, QtWidgets.QAbstractButton):
        show, changed = widget.setChecked, widget.toggled
    else:   # spin boxes, sliders
        show, changed = widget.setValue, widget.valueChanged

    def to_widget(value) -> None:
        blocked = widget.blockSignals(True)
        show(value)
        widget.blockSignals(blocked)

    to_widget(getattr(model, name))
    changed.connect(lambda value: setattr(model, name, value))
    getattr(model.events, name).connect(to_widget)


class SettingsPanel(QtWidgets.QWidget):
    """Engine settings: hypotheses N, DDIM steps, seed, inference mode, device, every hand (`RunSettings`)."""

    def __init__(self, settings: RunSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        form = QtWidgets.QFormLayout(self)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.n = QtWidgets.QSpinBox(minimum=1, maximum=200)
        self.n.setToolTip("Number of hypotheses sampled in one batch")
        self.steps = QtWidgets.QSpinBox(minimum=1, maximum=50)
        self.steps.setToolTip("DDIM steps per diffusion stage")
        self.seed = QtWidgets.QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Random seed: same seed, same hypotheses")
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(["cloud", "paper"])
        self.mode.setToolTip("cloud: one mesh per joint hypothesis; paper: mean joints → mean latent → one mesh")
        self.device = QtWidgets.QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("Where the engine runs (auto = CUDA when present)")
        for label, w, name in (("Hypotheses", self.n, "n"), ("DDIM steps", self.steps, "steps"),
                               ("Seed", self.seed, "seed"), ("Mode", self.mode, "mode"),
                               ("Device", self.device, "device")):
            form.addRow(label, w)
            bind(w, settings, name)
        self.all_hands = QtWidgets.QCheckBox("Every hand (crop search)")
        self.all_hands.setToolTip("Also look for the hands the palm detector misses, with the hand-landmark model "
                                  "on crops of the photo (~1-2 s more per photo); changing it looks again")
        form.addRow(self.all_hands)
        bind(self.all_hands, settings, "all_hands")
        self.rerun = QtWidgets.QPushButton(icon("fa5s.redo"), "Re-run")
        self.rerun.setToolTip("Run the estimate again with these settings")
        form.addRow(self.rerun)


class DisplayPanel(QtWidgets.QWidget):
    """Which hypotheses are drawn (all / aggregate / best / single + index), spread colouring, a summary
    of the result's reprojection errors, and the DPoser refinement of the hypotheses (Refine / Cancel,
    iterations, before / after)."""

    refine_requested = QtCore.Signal()     # the Refine button: refine, or cancel the running refinement

    def __init__(self, display: DisplayState, result: ResultState, refine: RefineState | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.result = display, result
        self.refine = refine if refine is not None else RefineState()
        form = QtWidgets.QFormLayout(self)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(DISPLAY_MODES)
        self.mode.setToolTip("all: cloud around the aggregate; best: lowest 2D reprojection error; single: pick one")
        self.index = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.index.setRange(0, 0)
        self.index.setToolTip("Hypothesis shown in 'single' mode (and highlighted in 'all')")
        self.spread = QtWidgets.QCheckBox("Colour aggregate by spread")
        self.param_mesh = QtWidgets.QCheckBox("Anny mesh (parametric)")
        self.param_mesh.setToolTip("Draw the Anny meshes of the fitted hand-model parameters instead of the "
                                   "decoder's meshes (when the result has them)")
        self.info = QtWidgets.QLabel("–")
        self.info.setWordWrap(True)
        # A wrapped label's second line is not counted in the dock's minimum height: reserve it (else clipped).
        self.info.setMinimumHeight(2 * self.info.fontMetrics().lineSpacing())
        form.addRow("Show", self.mode)
        form.addRow("Hypothesis", self.index)
        form.addRow(self.spread)
        form.addRow(self.param_mesh)
        form.addRow(self.info)
        self._build_refine(form)
        result.events.result.connect(self._on_result)
        bind(self.mode, display, "mode")
        bind(self.index, display, "index")
        bind(self.spread, display, "color_by_spread")
        bind(self.param_mesh, display, "param_mesh")
        display.events.connect(self._show_info)

    def _build_refine(self, form: QtWidgets.QFormLayout) -> None:
        """Refine (→ Cancel while it runs) + iterations on one row, the before / after toggle, the errors."""
        self.refine_button = QtWidgets.QPushButton()
        self.refine_button.clicked.connect(self.refine_requested)
        self.refine_iters = QtWidgets.QSpinBox(minimum=1, maximum=1000, suffix=" it")
        self.refine_iters.setToolTip("DPoser refinement iterations")
        self.refine_after = QtWidgets.QCheckBox("After")
        self.refine_after.setToolTip("After refinement: checked, the refined meshes; unchecked, the meshes before "
                                     "refinement (nothing is re-run; Ctrl+Shift+R)")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.refine_button, 1)
        row.addWidget(self.refine_iters)
        row.addWidget(self.refine_after)
        form.addRow(row)
        self.refine_info = QtWidgets.QLabel("")      # shown once the selected hand has a refinement
        self.refine_info.setWordWrap(True)
        self.refine_info.setMinimumHeight(self.refine_info.fontMetrics().lineSpacing())
        form.addRow(self.refine_info)
        bind(self.refine_iters, self.refine, "iters")
        bind(self.refine_after, self.display, "refined")
        self.refine.events.running.connect(self._show_refine)
        self.display.events.refinement.connect(self._show_refine)
        self.result.events.result.connect(self._show_refine)
        self._show_refine()

    def _show_refine(self) -> None:
        running = self.refine.running
        self.refine_button.setText("Cancel refinement" if running else "Refine (DPoser)")
        self.refine_button.setIcon(icon("fa5s.times-circle" if running else "fa5s.bullseye"))
        self.refine_button.setToolTip("Stop the refinement (the meshes stay as they are)" if running else
                                      "Refine the selected hand's hypotheses and aggregate against the photo's "
                                      "2D keypoints with the DPoser prior (Ctrl+R)")
        self.refine_button.setEnabled(running or self.result.result is not None)
        outcome = self.display.refinement
        has = outcome is not None and outcome[0] is self.result.result
        self.refine_after.setEnabled(has)
        self.refine_info.setVisible(has)
        self.refine_info.setText(f"Refined: mean keypoint error {outcome[1].error_before:.1f} → "
                                 f"{outcome[1].error_after:.1f} px" if has else "")

    def _on_result(self) -> None:
        blocked = self.index.blockSignals(True)
        self.index.setRange(0, max(self.result.n - 1, 0))
        self.index.setValue(self.display.index)
        self.index.blockSignals(blocked)
        self._show_info()

    def _show_info(self) -> None:
        r = self.result
        if r.result is None:
            return
        sel = self.display.selected(r.best)
        info = f"{r.n} hypotheses · best #{r.best}"
        err = r.reprojection_px
        if err is not None:
            info += f" ({err.min():.1f} px) · selected #{sel}: {err[sel]:.1f} px · median {np.median(err):.1f} px"
        self.info.setText(info)


class DenoisePanel(QtWidgets.QWidget):
    """Step slider over the DDIM trajectory (stage 1 joints, then stage 2 meshes), play / pause, speed."""

    def __init__(self, traj: TrajectoryState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.traj = traj
        lay = QtWidgets.QHBoxLayout(self)
        self.play = QtWidgets.QToolButton()
        self.play.setIcon(icon("fa5s.play"))
        self.play.setToolTip("Play / pause the denoising (Space)")
        self.play.setCheckable(True)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Denoising step: 0 = noise, last = result  (, . ← →)")
        self.label = QtWidgets.QLabel(traj.label)
        self.label.setMinimumWidth(110)
        self.speed = QtWidgets.QSpinBox(minimum=1, maximum=60, value=6, suffix=" fps")
        self.speed.setToolTip("Play speed")
        for w in (self.play, self.slider, self.label, self.speed):
            lay.addWidget(w)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.slider.valueChanged.connect(traj.set_step)
        self.play.toggled.connect(self.set_playing)
        self.speed.valueChanged.connect(lambda v: self.timer.setInterval(int(1000 / v)))
        self.timer.setInterval(int(1000 / self.speed.value()))
        traj.events.frames.connect(self._sync)
        traj.events.step.connect(self._sync)
        traj.events.playing.connect(self._show_playing)

    def set_playing(self, on: bool) -> None:
        if on and self.traj.at_result:
            self.traj.set_step(0)
        self.traj.playing = on
        self._show_playing(on)

    def toggle(self) -> None:
        self.set_playing(not self.traj.playing)

    def _show_playing(self, on: bool) -> None:
        blocked = self.play.blockSignals(True)
        self.play.setChecked(on)
        self.play.blockSignals(blocked)
        self.play.setIcon(icon("fa5s.pause" if on else "fa5s.play"))
        self.timer.start() if on else self.timer.stop()

    def _tick(self) -> None:
        if self.traj.at_result:
            self.set_playing(False)
        else:
            self.traj.advance(1)

    def _sync(self) -> None:
        t = self.traj
        blocked = self.slider.blockSignals(True)
        self.slider.setRange(0, max(t.n_steps - 1, 0))
        self.slider.setValue(t.step)
        self.slider.blockSignals(blocked)
        self.label.setText(t.label)
