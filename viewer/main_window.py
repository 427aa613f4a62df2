"""The main window: window chrome only — docks, status bar, drag & drop, close and QSettings.

The state lives in Qt-free evented models (`viewer.state.ViewerModel`); the 3D view is drawn by the scene
controller (`viewer.scene_controller`), engine runs go through the run controllers (`viewer.runs`),
menus and shortcuts come from one table (`viewer.actions`), files are written by `viewer.export`.
"""
from __future__ import annotations

import logging
import pathlib
import threading

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.settings_schema import MAX_RECENT, SCHEMA, read_settings
from viewer.state import ViewerModel

log = logging.getLogger("pose-viewer")
POSE_SUFFIXES = (".npz", ".json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
HAND_SPEC = {"kind": "anny"}   # the window's hand model, as the DPoser lane rebuilds it (engine.build_hand)
#: Version of the saved dock layout: a layout saved by another version (the first one saved version 0,
#: with the image panel at its 240 px minimum) is ignored and the window opens with its default layout.
LAYOUT_VERSION = 2
IMAGE_SHARE = 0.3              # the image panel's share of the window width in the default layout
RIGHT_DOCK_WIDTH = 340         # the settings / hypotheses / DPoser column


class MainWindow(QtWidgets.QMainWindow):
    """pose-viewer's window."""

    model_ready = QtCore.Signal()

    def __init__(self, mano_dir: str | None = None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        from viewer import actions
        from viewer.dposer_panel import DPoserPanel
        from viewer.export import Exporter
        from viewer.image_panel import ImagePanel
        from viewer.interactor import FrameInteractor
        from viewer.panels import DenoisePanel, DisplayPanel, SettingsPanel
        from viewer.process_worker import ProcessRunner
        from viewer.refine_runs import RefineRuns
        from viewer.runs import CompletionRuns, ImageRuns
        from viewer.scene_controller import SceneController

        self.setWindowTitle("pose-viewer")
        self.resize(1280, 820)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.mano_dir = mano_dir
        self.qsettings = settings or QtCore.QSettings("pose-viewer", "pose-viewer")
        self.model = m = ViewerModel()
        # `model_ready` fires once the neutral hand is on screen (at once: a shipped mesh, no hand model in
        # this process); `ready` turns True when the DPoser lane can also answer (a pose file's mesh
        # comes from it), and files opened before that are opened then.
        self.ready = False
        self.neutral = None         # core.neutral_hand.NeutralHand
        self._pending_path: str | None = None
        self._last_progress = 0.0
        self._closed = False

        # The engine runs in a child process: its Python would hold this process's GIL and, on a short CPU,
        # its threads would take the window's time (the child runs at a lower priority). DPoser is a second
        # lane of the same process (its own thread there): one torch runtime, not two (issue 27).
        self.runs = ProcessRunner(self, serve="serve_cascade", label="engine")
        self.prior_runs = ProcessRunner(self, hand_spec=HAND_SPEC, host=self.runs)
        self.image_runs = ImageRuns(m, self.runs, self)
        self.completion_runs = CompletionRuns(m, self.prior_runs, self)
        self.refine_runs = RefineRuns(m, self.prior_runs, self)     # the DPoser lane refines too

        # 3D view. We render on change, not on a timer. No multisampling: in software OpenGL (llvmpipe) 8x
        # MSAA (pyvista's default then) multiplies the fill cost of every frame — the empty 3D view rendered
        # in 45 ms with it, 5 ms without; still frames are smoothed by FXAA instead (scene.set_fast).
        self.plotter = FrameInteractor(self, background="#1e2126")
        self.setCentralWidget(self.plotter)
        self.view3d = SceneController(self.plotter, m, self)
        self.exporter = Exporter(m, self, self.view3d)

        # Docks (object names are those of the first version: saved layouts keep matching them).
        self.image_panel = ImagePanel()
        self.image_panel.bind(m)
        self.settings_panel = SettingsPanel(m.run_settings)
        self.display_panel = DisplayPanel(m.display, m.result_state, m.refine)
        self.denoise_panel = DenoisePanel(m.trajectory)
        self.dposer_panel = DPoserPanel(m.mask, m.completion, m.completion_settings)
        Area = QtCore.Qt.DockWidgetArea
        self.docks = {"image": self._dock("Image", self.image_panel, Area.LeftDockWidgetArea),
                      "settings": self._dock("Settings", self.settings_panel, Area.RightDockWidgetArea),
                      "hypotheses": self._dock("Hypotheses", self.display_panel, Area.RightDockWidgetArea),
                      "dposer": self._dock("DPoser", self.dposer_panel, Area.RightDockWidgetArea),
                      "denoising": self._dock("Denoising", self.denoise_panel, Area.BottomDockWidgetArea)}
        self.tabifyDockWidget(self.docks["settings"], self.docks["dposer"])
        self.docks["settings"].raise_()
        self._build_status_bar()

        # Wiring: panels → run controllers; models → status bar.
        self.image_panel.hand_clicked.connect(self.image_runs.choose_hand)
        self.image_panel.box_drawn.connect(self.image_runs.add_box)        # a hand the detectors missed
        self.view3d.hand_picked.connect(self.image_runs.choose_hand)       # a click on another hand's mesh
        self.image_panel.sample_requested.connect(self.open_sample)
        self.settings_panel.rerun.clicked.connect(self.image_runs.rerun)
        self.display_panel.refine_requested.connect(self.refine_runs.toggle)
        m.run_settings.events.mode.connect(lambda mode: m.display.update(mode="aggregate" if mode == "paper" else "all"))
        m.run_settings.events.all_hands.connect(lambda _on: self.image_runs.redetect())   # look for the hands again
        self.dposer_panel.complete_requested.connect(self.complete)
        self.dposer_panel.source_requested.connect(self.completion_runs.use)
        self.dposer_panel.schedule_changed.connect(self.completion_runs.schedule_changed)
        self.dposer_panel.export_requested.connect(self.exporter.export_completion_dialog)
        self.completion_runs.started.connect(self.docks["dposer"].raise_)
        self.image_runs.opened.connect(self._add_recent)
        self.completion_runs.opened.connect(self._add_recent)
        self.view3d.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        m.status.events.message.connect(lambda text: self.statusBar().showMessage(text))
        m.status.events.error.connect(self._show_error)
        m.status.events.timing.connect(self._show_timing)
        for runner in (self.runs, self.prior_runs):
            runner.progress.connect(self._on_progress)
            runner.busy_changed.connect(self._on_busy)
            runner.crashed.connect(self._on_engine_crashed)   # an idle engine process died (it is replaced)

        self.qactions = actions.build(self)   # QActions by table id
        for dock in self.docks.values():
            self.view_menu.addAction(dock.toggleViewAction())
        self._refresh_recent()
        self._default_layout()
        self._restore_settings()
        # No torch and no hand model in this process (issue 27): the neutral hand is a shipped mesh, and what
        # needs the hand model (a pose's mesh, a random pose) is asked of the DPoser lane.
        self.runs.ready.connect(lambda: self.device_label.setText(self.runs.info.get("device", "engine ready")))
        self.prior_runs.ready.connect(self._mark_ready)
        self.statusBar().showMessage("Starting…")
        QtCore.QTimer.singleShot(0, self._show_neutral_hand)

    def _show_neutral_hand(self) -> None:
        """Show the neutral hand (palm to the camera, a shipped mesh) and start the engine processes."""
        from core.errors import PoseViewerError, one_line
        from core.neutral_hand import load_neutral_hand
        from viewer.scene_controller import prepare_levels_of_detail

        if self._closed:
            return     # closed before the first event-loop turn: start no engine process
        self.prior_runs.prewarm(HAND_SPEC)   # the DPoser lane builds the hand model and loads the prior
        self.runs.prewarm()                  # the image process loads the detector and the cascade
        try:
            hand = load_neutral_hand()
        except PoseViewerError as exc:
            self.model.status.fail(one_line(exc))
            return
        self.neutral = self.completion_runs.neutral = hand
        self.exporter.faces = hand.faces
        # The cloud's level-of-detail gathers (~30 ms here) on a thread: not before the first frame.
        threading.Thread(target=prepare_levels_of_detail, args=(hand.vertices,), name="lod", daemon=True).start()
        self.view3d.start(hand.faces, hand.vertices, hand.joints)
        self.model.hand.set(hand.vertices, hand.joints, "neutral hand")
        self.dposer_panel.refresh_plot()
        self.model.completion.set_source(self.completion_runs.neutral_source())
        hint = "" if self.recent_files() else " First time? Try File ▸ Open sample image."
        self.statusBar().showMessage("Neutral hand. Drop a photo of a hand or a pose file (or Ctrl+O)." + hint)
        self.model_ready.emit()
        if self.prior_runs.child_ready or self.prior_runs.pid is None:   # ready, or could not start at all
            self._mark_ready()

    def _mark_ready(self) -> None:
        """The neutral hand is shown and the DPoser process answers: open what was asked for meanwhile."""
        if self.ready or self.neutral is None:
            return
        self.ready = True
        if self._pending_path:
            path, self._pending_path = self._pending_path, None
            self.open_path(path)

    def _on_engine_crashed(self, message: str) -> None:
        """An engine process died while idle (it is being replaced): say so once; opens waiting for a
        DPoser lane whose process died while starting go on (and report why they fail)."""
        self.model.status.fail(message)
        if not self.ready:
            self._mark_ready()

    # -- docks and status bar -------------------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _default_layout(self) -> None:
        """The first-run layout: the image panel gets a fair share of the width (its hint fits), the right
        column what its forms need, the 3D view the rest."""
        Horizontal = QtCore.Qt.Orientation.Horizontal
        self.resizeDocks([self.docks["image"], self.docks["settings"]],
                         [int(self.width() * IMAGE_SHARE), RIGHT_DOCK_WIDTH], Horizontal)

    def _build_status_bar(self) -> None:
        """Message, timings, progress + cancel, device."""
        from viewer.icons import icon

        self.timing_label = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setIcon(icon("fa5s.times-circle"))
        self.cancel_button.setToolTip("Cancel the running estimate (Esc)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_runs)
        self.device_label = QtWidgets.QLabel("loading engine…")
        self.device_label.setToolTip("Device the engine runs on")
        for w in (self.timing_label, self.progress, self.cancel_button, self.device_label):
            self.statusBar().addPermanentWidget(w)

    @property
    def last_error(self) -> str | None:
        """The last problem reported (None once an action started well); scripted use checks it."""
        return self.model.status.error

    def show_error(self, message: str) -> bool:
        """Report a problem in the window without losing the current state; returns False."""
        return self.model.status.fail(message)

    def _show_error(self, message: str | None) -> None:
        if message:
            log.info(message)
            self.statusBar().showMessage(f"⚠ {message}")

    def _show_timing(self, text: str) -> None:
        self.timing_label.setText(text)
        self.timing_label.setToolTip(self.model.status.timing_tip)

    def _on_busy(self, _busy: bool = False) -> None:
        busy = self.runs.busy or self.prior_runs.busy
        if not self.runs.busy:
            self.view3d.engine_idle()
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

    def show_about(self) -> None:
        from core import __version__

        QtWidgets.QMessageBox.about(self, "About pose-viewer",
                                    f"pose-viewer {__version__}\nEngine: {self.image_runs.engine_kind}\n"
                                    "Camera intrinsics are guessed from the image size when unknown "
                                    "(focal = max(w, h), principal point at the centre).")

    # -- commands the table and the panels share -------------------------------------------------------
    def cancel_runs(self) -> None:
        self.runs.cancel()
        self.prior_runs.cancel()

    def complete(self) -> bool:
        """Run DPoser on the current source and mask (cancels a completion in flight)."""
        return self.completion_runs.complete()

    def open_dialog(self) -> None:
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
            return self.completion_runs.open_pose(path)
        if suffix in IMAGE_SUFFIXES:
            return self.image_runs.open_image(path)
        return self.show_error(f"{pathlib.Path(path).name}: unsupported file type "
                               "(open an image or a .npz / .json pose file)")

    def open_sample(self) -> bool:
        from core.paths import SAMPLE_IMAGE

        return self.open_path(str(SAMPLE_IMAGE))

    # -- settings (QSettings) --------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = read_settings(self.qsettings.value)
        if s["geometry"]:
            self.restoreGeometry(QtCore.QByteArray(s["geometry"]))
        if s["state"] and not self.restoreState(QtCore.QByteArray(s["state"]), LAYOUT_VERSION):
            log.info("settings: the saved dock layout is from another version; using the default layout")
        run = self.model.run_settings
        run.n, run.steps, run.seed = s["engine/n"], s["engine/steps"], s["engine/seed"]
        run.mode, run.device, run.all_hands = s["engine/mode"], s["engine/device"], s["engine/all_hands"]

    def _save_settings(self) -> None:
        s = self.qsettings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("state", self.saveState(LAYOUT_VERSION))
        for k, v in self.model.run_settings.values().items():
            s.setValue(f"engine/{k}", v)
        s.sync()

    def recent_files(self) -> list[str]:
        return read_settings(self.qsettings.value, {"recent": SCHEMA["recent"]})["recent"]

    def _add_recent(self, path: str) -> None:
        resolved = str(pathlib.Path(path).resolve())
        recent = self.recent_files()
        if recent[:1] == [resolved]:
            return          # already the most recent (a re-run, another hand of the same photo)
        items = [resolved] + [p for p in recent if p != resolved]
        self.qsettings.setValue("recent", items[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            act = self.recent_menu.addAction(pathlib.Path(path).name)
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

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
        self._closed = True
        self.playback_keys.remove()
        self.completion_runs.cancel_scheduled_rerun()
        self.cancel_runs()
        from viewer.process_worker import shutdown_all

        shutdown_all([self.runs, self.prior_runs])   # the engine process (both lanes) ends, in ~2 s at most
        self.denoise_panel.set_playing(False)
        self._save_settings()
        self.plotter.close()
        super().closeEvent(event)
