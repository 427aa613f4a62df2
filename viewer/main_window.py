"""The main window: one 3D view of the hand, File ▸ Open / drag & drop of pose files, device in the status bar."""
from __future__ import annotations

import pathlib

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.device import describe_device, pick_device
from viewer.state import HandState

POSE_SUFFIXES = (".npz", ".json")


class MainWindow(QtWidgets.QMainWindow):
    """pose-viewer's window. Engine calls go through `core`; this class only displays."""

    def __init__(self, mano_dir: str | None = None) -> None:
        super().__init__()
        from pyvistaqt import QtInteractor

        from core.hand.anny_hand import AnnyHand
        from viewer.scene import HandScene

        self.setWindowTitle("pose-viewer")
        self.resize(1100, 800)
        self.setAcceptDrops(True)
        self.mano_dir = mano_dir
        self.hand_model = AnnyHand()
        self.hand = HandState()
        self.last_error: str | None = None

        self.plotter = QtInteractor(self)
        self.setCentralWidget(self.plotter.interactor)
        neutral = self.hand_model.forward()
        verts, joints = neutral.vertices[0].detach().numpy(), neutral.joints[0].detach().numpy()
        self.scene = HandScene(self.plotter, self.hand_model.faces, verts)
        self.hand.changed.connect(self._on_hand_changed)
        self.hand.set(verts, joints, "neutral hand")

        self._build_menus()
        self.device_label = QtWidgets.QLabel(describe_device(pick_device("auto")))
        self.device_label.setToolTip("Device the engine runs on")
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().showMessage("Neutral hand. Open a pose file (Ctrl+O) or drop one here.")

    # -- menus --------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        import qtawesome as qta

        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QtGui.QAction(qta.icon("fa5s.folder-open"), "&Open…", self)
        self.open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Open a pose file (.npz, .json)")
        self.open_action.triggered.connect(self._open_dialog)
        file_menu.addAction(self.open_action)
        export = QtGui.QAction(qta.icon("fa5s.file-export"), "&Export mesh…", self)
        export.setShortcut("Ctrl+E")
        export.triggered.connect(self._export_dialog)
        file_menu.addAction(export)
        shot = QtGui.QAction(qta.icon("fa5s.camera"), "Save &screenshot…", self)
        shot.setShortcut("Shift+S")
        shot.triggered.connect(self._screenshot_dialog)
        file_menu.addAction(shot)
        file_menu.addSeparator()
        quit_action = QtGui.QAction("&Quit", self)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        front = QtGui.QAction("&Front view / reset camera", self)
        front.setShortcut("R")
        front.triggered.connect(self.scene.view_front)
        view_menu.addAction(front)

        help_menu = self.menuBar().addMenu("&Help")
        keys = QtGui.QAction("&Keyboard shortcuts", self)
        keys.triggered.connect(self._show_shortcuts)
        help_menu.addAction(keys)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.addAction(self.open_action)
        toolbar.addAction(export)
        toolbar.addAction(shot)

    def _show_shortcuts(self) -> None:
        text = ("Ctrl+O  open a pose file\nCtrl+E  export the mesh\nShift+S  save a screenshot\n"
                "R  front view / reset camera\nCtrl+Q  quit\nMouse: left-drag rotate, right-drag zoom, "
                "middle-drag pan")
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", text)

    # -- loading --------------------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open pose file", "", "Pose files (*.npz *.json)")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Open a pose file; on failure show the reason and keep what is displayed."""
        from core.cli import one_line
        from core.commands.mesh import mesh_from_pose_file
        from core.errors import PoseViewerError
        from core.hand.base import HandModelError

        p = pathlib.Path(path)
        if p.suffix.lower() not in POSE_SUFFIXES:
            return self.show_error(f"{p.name}: unsupported file type (open a .npz or .json pose file)")
        try:
            verts, _ = mesh_from_pose_file(str(p), self.mano_dir)
            joints = self._joints_of(str(p))
        except (PoseViewerError, HandModelError, OSError, ValueError) as exc:
            return self.show_error(f"{p.name}: {one_line(exc)}")
        self.last_error = None
        self.hand.set(verts, joints, p.name)
        self.statusBar().showMessage(f"Showing {p.name}")
        return True

    def _joints_of(self, path: str) -> np.ndarray:
        import torch

        from core.io.poses import load_pose_file

        pf = load_pose_file(path)
        with torch.inference_mode():
            j = self.hand_model.joints(torch.from_numpy(pf.global_orient)[None], torch.from_numpy(pf.pose)[None])
        return j[0].numpy()

    def show_error(self, message: str) -> bool:
        """Report a problem in the window without losing the current state; returns False."""
        self.last_error = message
        self.statusBar().showMessage(f"⚠ {message}")
        return False

    def _on_hand_changed(self, state: HandState) -> None:
        self.scene.set_vertices(state.vertices)

    # -- export -------------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export mesh", "hand.obj",
                                                        "Meshes (*.obj *.ply *.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: str) -> bool:
        from core.io.export import save_mesh

        try:
            save_mesh(path, self.hand.vertices, self.hand_model.faces)
        except Exception as exc:  # noqa: BLE001 - any write error is shown to the user
            return self.show_error(f"export failed: {exc}")
        self.statusBar().showMessage(f"Exported {path}")
        return True

    def _screenshot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "pose-viewer.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str) -> None:
        self.plotter.render()
        self.plotter.screenshot(path)

    # -- drag & drop --------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        urls = event.mimeData().urls()
        if urls:
            self.open_path(urls[0].toLocalFile())
            event.acceptProposedAction()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.plotter.close()
        super().closeEvent(event)
