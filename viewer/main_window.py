"""The main window: 3D view, image panel, settings / display / denoising docks, status bar with progress.

State lives in plain evented models (`viewer.state`); engine runs go through `viewer.engine` on worker
threads (`viewer.workers`); this class wires them to widgets and renders.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.state import (CompletionState, DisplayState, HandState, ImageState, MaskState, PoseSource, ResultState,
                          TrajectoryState)

log = logging.getLogger("pose-viewer")
POSE_SUFFIXES = (".npz", ".json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_RECENT = 10
SHORTCUTS = (
    ("Ctrl+O", "open an image or a pose file"), ("Ctrl+E", "export the displayed mesh"),
    ("Ctrl+Shift+E", "export all hypotheses"), ("Ctrl+S", "save result.npz"), ("Shift+S", "save a screenshot"),
    ("Space", "play / pause the denoising"), (", or ←", "previous denoising step"),
    (". or →", "next denoising step"), ("Home / End", "first / last step"), ("A", "show all hypotheses"),
    ("G", "aggregate only"), ("B", "best hypothesis"), ("R", "front view / reset camera"),
    ("Esc", "cancel the running estimate"), ("Ctrl+Return", "complete the pose with DPoser"),
    ("Ctrl+Z", "undo the last mask change"), ("Click a joint", "hide / show it (pose mode)"), ("Ctrl+Q", "quit"),
    ("Mouse", "left-drag rotate, right-drag / wheel zoom, middle-drag pan; hover a hypothesis for its error"),
)


HAND_SPEC = {"kind": "anny"}   # how the DPoser process rebuilds the window's hand model (viewer.engine.build_hand)


def _load_hand_model():
    """Worker-thread job: the Anny hand, its neutral pose facing the camera, and the device label."""
    import torch

    from core.device import describe_device, pick_device
    from core.hand.anny_hand import AnnyHand
    from core.hand.base import FACING_CAMERA_ORIENT

    from core.hypotheses import coarse_meshes

    hand = AnnyHand()
    with torch.inference_mode():
        neutral = hand.forward(torch.tensor([FACING_CAMERA_ORIENT]))
    for level in (CLOUD_LEVEL, SCRUB_LEVEL):   # build the cloud's level-of-detail matrices now, not on the
        coarse_meshes(neutral.vertices.numpy(), level)   # GUI thread when the first result arrives
    return hand, neutral.vertices[0].numpy(), neutral.joints[0].numpy(), describe_device(pick_device("auto"))



#: Mesh-cloud levels of detail (autoencoder sampling levels: 2 = 200 vertices, 3 = 100 vertices) for
#: still frames and while scrubbing (drawn as points), and how long a step must stay put before it is
#: redrawn in full. The translucent cloud at 200 vertices looks the same as at 400 (compared side by
#: side) and halves llvmpipe's still-frame cost (first frame of a result 90 -> 64 ms under load); the
#: opaque aggregate and a single hypothesis keep the full mesh.
CLOUD_LEVEL, SCRUB_LEVEL, REFINE_AFTER_MS = 2, 3, 250


class MainWindow(QtWidgets.QMainWindow):
    """pose-viewer's window. Engine calls go through `core`; this class only displays."""

    model_ready = QtCore.Signal()

    def __init__(self, mano_dir: str | None = None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        from viewer.dposer_panel import DPoserPanel
        from viewer.engine import PriorEngine
        from viewer.image_panel import ImagePanel
        from viewer.interactor import FrameInteractor
        from viewer.panels import DenoisePanel, DisplayPanel, SettingsPanel
        from viewer.process_worker import ProcessRunner
        from viewer.workers import RunManager

        self.setWindowTitle("pose-viewer")
        self.resize(1280, 820)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.mano_dir = mano_dir
        self.qsettings = settings or QtCore.QSettings("pose-viewer", "pose-viewer")
        self.last_error: str | None = None
        # The engine runs in child processes: its Python would hold this process's GIL and, on a short
        # CPU, its threads would take the window's time (the children run at a lower priority).
        self.engine_kind = "not loaded"
        self.runs = ProcessRunner(self, serve="serve_cascade", label="engine")
        self.prior_runs = ProcessRunner(self, hand_spec=HAND_SPEC)
        self.view_mode = "pose"                  # 'pose' (a hand / DPoser completion) or 'image'

        # State.
        self.hand = HandState()
        self.image_state = ImageState()
        self.result_state = ResultState()
        self.display = DisplayState()
        self.trajectory = TrajectoryState()
        self._frames: list = []
        self._running_path: str | None = None
        self.mask = MaskState()
        self.completion = CompletionState()
        self._press_pos: tuple[int, int] | None = None
        self._last_hover = 0.0
        self._last_progress = 0.0

        # 3D view. The hand model (torch + Anny) loads on a worker thread so the window shows at once;
        # `ready` turns True (and `model_ready` fires) when the neutral hand is on screen.
        self.ready = False
        self.hand_model = None
        self.prior_engine: PriorEngine | None = None
        self.scene = None
        self._pending_path: str | None = None
        self._PriorEngine = PriorEngine
        # We render on change, not on a timer. No multisampling: in software OpenGL (llvmpipe) 8x MSAA
        # (pyvista's default) multiplies the fill cost of every frame — the empty 3D view rendered in
        # 45 ms with it, 5 ms without; still frames are smoothed by FXAA instead (scene.set_fast).
        self.plotter = FrameInteractor(self, auto_update=False, multi_samples=0)
        self.plotter.set_background("#1e2126")
        self.setCentralWidget(self.plotter.interactor)
        self.model_loader = RunManager(self)

        # Docks.
        self.image_panel = ImagePanel()
        self.settings_panel = SettingsPanel()
        self.display_panel = DisplayPanel(self.display)
        self.denoise_panel = DenoisePanel(self.trajectory)
        self.dposer_panel = DPoserPanel(self.mask, self.completion)
        self._dock("Image", self.image_panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        settings_dock = self._dock("Settings", self.settings_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Hypotheses", self.display_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        dposer_dock = self._dock("DPoser", self.dposer_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(settings_dock, dposer_dock)
        settings_dock.raise_()
        self._dock("Denoising", self.denoise_panel, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)

        # Status bar: message, timings, progress + cancel, device.
        self.timing_label = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QtWidgets.QToolButton()
        import qtawesome as qta

        self.cancel_button.setIcon(qta.icon("fa5s.times-circle"))
        self.cancel_button.setToolTip("Cancel the running estimate (Esc)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_runs)
        self.device_label = QtWidgets.QLabel("loading engine…")
        self.device_label.setToolTip("Device the engine runs on")
        for w in (self.timing_label, self.progress, self.cancel_button, self.device_label):
            self.statusBar().addPermanentWidget(w)

        # Wiring.
        self.hand.changed.connect(lambda s: self.scene.set_vertices(s.vertices))
        self.mask.changed.connect(lambda _: self._render_pose())
        self.completion.changed.connect(lambda _: self._render_pose())
        self.dposer_panel.complete_requested.connect(self.complete)
        self.dposer_panel.source_requested.connect(self.set_source)
        self.dposer_panel.schedule_changed.connect(self._on_schedule_changed)
        self.dposer_panel.hypothesis.valueChanged.connect(lambda _: self._render_pose())
        self.dposer_panel.export_requested.connect(self._export_completion_dialog)
        self.prior_runs.progress.connect(self._on_progress)
        self.prior_runs.partial.connect(lambda p: self.completion.set_live(p[1], p[0]))
        self.prior_runs.finished.connect(self._on_completion)
        self.prior_runs.failed.connect(self._on_failed)
        self.prior_runs.busy_changed.connect(self._on_busy)
        self._render_timer = QtCore.QTimer(self, singleShot=True, interval=0)
        self._render_timer.timeout.connect(self.plotter.render)
        self._markers_key: tuple | None = None
        self._rerun_timer = QtCore.QTimer(self, singleShot=True, interval=200)
        self._rerun_timer.timeout.connect(self.complete)
        self.result_state.changed.connect(self._on_result)
        self.display.changed.connect(lambda _: self._render())
        self.trajectory.changed.connect(self._on_step)
        # Level of detail while scrubbing (slider, playback, keys): the mesh cloud is drawn coarser and
        # redrawn at the normal level once the step has stayed put for a moment (like vtkLODActor).
        self._scrubbing = False
        # A new result's first frame skips anti-aliasing too (its arrival is the longest GUI-thread job of a
        # run: ~15 ms less of it); the anti-aliased frame follows once the engine is idle (`_on_busy`): drawn
        # while the engine process still decodes the mesh trajectory it cost 55-128 ms instead of ~45.
        self._arriving = False
        self._steps_seen = 0
        self._early_shown = False   # the live run's result is on screen (its mesh trajectory still to come)
        self._extending = False     # steps are being appended to the shown trajectory
        self._coarse_cache: dict = {}   # (id of a mesh array, level) → (array, coarse points, faces)
        self._refine_timer = QtCore.QTimer(self, singleShot=True, interval=REFINE_AFTER_MS)
        self._refine_timer.timeout.connect(self._refine)
        # Count the pause from the end of the last coarse frame (a slow frame must not trigger refinement).
        self._render_timer.timeout.connect(lambda: self._refine_timer.start() if self._scrubbing else None)
        self.image_panel.hand_clicked.connect(self.choose_hand)
        self.settings_panel.rerun.clicked.connect(self.rerun)
        self.settings_panel.mode.currentTextChanged.connect(
            lambda m: self.display.update(mode="aggregate" if m == "paper" else "all"))
        self.runs.progress.connect(self._on_progress)
        self.runs.partial.connect(self._on_early_estimate)
        self.runs.finished.connect(self._on_final_estimate)
        self.runs.failed.connect(self._on_failed)
        self.runs.cancelled.connect(self._on_cancelled)
        self.runs.busy_changed.connect(self._on_busy)
        self.plotter.iren.add_observer("MouseMoveEvent", self._on_mouse_move)
        self.plotter.iren.add_observer("LeftButtonPressEvent", self._on_left_press)
        self.plotter.iren.add_observer("LeftButtonReleaseEvent", self._on_left_release)

        self._build_menus()
        self._restore_settings()
        self.model_loader.finished.connect(self._on_model_ready)
        self.model_loader.failed.connect(lambda msg, tb: self.show_error(f"hand model: {msg}"))
        self.model_loader.start(lambda progress, cancel: _load_hand_model())
        self.statusBar().showMessage("Loading the hand model…")

    def _on_model_ready(self, loaded) -> None:
        """Show the neutral hand (palm to the camera) once the hand model is built."""
        from core.hand.base import FACING_CAMERA_ORIENT
        from viewer.scene import HandScene

        self.hand_model, verts, joints, device_text = loaded
        self.prior_engine = self._PriorEngine(self.hand_model)
        self.prior_runs.prewarm(HAND_SPEC)   # the DPoser process builds the same hand and loads the prior
        self.runs.prewarm()                  # the image process loads the detector and the cascade
        self.scene = HandScene(self.plotter, self.hand_model.faces, verts)
        self.device_label.setText(device_text)
        self.ready = True
        self.hand.set(verts, joints, "neutral hand")
        self.dposer_panel.refresh_plot()
        self.completion.set_source(PoseSource("neutral hand", joints, np.zeros(45, np.float32),
                                              np.asarray(FACING_CAMERA_ORIENT, np.float32), None, verts))
        self._warm_up_scene(verts, joints)
        hint = "" if self.recent_files() else " First time? Try File ▸ Open sample image."
        self.statusBar().showMessage("Neutral hand. Drop a photo of a hand or a pose file (or Ctrl+O)." + hint)
        self.model_ready.emit()
        if self._pending_path:
            path, self._pending_path = self._pending_path, None
            self.open_path(path)

    # -- construction helpers -----------------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, icon: str | None, text: str, slot, shortcut=None, tip: str = "") -> QtGui.QAction:
        import qtawesome as qta

        act = QtGui.QAction(qta.icon(icon) if icon else QtGui.QIcon(), text, self)
        if shortcut is not None:
            act.setShortcut(shortcut)
        act.setToolTip(tip or text)
        act.setStatusTip(tip or text)
        act.triggered.connect(slot)
        if menu is not None:
            menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        K = QtGui.QKeySequence
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(file_menu, "fa5s.folder-open", "&Open…", self._open_dialog, K.StandardKey.Open,
                                        "Open a photo of a hand or a pose file")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._action(file_menu, "fa5s.hand-paper", "Open &sample image", self.open_sample,
                     tip="A hand rendered by pose-viewer's own renderer, to try the cascade")
        file_menu.addSeparator()
        export = self._action(file_menu, "fa5s.file-export", "&Export displayed mesh…", self._export_dialog, "Ctrl+E")
        self._action(file_menu, None, "Export &all hypotheses…", self._export_all_dialog, "Ctrl+Shift+E")
        self._action(file_menu, None, "Save result .npz…", self._export_npz_dialog, "Ctrl+S")
        shot = self._action(file_menu, "fa5s.camera", "Save &screenshot…", self._screenshot_dialog, "Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, None, "&Quit", self.close, K.StandardKey.Quit)

        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "fa5s.crosshairs", "&Front (camera) view", lambda: self.scene and self.scene.view("front"), "R")
        self._action(view_menu, None, "&Side view", lambda: self.scene and self.scene.view("side"), "Ctrl+2")
        self._action(view_menu, None, "&Top view", lambda: self.scene and self.scene.view("top"), "Ctrl+3")
        view_menu.addSeparator()
        for mode, key in (("all", "A"), ("aggregate", "G"), ("best", "B"), ("single", None)):
            self._action(view_menu, None, f"Show {mode}", lambda _=False, m=mode: self.display.update(mode=m), key)
        view_menu.addSeparator()
        for dock in self.findChildren(QtWidgets.QDockWidget):
            view_menu.addAction(dock.toggleViewAction())

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "fa5s.keyboard", "&Keyboard shortcuts", self._show_shortcuts, K.StandardKey.HelpContents)
        self._action(help_menu, None, "&About", self._show_about)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        for act in (self.open_action, export, shot):
            toolbar.addAction(act)
        toolbar.addSeparator()
        toolbar.addAction(self._action(None, "fa5s.times-circle", "Cancel", self.cancel_runs, "Esc",
                                       "Cancel the running estimate / completion"))
        toolbar.addAction(self._action(None, "fa5s.magic", "Complete", self.complete, "Ctrl+Return",
                                       "Complete the hidden joints with DPoser"))
        edit_menu = self.menuBar().addMenu("&Edit")
        self._action(edit_menu, "fa5s.undo", "&Undo mask change", self.mask.undo, K.StandardKey.Undo)
        self._action(edit_menu, None, "Hide &fingertips", lambda: self.dposer_panel.apply_preset("fingertips"))
        self._action(edit_menu, None, "Hide &random 60%", lambda: self.dposer_panel.apply_preset("random:0.6"))
        self._action(edit_menu, None, "&Clear mask", lambda: self.mask.set(np.zeros(21, bool)))
        self.menuBar().insertMenu(view_menu.menuAction(), edit_menu)

        # Playback keys work whatever widget has focus (as in aitviewer), except text fields.
        self._playback_keys = {
            QtCore.Qt.Key.Key_Space: self.denoise_panel.toggle,
            QtCore.Qt.Key.Key_Comma: lambda: self.trajectory.advance(-1),
            QtCore.Qt.Key.Key_Period: lambda: self.trajectory.advance(1),
            QtCore.Qt.Key.Key_Left: lambda: self.trajectory.advance(-1),
            QtCore.Qt.Key.Key_Right: lambda: self.trajectory.advance(1),
            QtCore.Qt.Key.Key_Home: lambda: self.trajectory.set_step(0),
            QtCore.Qt.Key.Key_End: lambda: self.trajectory.set_step(self.trajectory.n_steps - 1),
        }
        QtWidgets.QApplication.instance().installEventFilter(self)
        self._refresh_recent()

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt API
        """Playback keys for this window, unless a text/number field has the focus."""
        if event.type() == QtCore.QEvent.Type.KeyPress and not event.modifiers() & ~QtCore.Qt.KeyboardModifier.KeypadModifier:
            action = self._playback_keys.get(event.key())
            if action is not None and isinstance(obj, QtWidgets.QWidget) and obj.window() is self:
                focus = QtWidgets.QApplication.focusWidget()
                if not isinstance(focus, (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox, QtWidgets.QListWidget)):
                    action()
                    return True
        return super().eventFilter(obj, event)

    def _show_shortcuts(self) -> None:
        text = "\n".join(f"{k:<14} {v}" for k, v in SHORTCUTS)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, "Keyboard shortcuts", text,
                                    parent=self)
        box.setStyleSheet("QLabel { font-family: monospace; }")
        box.open()

    def _show_about(self) -> None:
        from core import __version__

        QtWidgets.QMessageBox.about(self, "About pose-viewer",
                                    f"pose-viewer {__version__}\nEngine: {self.engine_kind}\n"
                                    "Camera intrinsics are guessed from the image size when unknown "
                                    "(focal = max(w, h), principal point at the centre).")

    # -- settings (QSettings) --------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.qsettings
        if s.value("geometry"):
            self.restoreGeometry(s.value("geometry"))
        if s.value("state"):
            self.restoreState(s.value("state"))
        p = self.settings_panel
        p.n.setValue(int(s.value("engine/n", 50)))
        p.steps.setValue(int(s.value("engine/steps", 10)))
        p.seed.setValue(int(s.value("engine/seed", 0)))
        p.mode.setCurrentText(str(s.value("engine/mode", "cloud")))
        p.device.setCurrentText(str(s.value("engine/device", "auto")))

    def _save_settings(self) -> None:
        s = self.qsettings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("state", self.saveState())
        for k, v in self.settings_panel.values().items():
            s.setValue(f"engine/{k}", v)
        s.sync()

    def recent_files(self) -> list[str]:
        value = self.qsettings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self, path: str) -> None:
        items = [str(pathlib.Path(path).resolve())] + [p for p in self.recent_files()
                                                       if p != str(pathlib.Path(path).resolve())]
        self.qsettings.setValue("recent", items[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            act = self.recent_menu.addAction(pathlib.Path(path).name)
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    # -- opening files ---------------------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open", "", "Images and pose files (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff *.npz *.json);;"
                              "All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Open an image (starts an estimate in the background) or a pose file (shown at once)."""
        if not self.ready:
            self._pending_path = path     # opened as soon as the hand model is loaded
            return True
        suffix = pathlib.Path(path).suffix.lower()
        if suffix in POSE_SUFFIXES:
            return self.open_pose(path)
        if suffix in IMAGE_SUFFIXES:
            return self.open_image(path)
        return self.show_error(f"{pathlib.Path(path).name}: unsupported file type "
                               "(open an image or a .npz / .json pose file)")

    def open_pose(self, path: str) -> bool:
        """Show a pose file and make it the DPoser source (a left hand is shown mirrored as a right hand)."""
        from core.cli import one_line
        from core.errors import InputError, PoseViewerError
        from core.hand.base import HandModelError
        from core.io.poses import load_pose_file
        from core.joints import mirror_x

        p = pathlib.Path(path)
        try:
            pf = load_pose_file(str(p))
            if pf.model != "anny":
                raise InputError("MANO pose files are shown with `pose-viewer mesh --mano-dir`; "
                                 "the viewer's DPoser works on the Anny pose layout")
            if pf.pose is not None:
                source = self.prior_engine.source_from_pose(p.name, pf.pose, pf.global_orient, pf.shape)
            else:
                joints = mirror_x(pf.joints) if pf.side == "left" else pf.joints
                source = PoseSource(p.name + (" (left, mirrored)" if pf.side == "left" else ""),
                                    (joints - joints[:1]).astype(np.float32))
        except (PoseViewerError, HandModelError, OSError, ValueError) as exc:
            return self.show_error(f"{p.name}: {one_line(exc)}")
        self.last_error = None
        if source.vertices is not None:
            self.hand.set(source.vertices, source.joints, p.name)
        if pf.mask is not None:
            self.mask.set(pf.mask)
        self.set_source(source)
        self._add_recent(path)
        self.statusBar().showMessage(f"Showing {p.name}")
        return True

    def open_sample(self) -> bool:
        from core.paths import SAMPLE_IMAGE

        return self.open_path(str(SAMPLE_IMAGE))

    def open_image(self, path: str) -> bool:
        """Start load → detect → estimate on a worker; the current result stays until it succeeds."""
        self.last_error = None
        settings = self.settings_panel.values()
        self._running_path = path
        self.statusBar().showMessage(f"Estimating {pathlib.Path(path).name}…")
        self._start_estimate((path, None, None, 0, settings))
        return True

    def choose_hand(self, index: int) -> None:
        """Estimate another detected hand of the current image."""
        st = self.image_state
        if st.image is None or not 0 <= index < len(st.detections):
            return
        settings = self.settings_panel.values()
        path, image, dets = st.path, st.image, st.detections
        self._running_path = path
        self._start_estimate((path, image, dets, index, settings))

    def _start_estimate(self, job: tuple) -> None:
        self._early_shown = False      # the run's result not on screen yet (see _on_early_estimate)
        self.runs.start(job)

    def rerun(self) -> None:
        """Run the current image again with the current settings."""
        self.choose_hand(self.image_state.chosen)

    def show_error(self, message: str) -> bool:
        """Report a problem in the window without losing the current state; returns False."""
        self.last_error = message
        log.info(message)
        self.statusBar().showMessage(f"⚠ {message}")
        return False

    # -- run callbacks ---------------------------------------------------------------------------------
    def _on_busy(self, _busy: bool = False) -> None:
        busy = self.runs.busy or self.prior_runs.busy
        if self._arriving and not self.runs.busy:
            self._refine_timer.start()
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _on_progress(self, done: int, total: int, label: str) -> None:
        import time

        now = time.perf_counter()
        if done < total and now - self._last_progress < 0.1:
            return   # at most 10 updates a second: each Qt call competes with the worker for the GIL
        self._last_progress = now
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{label} %v/%m")

    def _on_failed(self, message: str, tb: str) -> None:
        if tb:
            log.debug(tb)   # shown with --debug
        name = pathlib.Path(self._running_path).name if self._running_path else ""
        self.show_error(f"{name}: {message}" if name else message)

    def _on_cancelled(self) -> None:
        if self._early_shown:   # cancelled while the mesh trajectory was being decoded
            self._early_shown = False
            self.statusBar().showMessage("Cancelled: the result is shown without the mesh steps of its denoising "
                                         "trajectory (re-run to get them).")
        else:
            self.statusBar().showMessage("Cancelled; the previous result is kept.")

    def _on_early_estimate(self, est) -> None:
        """The run's result before its mesh trajectory is decoded: shown at once."""
        self._on_estimate(est)
        self._early_shown = True

    def _on_final_estimate(self, est) -> None:
        """The run's complete estimate: when its result is already shown, only the decoded mesh steps of the
        denoising trajectory are new (appended after the joint steps: the frame on screen stays)."""
        if not self._early_shown:
            self._on_estimate(est)
            return
        self._early_shown = False
        r = self.result_state.result
        r.mesh_trajectory_vertices = est.result.mesh_trajectory_vertices
        from core.hypotheses import trajectory_frames

        self._frames = trajectory_frames(r)
        self._extending = True
        try:
            self.trajectory.extend(len(self._frames))
        finally:
            self._extending = False
        if self.trajectory.step == self.trajectory.n_steps - 1:
            self.denoise_panel.set_label(self._frames[-1][0] + " (result)")

    def _on_estimate(self, est) -> None:
        self.view_mode = "image"
        self.scene.set_joint_markers(None)
        self._markers_key = None
        self.scene.set_see_through(False)
        self.image_state.set(est.path, est.image, est.detections, est.chosen)
        self.display.update(index=min(self.display.index, est.result.joint_hypotheses.shape[0] - 1))
        self.result_state.set(est.result, est.reprojection_px)
        self._add_recent(est.path)
        n = est.result.joint_hypotheses.shape[0]
        hands = len(est.detections)
        extra = f" ({hands} hands: click one in the image to switch)" if hands > 1 else ""
        self.statusBar().showMessage(f"{pathlib.Path(est.path).name}: {n} hypotheses, "
                                     f"{est.result.handedness} hand{extra}")
        self.engine_kind = est.engine_kind
        self.timing_label.setText(f"{est.seconds * 1000:.0f} ms · {est.engine_kind}")
        if est.engine_note:
            self.timing_label.setToolTip(est.engine_note)

    def _on_result(self, state: ResultState) -> None:
        from core.hypotheses import trajectory_frames

        self._frames = trajectory_frames(state.result) if state.result is not None else []
        self._coarse_cache.clear()
        self._arriving = state.result is not None
        self.display_panel.set_count(state.n)
        self.image_panel.set_image(self.image_state.image)
        self.trajectory.reset(len(self._frames))
        self._render()                                # requests one coalesced frame
        self.scene.view("front", render=False)        # so the camera move does not render another

    # -- rendering -------------------------------------------------------------------------------------
    def selected_index(self) -> int:
        return self.result_state.best if self.display.mode == "best" else self.display.index

    def _render(self) -> None:
        from core.geometry import project
        from core.hypotheses import per_point_spread

        r = self.result_state.result
        if r is None or self.view_mode != "image" or self.scene is None:
            return
        sel = self.selected_index()
        meshes = getattr(r, "vertex_hypotheses", None)
        agg_verts = getattr(r, "vertices", None)
        t = self.trajectory
        scene = self.scene
        scene.actor.SetVisibility(False)
        scene.set_fast(self._scrubbing or self._arriving)
        if self._frames and t.step < len(self._frames) - 1:
            label, kind, pts = self._frames[t.step]
            if kind == "mesh":
                scene.set_cloud(*self._coarse(pts))
            else:
                scene.set_cloud(pts, kind, points_only=self._scrubbing)
            scene.set_aggregate(None)
            scene.set_skeleton(None)
            self.denoise_panel.set_label(label)
        else:
            if self._frames:
                self.denoise_panel.set_label(self._frames[-1][0] + " (result)")
            mode = self.display.mode
            if mode == "all":
                if meshes is not None:
                    scene.set_cloud(*self._coarse(meshes))
                else:
                    scene.set_cloud(r.joint_hypotheses, "joints", points_only=self._scrubbing)
            else:
                scene.hide_cloud()
            if mode in ("all", "aggregate"):
                spread = per_point_spread(meshes) if (meshes is not None and self.display.color_by_spread) else None
                scene.set_aggregate(agg_verts, spread)
                scene.set_skeleton(getattr(r, "mesh_joints", r.joints) if mode == "aggregate" else r.joint_hypotheses[sel])
            else:
                scene.set_aggregate(meshes[sel] if meshes is not None else None)
                scene.set_skeleton(r.joint_hypotheses[sel])
        err = self.result_state.reprojection_px
        info = f"{self.result_state.n} hypotheses · best #{self.result_state.best}"
        if err is not None:
            info += f" ({err.min():.1f} px) · selected #{sel}: {err[sel]:.1f} px · median {np.median(err):.1f} px"
        self.display_panel.info.setText(info)
        dets = self.image_state.detections
        self.image_panel.set_overlay(
            boxes=[d.box for d in dets], chosen=self.image_state.chosen, keypoints=r.keypoints2d,
            reprojected=project(r.joints + r.cam_t, r.K),
            highlight=project(r.joint_hypotheses[sel] + r.cam_t, r.K) if self.display.mode != "aggregate" else None)
        self.request_render()

    # -- picking / hover --------------------------------------------------------------------------------
    def _on_mouse_move(self, obj, _event) -> None:
        import time

        now = time.perf_counter()
        if self.scene is None or self.view_mode != "image" or now - self._last_hover < 0.08:
            return   # picking is throttled so hovering never stalls the event loop
        self._last_hover = now
        x, y = self.plotter.iren.get_event_position()
        k = self.scene.pick_hypothesis(x, y)
        err = self.result_state.reprojection_px
        if k is not None and err is not None and k < len(err):
            text = f"hypothesis #{k}: reprojection error {err[k]:.1f} px"
            self.plotter.interactor.setToolTip(text)
            self.statusBar().showMessage(text, 2000)

    def _on_left_press(self, obj, _event) -> None:
        self._press_pos = self.plotter.iren.get_event_position()

    def _on_left_release(self, obj, _event) -> None:
        """A click (press and release without dragging) toggles a joint (pose mode) or picks a hypothesis."""
        x, y = self.plotter.iren.get_event_position()
        if self.scene is None or self._press_pos is None or abs(x - self._press_pos[0]) + abs(y - self._press_pos[1]) > 4:
            return
        self.click_at(x, y)

    def click_at(self, x: int, y: int) -> None:
        """Handle a click at VTK display pixel (x, y)."""
        if self.view_mode == "pose":
            j = self.scene.pick_joint(x, y)
            if j is not None:
                self.mask.toggle(j)
                from core.joints import JOINT_NAMES

                state = "hidden" if self.mask.hidden[j] else "visible"
                self.statusBar().showMessage(f"joint {j} ({JOINT_NAMES[j]}) {state}", 3000)
            return
        k = self.scene.pick_hypothesis(x, y)
        if k is not None:
            self.display.update(index=k)

    # -- DPoser completion ------------------------------------------------------------------------------
    def cancel_runs(self) -> None:
        self.runs.cancel()
        self.prior_runs.cancel()

    def set_source(self, source) -> None:
        """Make `source` (a PoseSource, or 'result' / 'random' / 'neutral') the pose to complete."""
        from core.hand.base import FACING_CAMERA_ORIENT

        if isinstance(source, str):
            if source == "result":
                r = self.result_state.result
                if r is None:
                    self.show_error("no image result yet: open a photo first")
                    return
                sel = self.selected_index() if self.display.mode in ("best", "single") else None
                joints = r.joint_hypotheses[sel] if sel is not None else getattr(r, "mesh_joints", r.joints)
                label = f"{pathlib.Path(self.image_state.path or '').name} " + (
                    f"hypothesis #{sel}" if sel is not None else "aggregate")
                source = PoseSource(label, np.asarray(joints, np.float32))
            elif source == "random":
                try:
                    source = self.prior_engine.random_source(int(np.random.default_rng().integers(1 << 30)))
                except Exception as exc:  # noqa: BLE001 - e.g. missing prior weights
                    from core.cli import one_line

                    self.show_error(one_line(exc))
                    return
            else:
                source = self.prior_engine.source_from_pose("neutral hand", np.zeros(45, np.float32),
                                                            np.asarray(FACING_CAMERA_ORIENT, np.float32))
        self.prior_runs.cancel()
        self.view_mode = "pose"
        self.completion.set_source(source)
        self.dposer_panel.source_label.setText(f"Source: {source.label}")
        self.scene.view("front", render=False)
        self.request_render()

    def complete(self) -> bool:
        """Run DPoser on the current source and mask (cancels a completion in flight)."""
        src = self.completion.source
        if src is None:
            return self.show_error("nothing to complete: open a pose or a photo first")
        if not self.mask.hidden.any():
            return self.show_error("no joint is hidden: click joints (or use a preset) to hide them first")
        if self.mask.hidden.all():
            return self.show_error("all joints are hidden: leave some visible")
        self.last_error = None
        hidden = self.mask.hidden.copy()
        settings = self.dposer_panel.settings()
        self._running_path = None
        self.view_mode = "pose"
        job_source = dataclasses.replace(src, vertices=None)   # the child needs no mesh
        self.prior_runs.start((job_source, hidden, settings))
        self.statusBar().showMessage(f"Completing {int(hidden.sum())} hidden joints with {settings['prior']}…")
        return True

    def _on_schedule_changed(self) -> None:
        self.dposer_panel.refresh_plot()
        if self.completion.result is not None or self.prior_runs.busy:
            self._rerun_timer.start()   # debounced: dragging a handle re-runs once it settles

    def _on_completion(self, payload) -> None:
        result, vertices = payload
        self.dposer_panel.hypothesis.setRange(0, len(result.pose) - 1)
        self.dposer_panel.iteration.setRange(0, len(result.t_schedule))
        self.completion.set_result(result, vertices)
        self.timing_label.setText(f"DPoser {result.seconds * 1000:.0f} ms")
        self.statusBar().showMessage(f"{len(result.pose)} completions ({self.dposer_panel.prior.currentText()}, "
                                     f"{self.dposer_panel.kind.currentText()} schedule)")

    def completion_display_joints(self) -> np.ndarray | None:
        """(S,21,3) joints shown now: live during a run, the scrubbed iteration, or the final result."""
        c = self.completion
        if c.live_joints is not None:
            return c.live_joints
        if c.result is None:
            return None
        if c.result.traj_joints is not None and c.iteration < len(c.result.t_schedule):
            return c.result.traj_joints[c.iteration]
        return c.result.joints

    def _render_pose(self) -> None:
        from core.hypotheses import per_point_spread
        from core.joints import JOINT_NAMES

        if self.view_mode != "pose" or self.scene is None:
            return
        c, scene, panel = self.completion, self.scene, self.dposer_panel
        scene.set_fast(False)          # pose mode has no scrub level of detail: always anti-aliased
        if c.source is None:
            return
        scene.set_see_through(True)
        key = (id(c.source), self.mask.hidden.tobytes())
        if key != self._markers_key:          # rebuilt only when the source or the mask changes
            scene.set_joint_markers(c.source.joints, self.mask.hidden)
            self._markers_key = key
        joints = self.completion_display_joints()
        sel = min(panel.hypothesis.value(), 0 if joints is None else len(joints) - 1)
        final = c.result is not None and c.live_joints is None and c.iteration >= len(c.result.t_schedule)
        if joints is None:
            scene.hide_cloud()
            scene.set_aggregate(None)
            scene.set_skeleton(None)
            if c.source.vertices is not None:
                scene.mesh.points = c.source.vertices
                scene.actor.SetVisibility(True)
            else:
                scene.actor.SetVisibility(False)
            panel.spread_label.setText("")
        else:
            scene.actor.SetVisibility(False)
            if final and c.vertices is not None:
                scene.set_cloud(*self._coarse(c.vertices))
                scene.set_aggregate(c.vertices[sel])
            else:
                scene.set_cloud(joints, "joints")
                scene.set_aggregate(None)
            scene.set_skeleton(joints[sel])
            spread = per_point_spread(joints) * 1000
            hidden = np.flatnonzero(self.mask.hidden)
            worst = hidden[np.argsort(-spread[hidden])][:3] if len(hidden) else []
            panel.spread_label.setText(
                "spread of hidden joints (mm): " + ", ".join(f"{JOINT_NAMES[j]} {spread[j]:.1f}" for j in worst)
                if len(worst) else "")
        if c.result is not None:
            n_it = len(c.result.t_schedule)
            panel.iteration.blockSignals(True)
            panel.iteration.setValue(c.iteration)
            panel.iteration.blockSignals(False)
            t = c.result.t_schedule[min(c.iteration, n_it - 1)]
            panel.iteration_label.setText(f"{c.iteration}/{n_it} (t = {t:.3f})")
        panel.plot.set_iteration(c.iteration)
        self.request_render()

    def _warm_up_scene(self, verts: np.ndarray, joints: np.ndarray) -> None:
        """Draw the result's actors once before any result (cloud, aggregate, skeleton, shrunk to a dot at
        the hand's centre), then hide them: the first frame of the first result otherwise builds their
        buffers and shaders on the GUI thread (~100 ms in llvmpipe, against ~50 ms for later results)."""
        centre = verts.mean(0)
        dot = centre + (verts - centre) * 1e-3
        n = self.settings_panel.n.value()
        self.scene.set_cloud(*self._coarse(np.repeat(dot[None], n, 0)))
        self.scene.set_aggregate(dot)
        self.scene.set_skeleton(centre + (joints - centre) * 1e-3)
        self.scene.show_hypotheses(True)
        for fast in (True, False):     # a result's first frame is drawn without FXAA, the refined one with it
            self.scene.set_fast(fast)
            self.plotter.render()
        self.scene.show_hypotheses(False)
        self.request_render()

    def _coarse(self, meshes: np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None, bool]:
        """Arguments of `scene.set_cloud` for a mesh cloud drawn at a coarser level (core): the
        cloud level for still frames; while the user scrubs the trajectory, a coarser level drawn as
        points."""
        from core.hypotheses import coarse_meshes

        level = SCRUB_LEVEL if self._scrubbing else CLOUD_LEVEL
        key = (id(meshes), level)           # the arrays are held by the result / frames while cached
        if key not in self._coarse_cache:   # each trajectory step once per level (~2 ms for 50 meshes)
            self._coarse_cache[key] = (meshes, *coarse_meshes(meshes, level))
        _, pts, faces = self._coarse_cache[key]
        return pts, "mesh", faces, self._scrubbing

    def _on_step(self, t) -> None:
        """A trajectory change: a step move within the same trajectory is drawn at the scrubbing level
        of detail (refined when it stops); a new trajectory (new result) at full detail; appended steps
        (`_on_final_estimate`) change nothing on screen."""
        if self._extending:             # the same trajectory, longer: later moves are scrubs
            self._steps_seen = t.n_steps
            return
        if t.n_steps == self._steps_seen and t.n_steps > 1:
            self._scrubbing = True
            self._refine_timer.start()
        self._steps_seen = t.n_steps
        self._render()

    def _refine(self) -> None:
        if self._scrubbing:
            self._scrubbing = self._arriving = False
            self._render()
        elif self._arriving:          # same data: only the anti-aliasing pass is added
            self._arriving = False
            if self.scene is not None:
                self.scene.set_fast(False)
            self.request_render()

    def request_render(self) -> None:
        """Render once the event loop is idle: many state changes in a row (live updates, a dragged
        slider) cost one frame, and queued engine updates never pile up renders."""
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _export_completion_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export completion", "completion.obj",
                                                        "Meshes (*.obj *.ply *.glb);;Pose (*.npz)")
        if path:
            self.export_completion(path)

    def export_completion(self, path: str) -> bool:
        """The highlighted completion: a mesh (.obj/.ply/.glb) or our pose .npz (pose + joints)."""
        from core.io.export import save_mesh
        from core.io.poses import save_pose_npz

        c = self.completion
        if c.result is None:
            return self.show_error("no completion to export yet: press Complete first")
        k = self.dposer_panel.hypothesis.value()
        try:
            if path.lower().endswith(".npz"):
                save_pose_npz(path, c.result.global_orient[k], c.result.pose[k],
                              c.result.shape[k] if c.result.shape.size else None, c.result.joints[k])
            else:
                save_mesh(path, c.vertices[k], self.hand_model.faces)
        except Exception as exc:  # noqa: BLE001
            return self.show_error(f"export failed: {exc}")
        self.statusBar().showMessage(f"Exported completion #{k} to {path}")
        return True

    # -- export ----------------------------------------------------------------------------------------
    def displayed_mesh(self) -> np.ndarray:
        """Vertices of what is shown: the selected / aggregate hypothesis mesh, else the single hand."""
        r = self.result_state.result
        if self.view_mode == "image" and r is not None and getattr(r, "vertex_hypotheses", None) is not None:
            if self.display.mode in ("all", "aggregate"):
                return r.vertices
            return r.vertex_hypotheses[self.selected_index()]
        return self.hand.vertices

    def displayed_faces(self) -> np.ndarray:
        """Faces of the displayed result (a left hand's winding is reversed), else the hand model's."""
        r = self.result_state.result
        faces = None if r is None or self.view_mode != "image" else getattr(r, "faces", None)
        return self.hand_model.faces if faces is None else faces

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export mesh", "hand.obj", "Meshes (*.obj *.ply *.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: str) -> bool:
        from core.io.export import save_mesh

        try:
            save_mesh(path, self.displayed_mesh(), self.displayed_faces())
        except Exception as exc:  # noqa: BLE001 - any write error is shown to the user
            return self.show_error(f"export failed: {exc}")
        self.statusBar().showMessage(f"Exported {path}")
        return True

    def _export_all_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export all hypotheses to folder")
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str, fmt: str = "obj") -> bool:
        from core.io.export import save_mesh

        r = self.result_state.result
        meshes = None if r is None else getattr(r, "vertex_hypotheses", None)
        if meshes is None:
            return self.show_error("no mesh hypotheses to export (run an image through the full cascade)")
        try:
            for k, v in enumerate(meshes):
                save_mesh(pathlib.Path(folder) / f"hypothesis_{k:03d}.{fmt}", v, self.displayed_faces())
        except Exception as exc:  # noqa: BLE001
            return self.show_error(f"export failed: {exc}")
        self.statusBar().showMessage(f"Exported {len(meshes)} meshes to {folder}")
        return True

    def _export_npz_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save result", "result.npz", "NumPy archive (*.npz)")
        if path:
            self.export_npz(path)

    def export_npz(self, path: str) -> bool:
        from core.io.export import save_npz

        r = self.result_state.result
        if r is None:
            return self.show_error("nothing to save yet: open a photo first")
        try:
            save_npz(path, **r.to_npz_dict())
        except Exception as exc:  # noqa: BLE001
            return self.show_error(f"save failed: {exc}")
        self.statusBar().showMessage(f"Saved {path}")
        return True

    def _screenshot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "pose-viewer.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str, whole_window: bool = False) -> None:
        """The 3D view (Shift+S), or the whole window with the 3D view painted in (scripted figures)."""
        self._refine_timer.stop()
        self._refine()               # a pending level-of-detail refinement first: screenshots at full detail
        self.plotter.render()
        if not whole_window:
            self.plotter.screenshot(path)
            return
        view = np.ascontiguousarray(self.plotter.screenshot(return_img=True)[..., :3])
        h, w = view.shape[:2]
        image = QtGui.QImage(view.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        shot = self.grab()
        painter = QtGui.QPainter(shot)
        widget = self.plotter.interactor
        painter.drawImage(QtCore.QRect(widget.mapTo(self, QtCore.QPoint(0, 0)), widget.size()), image)
        painter.end()
        shot.save(path)

    # -- drag & drop / close ---------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        urls = event.mimeData().urls()
        if urls:
            self.open_path(urls[0].toLocalFile())
            event.acceptProposedAction()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        QtWidgets.QApplication.instance().removeEventFilter(self)
        self._rerun_timer.stop()
        self.cancel_runs()
        self.model_loader.wait(30000)
        self.runs.shutdown()         # ends the image process
        self.prior_runs.shutdown()   # ends the DPoser process
        self.denoise_panel.set_playing(False)
        self._save_settings()
        self.plotter.close()
        super().closeEvent(event)
