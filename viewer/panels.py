"""Dock panels: run settings, hypothesis display, denoising trajectory. They edit the evented state."""
from __future__ import annotations

import qtawesome as qta
from PySide6 import QtCore, QtWidgets

from viewer.state import DISPLAY_MODES, DisplayState, TrajectoryState


class SettingsPanel(QtWidgets.QWidget):
    """Engine settings: hypotheses N, DDIM steps, seed, inference mode, device."""

    changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        form = QtWidgets.QFormLayout(self)
        self.n = QtWidgets.QSpinBox(minimum=1, maximum=200, value=50)
        self.n.setToolTip("Number of hypotheses sampled in one batch")
        self.steps = QtWidgets.QSpinBox(minimum=1, maximum=50, value=10)
        self.steps.setToolTip("DDIM steps per diffusion stage")
        self.seed = QtWidgets.QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Random seed: same seed, same hypotheses")
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(["cloud", "paper"])
        self.mode.setToolTip("cloud: one mesh per joint hypothesis; paper: mean joints → mean latent → one mesh")
        self.device = QtWidgets.QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("Where the engine runs (auto = CUDA when present)")
        for label, w in (("Hypotheses", self.n), ("DDIM steps", self.steps), ("Seed", self.seed),
                         ("Mode", self.mode), ("Device", self.device)):
            form.addRow(label, w)
        self.rerun = QtWidgets.QPushButton(qta.icon("fa5s.redo"), "Re-run")
        self.rerun.setToolTip("Run the estimate again with these settings")
        form.addRow(self.rerun)

    def values(self) -> dict:
        return {"n": self.n.value(), "steps": self.steps.value(), "seed": self.seed.value(),
                "mode": self.mode.currentText(), "device": self.device.currentText()}


class DisplayPanel(QtWidgets.QWidget):
    """Which hypotheses are drawn (all / aggregate / best / single + index) and spread colouring."""

    def __init__(self, display: DisplayState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = display
        form = QtWidgets.QFormLayout(self)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(DISPLAY_MODES)
        self.mode.setToolTip("all: cloud around the aggregate; best: lowest 2D reprojection error; single: pick one")
        self.index = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.index.setRange(0, 0)
        self.index.setToolTip("Hypothesis shown in 'single' mode (and highlighted in 'all')")
        self.spread = QtWidgets.QCheckBox("Colour aggregate by spread")
        self.info = QtWidgets.QLabel("–")
        self.info.setWordWrap(True)
        form.addRow("Show", self.mode)
        form.addRow("Hypothesis", self.index)
        form.addRow(self.spread)
        form.addRow(self.info)
        self.mode.currentTextChanged.connect(lambda m: display.update(mode=m))
        self.index.valueChanged.connect(lambda i: display.update(index=i))
        self.spread.toggled.connect(lambda on: display.update(color_by_spread=on))
        display.changed.connect(self._sync)

    def set_count(self, n: int) -> None:
        self.index.setRange(0, max(n - 1, 0))

    def _sync(self, d: DisplayState) -> None:
        for w, v in ((self.mode, d.mode), (self.index, d.index), (self.spread, d.color_by_spread)):
            w.blockSignals(True)
        self.mode.setCurrentText(d.mode)
        self.index.setValue(d.index)
        self.spread.setChecked(d.color_by_spread)
        for w in (self.mode, self.index, self.spread):
            w.blockSignals(False)


class DenoisePanel(QtWidgets.QWidget):
    """Step slider over the DDIM trajectory (stage 1 joints, then stage 2 meshes), play / pause, speed."""

    def __init__(self, traj: TrajectoryState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.traj = traj
        lay = QtWidgets.QHBoxLayout(self)
        self.play = QtWidgets.QToolButton()
        self.play.setIcon(qta.icon("fa5s.play"))
        self.play.setToolTip("Play / pause the denoising (Space)")
        self.play.setCheckable(True)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Denoising step: 0 = noise, last = result  (, . ← →)")
        self.label = QtWidgets.QLabel("no trajectory")
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
        traj.changed.connect(self._sync)

    def set_playing(self, on: bool) -> None:
        if on and self.traj.step >= self.traj.n_steps - 1:
            self.traj.set_step(0)
        self.traj.playing = on
        self.play.blockSignals(True)
        self.play.setChecked(on)
        self.play.blockSignals(False)
        self.play.setIcon(qta.icon("fa5s.pause" if on else "fa5s.play"))
        self.timer.start() if on else self.timer.stop()

    def toggle(self) -> None:
        self.set_playing(not self.traj.playing)

    def _tick(self) -> None:
        if self.traj.step >= self.traj.n_steps - 1:
            self.set_playing(False)
        else:
            self.traj.advance(1)

    def set_label(self, text: str) -> None:
        self.label.setText(text)

    def _sync(self, t: TrajectoryState) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(t.n_steps - 1, 0))
        self.slider.setValue(t.step)
        self.slider.blockSignals(False)
