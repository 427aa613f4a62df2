"""The main window: 3D view, image panel, settings / display / denoising docks, status bar with progress.

State lives in plain evented models (`viewer.state`); engine runs go through `viewer.engine` on worker
threads (`viewer.workers`); this class wires them to widgets and renders.
"""
from __future__ import annotations

import logging
import pathlib

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.device import describe_device, pick_device
from viewer.state import DisplayState, HandState, ImageState, ResultState, TrajectoryState

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
    ("Esc", "cancel the running estimate"), ("Ctrl+Q", "quit"),
    ("Mouse", "left-drag rotate, right-drag / wheel zoom, middle-drag pan; hover a hypothesis for its error"),
)


class MainWindow(QtWidgets.QMainWindow):
    """pose-viewer's window. Engine calls go through `core`; this class only displays."""

    def __init__(self, mano_dir: str | None = None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        from pyvistaqt import QtInteractor

        from core.hand.anny_hand import AnnyHand
        from core.hand.base import FACING_CAMERA_ORIENT
        from viewer.engine import Engine
        from viewer.image_panel import ImagePanel
        from viewer.panels import DenoisePanel, DisplayPanel, SettingsPanel
        from viewer.scene import HandScene
        from viewer.workers import RunManager

        self.setWindowTitle("pose-viewer")
        self.resize(1280, 820)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.mano_dir = mano_dir
        self.qsettings = settings or QtCore.QSettings("pose-viewer", "pose-viewer")
        self.last_error: str | None = None
        self.engine = Engine()
        self.runs = RunManager(self)

        # State.
        self.hand = HandState()
        self.image_state = ImageState()
        self.result_state = ResultState()
        self.display = DisplayState()
        self.trajectory = TrajectoryState()
        self._frames: list = []
        self._running_path: str | None = None

        # 3D view with the neutral hand, palm to the camera.
        self.hand_model = AnnyHand()
        self.plotter = QtInteractor(self)
        self.setCentralWidget(self.plotter.interactor)
        import torch

        with torch.inference_mode():
            neutral = self.hand_model.forward(torch.tensor([FACING_CAMERA_ORIENT]))
        verts, joints = neutral.vertices[0].numpy(), neutral.joints[0].numpy()
        self.scene = HandScene(self.plotter, self.hand_model.faces, verts)

        # Docks.
        self.image_panel = ImagePanel()
        self.settings_panel = SettingsPanel()
        self.display_panel = DisplayPanel(self.display)
        self.denoise_panel = DenoisePanel(self.trajectory)
        self._dock("Image", self.image_panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Settings", self.settings_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Hypotheses", self.display_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
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
        self.cancel_button.clicked.connect(self.runs.cancel)
        self.device_label = QtWidgets.QLabel(describe_device(pick_device("auto")))
        self.device_label.setToolTip("Device the engine runs on")
        for w in (self.timing_label, self.progress, self.cancel_button, self.device_label):
            self.statusBar().addPermanentWidget(w)

        # Wiring.
        self.hand.changed.connect(lambda s: self.scene.set_vertices(s.vertices))
        self.result_state.changed.connect(self._on_result)
        self.display.changed.connect(lambda _: self._render())
        self.trajectory.changed.connect(lambda _: self._render())
        self.image_panel.hand_clicked.connect(self.choose_hand)
        self.settings_panel.rerun.clicked.connect(self.rerun)
        self.runs.progress.connect(self._on_progress)
        self.runs.finished.connect(self._on_estimate)
        self.runs.failed.connect(self._on_failed)
        self.runs.cancelled.connect(lambda: self.statusBar().showMessage("Cancelled; the previous result is kept."))
        self.runs.busy_changed.connect(self._on_busy)
        self.plotter.iren.add_observer("MouseMoveEvent", self._on_mouse_move)
        self.plotter.iren.add_observer("LeftButtonPressEvent", self._on_left_click)

        self._build_menus()
        self._restore_settings()
        self.hand.set(verts, joints, "neutral hand")
        self.statusBar().showMessage("Neutral hand. Drop a photo of a hand or a pose file (or Ctrl+O).")

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
        file_menu.addSeparator()
        export = self._action(file_menu, "fa5s.file-export", "&Export displayed mesh…", self._export_dialog, "Ctrl+E")
        self._action(file_menu, None, "Export &all hypotheses…", self._export_all_dialog, "Ctrl+Shift+E")
        self._action(file_menu, None, "Save result .npz…", self._export_npz_dialog, "Ctrl+S")
        shot = self._action(file_menu, "fa5s.camera", "Save &screenshot…", self._screenshot_dialog, "Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, None, "&Quit", self.close, K.StandardKey.Quit)

        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "fa5s.crosshairs", "&Front (camera) view", lambda: self.scene.view("front"), "R")
        self._action(view_menu, None, "&Side view", lambda: self.scene.view("side"), "Ctrl+2")
        self._action(view_menu, None, "&Top view", lambda: self.scene.view("top"), "Ctrl+3")
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
        toolbar.addAction(self._action(None, "fa5s.times-circle", "Cancel", self.runs.cancel, "Esc",
                                       "Cancel the running estimate"))

        # Playback keys (work whatever widget has focus, as in aitviewer).
        for key, slot in ((" ", self.denoise_panel.toggle), (",", lambda: self.trajectory.advance(-1)),
                          (".", lambda: self.trajectory.advance(1)), ("Left", lambda: self.trajectory.advance(-1)),
                          ("Right", lambda: self.trajectory.advance(1)), ("Home", lambda: self.trajectory.set_step(0)),
                          ("End", lambda: self.trajectory.set_step(self.trajectory.n_steps - 1))):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
            sc.activated.connect(slot)
        self._refresh_recent()

    def _show_shortcuts(self) -> None:
        text = "\n".join(f"{k:<14} {v}" for k, v in SHORTCUTS)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, "Keyboard shortcuts", text,
                                    parent=self)
        box.setStyleSheet("QLabel { font-family: monospace; }")
        box.open()

    def _show_about(self) -> None:
        from core import __version__

        QtWidgets.QMessageBox.about(self, "About pose-viewer",
                                    f"pose-viewer {__version__}\nEngine: {self.engine.kind}\n"
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
        suffix = pathlib.Path(path).suffix.lower()
        if suffix in POSE_SUFFIXES:
            return self.open_pose(path)
        if suffix in IMAGE_SUFFIXES:
            return self.open_image(path)
        return self.show_error(f"{pathlib.Path(path).name}: unsupported file type "
                               "(open an image or a .npz / .json pose file)")

    def open_pose(self, path: str) -> bool:
        from core.cli import one_line
        from core.commands.mesh import mesh_from_pose_file
        from core.errors import PoseViewerError
        from core.hand.base import HandModelError

        p = pathlib.Path(path)
        try:
            verts, _ = mesh_from_pose_file(str(p), self.mano_dir)
            joints = self._joints_of(str(p))
        except (PoseViewerError, HandModelError, OSError, ValueError) as exc:
            return self.show_error(f"{p.name}: {one_line(exc)}")
        self.last_error = None
        self.hand.set(verts, joints, p.name)
        self._add_recent(path)
        self.statusBar().showMessage(f"Showing {p.name}")
        return True

    def _joints_of(self, path: str) -> np.ndarray:
        import torch

        from core.io.poses import load_pose_file

        pf = load_pose_file(path)
        with torch.inference_mode():
            j = self.hand_model.joints(torch.from_numpy(pf.global_orient)[None], torch.from_numpy(pf.pose)[None])
        return j[0].numpy() * (np.array([-1, 1, 1], np.float32) if pf.side == "left" else 1)

    def open_image(self, path: str) -> bool:
        """Start load → detect → estimate on a worker; the current result stays until it succeeds."""
        self.last_error = None
        settings = self.settings_panel.values()
        self._running_path = path
        self.statusBar().showMessage(f"Estimating {pathlib.Path(path).name}…")
        self.runs.start(lambda progress, cancel: self.engine.run(path, None, None, 0, settings, progress, cancel))
        return True

    def choose_hand(self, index: int) -> None:
        """Estimate another detected hand of the current image."""
        st = self.image_state
        if st.image is None or not 0 <= index < len(st.detections):
            return
        settings = self.settings_panel.values()
        path, image, dets = st.path, st.image, st.detections
        self._running_path = path
        self.runs.start(lambda progress, cancel: self.engine.run(path, image, dets, index, settings, progress, cancel))

    def rerun(self) -> None:
        """Run the current image again with the current settings."""
        self.choose_hand(self.image_state.chosen)

    def show_error(self, message: str) -> bool:
        """Report a problem in the window without losing the current state; returns False."""
        self.last_error = message
        log.warning(message)
        self.statusBar().showMessage(f"⚠ {message}")
        return False

    # -- run callbacks ---------------------------------------------------------------------------------
    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _on_progress(self, done: int, total: int, label: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{label} %v/%m")

    def _on_failed(self, message: str, tb: str) -> None:
        if tb:
            log.error(tb)
        name = pathlib.Path(self._running_path).name if self._running_path else ""
        self.show_error(f"{name}: {message}" if name else message)

    def _on_estimate(self, est) -> None:
        self.image_state.set(est.path, est.image, est.detections, est.chosen)
        self.display.update(index=min(self.display.index, est.result.joint_hypotheses.shape[0] - 1))
        self.result_state.set(est.result, est.reprojection_px)
        self._add_recent(est.path)
        n = est.result.joint_hypotheses.shape[0]
        hands = len(est.detections)
        extra = f" ({hands} hands: click one in the image to switch)" if hands > 1 else ""
        self.statusBar().showMessage(f"{pathlib.Path(est.path).name}: {n} hypotheses, "
                                     f"{est.result.handedness} hand{extra}")
        self.timing_label.setText(f"{est.seconds * 1000:.0f} ms · {self.engine.kind}")

    def _on_result(self, state: ResultState) -> None:
        from core.hypotheses import trajectory_frames

        self._frames = trajectory_frames(state.result) if state.result is not None else []
        self.display_panel.set_count(state.n)
        self.image_panel.set_image(self.image_state.image)
        self.trajectory.reset(len(self._frames))
        self._render()
        self.scene.view("front")

    # -- rendering -------------------------------------------------------------------------------------
    def selected_index(self) -> int:
        return self.result_state.best if self.display.mode == "best" else self.display.index

    def _render(self) -> None:
        from core.geometry import project
        from core.hypotheses import per_point_spread

        r = self.result_state.result
        if r is None:
            return
        sel = self.selected_index()
        meshes = getattr(r, "vertex_hypotheses", None)
        agg_verts = getattr(r, "vertices", None)
        t = self.trajectory
        scene = self.scene
        scene.actor.SetVisibility(False)
        if self._frames and t.step < len(self._frames) - 1:
            label, kind, pts = self._frames[t.step]
            scene.set_cloud(pts, kind)
            scene.set_aggregate(None)
            scene.set_skeleton(None)
            self.denoise_panel.set_label(label)
        else:
            if self._frames:
                self.denoise_panel.set_label(self._frames[-1][0] + " (result)")
            mode = self.display.mode
            hyps = meshes if meshes is not None else r.joint_hypotheses
            kind = "mesh" if meshes is not None else "joints"
            if mode == "all":
                scene.set_cloud(hyps, kind)
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
        self.plotter.render()

    # -- picking / hover --------------------------------------------------------------------------------
    def _on_mouse_move(self, obj, _event) -> None:
        x, y = obj.GetEventPosition()
        k = self.scene.pick_hypothesis(x, y)
        err = self.result_state.reprojection_px
        if k is not None and err is not None and k < len(err):
            text = f"hypothesis #{k}: reprojection error {err[k]:.1f} px"
            self.plotter.interactor.setToolTip(text)
            self.statusBar().showMessage(text, 2000)

    def _on_left_click(self, obj, _event) -> None:
        x, y = obj.GetEventPosition()
        k = self.scene.pick_hypothesis(x, y)
        if k is not None:
            self.display.update(index=k)

    # -- export ----------------------------------------------------------------------------------------
    def displayed_mesh(self) -> np.ndarray:
        """Vertices of what is shown: the selected / aggregate hypothesis mesh, else the single hand."""
        r = self.result_state.result
        if r is not None and getattr(r, "vertex_hypotheses", None) is not None:
            if self.display.mode in ("all", "aggregate"):
                return r.vertices
            return r.vertex_hypotheses[self.selected_index()]
        return self.hand.vertices

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export mesh", "hand.obj", "Meshes (*.obj *.ply *.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: str) -> bool:
        from core.io.export import save_mesh

        try:
            save_mesh(path, self.displayed_mesh(), self.hand_model.faces)
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
                save_mesh(pathlib.Path(folder) / f"hypothesis_{k:03d}.{fmt}", v, self.hand_model.faces)
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

    def save_screenshot(self, path: str) -> None:
        self.plotter.render()
        self.plotter.screenshot(path)

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
        self.runs.cancel()
        self.runs.wait(3000)
        self.denoise_panel.set_playing(False)
        self._save_settings()
        self.plotter.close()
        super().closeEvent(event)
