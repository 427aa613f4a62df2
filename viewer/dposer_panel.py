"""DPoser dock: pose source, joint mask (list + presets + undo), schedule, Complete, iteration scrubber."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from core.io.poses import parse_mask
from core.joints import FINGERS, JOINT_NAMES, NUM_JOINTS
from core.prior.choices import DEFAULT_HYPOTHESES, DEFAULT_ITERS, PRIORS, SCHEDULES, TASK_RANGES
from viewer.icons import icon
from viewer.panels import bind
from viewer.schedule_plot import SchedulePlot
from viewer.state import CompletionSettings, CompletionState, MaskState, batch


class DPoserPanel(QtWidgets.QWidget):
    """Edits the mask, the completion settings and the highlighted completion (models, bound both ways);
    asks the window to complete (signals); shows the schedule and the completion's iteration / spread."""

    complete_requested = QtCore.Signal()
    source_requested = QtCore.Signal(str)     # 'result' | 'random' | 'neutral'
    schedule_changed = QtCore.Signal()        # any schedule / prior / S / iterations change
    export_requested = QtCore.Signal()

    def __init__(self, mask: MaskState, completion: CompletionState, settings: CompletionSettings,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.mask, self.completion, self.completion_settings = mask, completion, settings
        outer = QtWidgets.QVBoxLayout(self)

        # Source.
        src = QtWidgets.QHBoxLayout()
        for key, text, tip in (("result", "From result", "Complete the selected hypothesis (or the aggregate) of the image result, from its Anny parameters"),
                               ("random", "Random", "A pose sampled from the DPoser prior"),
                               ("neutral", "Neutral", "The neutral hand")):
            b = QtWidgets.QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, k=key: self.source_requested.emit(k))
            src.addWidget(b)
        outer.addLayout(src)
        self.source_label = QtWidgets.QLabel("Source: –")
        outer.addWidget(self.source_label)

        # Mask: joint list + presets.
        self.joint_list = QtWidgets.QListWidget()
        self.joint_list.setToolTip("Ticked joints are hidden (also: click a joint in the 3D view)")
        for j, name in enumerate(JOINT_NAMES):
            item = QtWidgets.QListWidgetItem(f"{j:2d} {name}")
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.CheckState.Unchecked)
            self.joint_list.addItem(item)
        self.joint_list.setMaximumHeight(150)
        self.joint_list.itemChanged.connect(self._on_item_changed)
        outer.addWidget(self.joint_list)
        presets = QtWidgets.QHBoxLayout()
        tips = QtWidgets.QPushButton("Fingertips")
        tips.setToolTip("Hide the five fingertips")
        tips.clicked.connect(lambda: self.apply_preset("fingertips"))
        self.finger = QtWidgets.QComboBox()
        self.finger.addItems(FINGERS)
        finger_btn = QtWidgets.QPushButton("Finger")
        finger_btn.setToolTip("Hide the chosen finger")
        finger_btn.clicked.connect(lambda: self.apply_preset(f"finger:{self.finger.currentText()}"))
        rnd = QtWidgets.QPushButton("Random 60%")
        rnd.clicked.connect(lambda: self.apply_preset("random:0.6"))
        clear = QtWidgets.QPushButton("Clear")
        clear.clicked.connect(self.mask.clear)
        undo = QtWidgets.QToolButton()
        undo.setIcon(icon("fa5s.undo"))
        undo.setToolTip("Undo the last mask change (Ctrl+Z)")
        undo.clicked.connect(self.mask.undo)
        for w in (tips, rnd, clear, undo):   # two rows, so the dock needs no more width than its forms
            presets.addWidget(w)
        outer.addLayout(presets)
        finger_row = QtWidgets.QHBoxLayout()
        for w in (self.finger, finger_btn):
            finger_row.addWidget(w)
        finger_row.addStretch(1)
        outer.addLayout(finger_row)

        # Run settings.
        form = QtWidgets.QFormLayout()
        self.n = QtWidgets.QSpinBox(minimum=1, maximum=100, value=DEFAULT_HYPOTHESES)
        self.n.setToolTip("Number of completions (hypotheses) S")
        self.prior = QtWidgets.QComboBox()
        self.prior.addItems(PRIORS)
        self.prior.setToolTip("dposer: diffusion prior; none / l2: baselines in the same loop")
        self.kind = QtWidgets.QComboBox()
        self.kind.addItems(SCHEDULES)
        t_max, t_min = TASK_RANGES["completion"]
        self.t_max = QtWidgets.QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.01, decimals=3, value=t_max)
        self.t_min = QtWidgets.QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.01, decimals=3, value=t_min)
        self.iters = QtWidgets.QSpinBox(minimum=1, maximum=2000, value=DEFAULT_ITERS)
        for label, w in (("Hypotheses", self.n), ("Prior", self.prior), ("Schedule", self.kind),
                         ("t max", self.t_max), ("t min", self.t_min), ("Iterations", self.iters)):
            form.addRow(label, w)
        outer.addLayout(form)
        self.complete_button = QtWidgets.QPushButton(icon("fa5s.magic"), "Complete")
        self.complete_button.setToolTip("Complete the hidden joints with DPoser (S hypotheses)")
        self.complete_button.clicked.connect(self.complete_requested.emit)
        outer.addWidget(self.complete_button)

        # Schedule plot + iteration scrubber + hypothesis choice.
        self.plot = SchedulePlot()
        outer.addWidget(self.plot)
        scrub = QtWidgets.QHBoxLayout()
        self.iteration = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.iteration.setToolTip("Optimisation iteration shown (0 = start, last = result)")
        self.iteration_label = QtWidgets.QLabel("–")
        scrub.addWidget(QtWidgets.QLabel("Iteration"))
        scrub.addWidget(self.iteration)
        scrub.addWidget(self.iteration_label)
        outer.addLayout(scrub)
        pick = QtWidgets.QHBoxLayout()
        self.hypothesis = QtWidgets.QSpinBox(minimum=0, maximum=0)
        self.hypothesis.setToolTip("Completion to highlight and export")
        export = QtWidgets.QPushButton(icon("fa5s.file-export"), "Export")
        export.clicked.connect(self.export_requested.emit)
        pick.addWidget(QtWidgets.QLabel("Hypothesis"))
        pick.addWidget(self.hypothesis)
        pick.addWidget(export)
        outer.addLayout(pick)
        self.spread_label = QtWidgets.QLabel("")
        self.spread_label.setWordWrap(True)
        outer.addWidget(self.spread_label)
        outer.addStretch(1)

        # Wiring.
        for w, name in ((self.n, "n"), (self.prior, "prior"), (self.kind, "schedule"), (self.t_max, "t_max"),
                        (self.t_min, "t_min"), (self.iters, "iters")):
            bind(w, settings, name)
        bind(self.hypothesis, completion, "selected")
        settings.events.connect(self.refresh_plot)
        self.mask.events.hidden.connect(self._sync_mask)
        self.mask.events.hidden.connect(self._show_spread)
        for name in ("source", "result", "live_joints", "iteration", "selected"):
            getattr(completion.events, name).connect(self._show_completion)
        self.iteration.valueChanged.connect(self.completion.set_iteration)
        self.plot.range_dragged.connect(self._on_drag)
        self.plot.range_released.connect(lambda *_: self.schedule_changed.emit())
        for w in (self.t_max, self.t_min):
            w.valueChanged.connect(self._on_spin)
        for w in (self.kind, self.prior):
            w.currentTextChanged.connect(lambda *_: self.schedule_changed.emit())
        for w in (self.iters, self.n):
            w.valueChanged.connect(lambda *_: self.schedule_changed.emit())

    # -- mask -------------------------------------------------------------------------------------
    def apply_preset(self, preset: str) -> None:
        self.mask.set(parse_mask(None, preset, seed=int(np.random.default_rng().integers(1 << 30))))

    def _on_item_changed(self, item: QtWidgets.QListWidgetItem) -> None:
        j = self.joint_list.row(item)
        hidden = item.checkState() == QtCore.Qt.CheckState.Checked
        if bool(self.mask.hidden[j]) != hidden:
            self.mask.toggle(j)

    def _sync_mask(self) -> None:
        self.joint_list.blockSignals(True)
        for j in range(NUM_JOINTS):
            self.joint_list.item(j).setCheckState(
                QtCore.Qt.CheckState.Checked if self.mask.hidden[j] else QtCore.Qt.CheckState.Unchecked)
        self.joint_list.blockSignals(False)

    # -- the completion shown -----------------------------------------------------------------------------
    def _show_completion(self) -> None:
        """Ranges and labels of the iteration scrubber and the hypothesis box, the plot's iteration mark."""
        c = self.completion
        if c.result is not None:
            n_it = c.n_iterations
            for w, top, value in ((self.iteration, n_it, c.iteration), (self.hypothesis, len(c.result.pose) - 1, c.selected)):
                blocked = w.blockSignals(True)
                w.setRange(0, top)
                w.setValue(value)
                w.blockSignals(blocked)
            t = c.result.t_schedule[min(c.iteration, n_it - 1)]
            self.iteration_label.setText(f"{c.iteration}/{n_it} (t = {t:.3f})")
        self.source_label.setText(f"Source: {c.source.label}" if c.source is not None else "Source: –")
        self.plot.set_iteration(c.iteration)
        self._show_spread()

    def _show_spread(self) -> None:
        """The three hidden joints whose completions spread most (mm)."""
        from core.hypotheses import per_point_spread

        joints = self.completion.display_joints()
        hidden = np.flatnonzero(self.mask.hidden)
        if joints is None or not len(hidden):
            self.spread_label.setText("")
            return
        spread = per_point_spread(joints) * 1000
        worst = hidden[np.argsort(-spread[hidden])][:3]
        self.spread_label.setText("spread of hidden joints (mm): "
                                  + ", ".join(f"{JOINT_NAMES[j]} {spread[j]:.1f}" for j in worst))

    # -- schedule ---------------------------------------------------------------------------------
    def settings(self) -> dict:
        return self.completion_settings.values()

    def _on_drag(self, t_max: float, t_min: float) -> None:
        """While a handle is dragged the model follows (the spin boxes with it, silently); the re-run
        waits for the release."""
        with batch(self.completion_settings):
            self.completion_settings.t_max, self.completion_settings.t_min = t_max, t_min
        self.refresh_plot()

    def _on_spin(self) -> None:
        s = self.completion_settings
        if s.t_min > s.t_max:
            s.t_min = s.t_max
        self.schedule_changed.emit()

    def refresh_plot(self) -> None:
        from core.prior import Schedule

        s = self.settings()
        times = Schedule(kind=s["schedule"], t_max=s["t_max"], t_min=s["t_min"]).times(s["iters"])
        self.plot.set_schedule(times, s["schedule"], s["t_max"], s["t_min"])
