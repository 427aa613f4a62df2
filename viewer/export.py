"""Saving what the window shows: the displayed mesh, all hypotheses, the result .npz, a DPoser completion,
screenshots — with their file dialogs.

Every write goes through `Exporter._write`, the one error guard: the file is written by core's atomic
writer (core/io/atomic.py: a temporary file renamed over the target, nothing partial left), and any
failure becomes one status line (`model.status.fail`) while the window keeps its state.
"""
from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.state import ViewerModel


class Exporter:
    """Exports of `model`; `faces` are the hand model's triangles (set once the hand model is loaded)."""

    def __init__(self, model: ViewerModel, window: QtWidgets.QWidget, view3d) -> None:
        self.model, self.window, self.view3d = model, window, view3d
        self.faces: np.ndarray | None = None

    def _write(self, what: str, path: str | pathlib.Path, save: Callable[[], object], done: str) -> bool:
        """The one guarded write: `save()` writes `path` through core.io.atomic; a failure is reported as
        '<what> failed: <one line>' and returns False."""
        from core.errors import one_line

        try:
            save()
        except Exception as exc:  # noqa: BLE001 - any write error is shown to the user, the state is kept
            return self.model.status.fail(f"{what} failed: {one_line(exc)}")
        self.model.status.message = done
        return True

    # -- what is shown ------------------------------------------------------------------------------------
    def displayed_mesh(self) -> np.ndarray:
        """Vertices of what is shown: the selected / aggregate hypothesis mesh, else the single hand."""
        m = self.model
        r = m.result_state.result
        meshes, aggregate = m.display.meshes(r)
        if m.display.view == "image" and r is not None and meshes is not None:
            if m.display.mode in ("all", "aggregate"):
                return aggregate
            return meshes[m.display.selected(m.result_state.best)]
        return m.hand.vertices

    def displayed_faces(self) -> np.ndarray:
        """Faces of the displayed result (a left hand's winding is reversed), else the hand model's."""
        r = self.model.result_state.result
        faces = None if r is None or self.model.display.view != "image" else getattr(r, "faces", None)
        return self.faces if faces is None else faces

    # -- exports ------------------------------------------------------------------------------------------
    def export_mesh(self, path: str) -> bool:
        from core.io.export import save_mesh

        return self._write("export", path, lambda: save_mesh(path, self.displayed_mesh(), self.displayed_faces()),
                           f"Exported {path}")

    def export_all(self, folder: str, fmt: str = "obj") -> bool:
        from core.io.export import save_mesh

        r = self.model.result_state.result
        meshes = None if r is None else self.model.display.meshes(r)[0]   # what is drawn: refined, Anny or decoder
        if meshes is None:
            return self.model.status.fail("no mesh hypotheses to export (run an image through the full cascade)")

        def save() -> None:
            for k, v in enumerate(meshes):
                save_mesh(pathlib.Path(folder) / f"hypothesis_{k:03d}.{fmt}", v, self.displayed_faces())

        return self._write("export", folder, save, f"Exported {len(meshes)} meshes to {folder}")

    def export_npz(self, path: str) -> bool:
        from core.io.export import save_npz

        r = self.model.result_state.result
        if r is None:
            return self.model.status.fail("nothing to save yet: open a photo first")
        return self._write("save", path, lambda: save_npz(path, **r.to_npz_dict()), f"Saved {path}")

    def save_hypothesis_pose(self, path: str) -> bool:
        """The selected hypothesis of the selected hand (the aggregate in 'all' / 'aggregate' mode) as our
        pose `.npz` (core.io.poses.pose_file_arrays), which `pose-viewer` and `pose-viewer complete` open."""
        from core.io.export import atomic_write
        from core.io.poses import pose_file_arrays

        m = self.model
        r = m.result_state.result
        params = None if r is None else getattr(r, "params", None)
        if params is None:
            return m.status.fail("no hand-model parameters in this result: run a photo through the full cascade")
        refined = m.display.refinement_of(r)   # the refined parameters while the refinement is drawn
        if refined is not None:
            params = refined.refinement.params
        index = None if m.display.mode in ("all", "aggregate") else m.display.selected(m.result_state.best)
        which = ("refined " if refined is not None else "") + ("aggregate" if index is None else f"hypothesis #{index}")

        def save() -> None:
            arrays = pose_file_arrays(params, index, r.handedness)
            atomic_write(path, lambda f: np.savez(f, **arrays))

        return self._write("save", path, save, f"Saved {which} as a pose file: {path}")

    def export_completion(self, path: str) -> bool:
        """The highlighted completion: a mesh (.obj/.ply/.glb) or our pose .npz (pose + joints)."""
        from core.io.export import save_mesh
        from core.io.poses import save_pose_npz

        c = self.model.completion
        if c.result is None:
            return self.model.status.fail("no completion to export yet: press Complete first")
        k, r = c.selected, c.result
        if path.lower().endswith(".npz"):
            def save() -> None:
                save_pose_npz(path, r.global_orient[k], r.pose[k], r.shape[k] if r.shape.size else None, r.joints[k])
        else:
            def save() -> None:
                save_mesh(path, c.vertices[k], self.faces)
        return self._write("export", path, save, f"Exported completion #{k} to {path}")

    def save_screenshot(self, path: str, whole_window: bool = False) -> bool:
        """The 3D view (Shift+S), or the whole window with the 3D view painted in (scripted figures). The
        PNG is encoded in memory and written by the guarded write (core.io.atomic.write_png), so a full
        disk, a read-only or a missing folder is one message and never a cut-off file."""
        from core.io.atomic import write_png

        self.view3d.still_frame()    # a pending level-of-detail refinement first: screenshots at full detail
        plotter = self.view3d.plotter
        view = plotter.screenshot()
        h, w = view.shape[:2]
        image = QtGui.QImage(view.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        if whole_window:
            shot = self.window.grab()
            painter = QtGui.QPainter(shot)
            widget = plotter
            painter.drawImage(QtCore.QRect(widget.mapTo(self.window, QtCore.QPoint(0, 0)), widget.size()), image)
            painter.end()
            image = shot.toImage()
        return self._write("screenshot", path, lambda: write_png(path, png_bytes(image)), f"Saved {path}")

    # -- dialogs ------------------------------------------------------------------------------------------
    def _ask(self, title: str, default: str, filters: str) -> str:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, title, default, filters)
        return path

    def export_mesh_dialog(self) -> None:
        if path := self._ask("Export mesh", "hand.obj", "Meshes (*.obj *.ply *.glb)"):
            self.export_mesh(path)

    def export_all_dialog(self) -> None:
        if folder := QtWidgets.QFileDialog.getExistingDirectory(self.window, "Export all hypotheses to folder"):
            self.export_all(folder)

    def export_npz_dialog(self) -> None:
        if path := self._ask("Save result", "result.npz", "NumPy archive (*.npz)"):
            self.export_npz(path)

    def save_hypothesis_pose_dialog(self) -> None:
        if path := self._ask("Save hypothesis as pose file", "hypothesis_pose.npz", "Pose (*.npz)"):
            self.save_hypothesis_pose(path)

    def export_completion_dialog(self) -> None:
        if path := self._ask("Export completion", "completion.obj", "Meshes (*.obj *.ply *.glb);;Pose (*.npz)"):
            self.export_completion(path)

    def screenshot_dialog(self) -> None:
        if path := self._ask("Save screenshot", "pose-viewer.png", "PNG (*.png)"):
            self.save_screenshot(path)


def png_bytes(image: QtGui.QImage) -> bytes:
    """`image` encoded as PNG in memory (b"" if Qt cannot encode it)."""
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    ok = image.save(buf, "PNG")
    return bytes(buf.data()) if ok else b""
