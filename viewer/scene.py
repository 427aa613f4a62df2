"""The 3D scene: one embedded pyvista `QtInteractor`; meshes are created once and updated in place."""
from __future__ import annotations

import numpy as np

SKIN = (0.91, 0.74, 0.64)
BACKGROUND = "#1e2126"


def faces_to_vtk(faces: np.ndarray) -> np.ndarray:
    """(F,3) triangles → VTK's flat cell array [3, a, b, c, ...]."""
    f = np.asarray(faces, np.int64)
    return np.hstack([np.full((f.shape[0], 1), 3, np.int64), f]).ravel()


class HandScene:
    """Draws the current hand mesh inside a QtInteractor (`plotter`)."""

    def __init__(self, plotter, faces: np.ndarray, vertices: np.ndarray) -> None:
        import pyvista as pv

        self.plotter = plotter
        self.plotter.set_background(BACKGROUND)
        self.mesh = pv.PolyData(np.asarray(vertices, np.float32).copy(), faces_to_vtk(faces))
        self.actor = self.plotter.add_mesh(self.mesh, color=SKIN, smooth_shading=True, specular=0.2,
                                           name="hand")
        self.plotter.add_axes()
        self.view_front()

    def set_vertices(self, vertices: np.ndarray, reset_camera: bool = False) -> None:
        """Update the hand's points in place (no new actor)."""
        self.mesh.points = np.asarray(vertices, np.float32)
        if reset_camera:
            self.plotter.reset_camera()
        self.plotter.render()

    def view_front(self) -> None:
        """Camera facing the palm of the canonical hand (fingers up), framing the whole mesh."""
        self.plotter.camera_position = [(-0.6, 0.09, 0.0), (0.0, 0.09, 0.0), (0.0, 1.0, 0.0)]
        self.plotter.reset_camera()
        self.plotter.render()
