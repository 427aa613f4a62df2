"""The embedded 3D view: VTK's own `QVTKRenderWindowInteractor` in its native-window form (a QWidget).

VTK renders straight into the widget's own window and swaps it on screen; Qt never composes that frame.
A framebuffer-object `QOpenGLWidget` (pyvistaqt 0.13's route) makes Qt compose the whole main window
through OpenGL for every VTK frame: on software OpenGL (llvmpipe) that composition cost more than the
render itself (docs/performance.md: scrub frame 41.8 → 20.7 ms in a back-to-back probe). Window repaints
elsewhere (a progress bar, the image panel) do not re-render the 3D scene either: only expose and resize
events of this window do.

This used to be pyvistaqt 0.12's `QtInteractor`, the same widget underneath; drawing with VTK directly
keeps pyvista, pyvistaqt and the matplotlib they import out of the window process (issue 27). Kept from
it: trackball-camera interaction, pyvista's light kit, no MSAA, the orientation axes, Up/Down zoom.
"""
from __future__ import annotations

import weakref

import numpy as np
import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"   # before the import below, which otherwise probes every Qt binding

from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkLightKit, vtkRenderer  # noqa: E402

from viewer import vtk_draw  # noqa: E402  (loads the OpenGL and text implementations)

#: The 3D views not closed yet (tests check that a closed window leaves none behind).
OPEN_VIEWS: weakref.WeakSet = weakref.WeakSet()
#: pyvista's axes colours (tomato, seagreen, mediumblue).
AXES_COLOURS = ((1.0, 0.388, 0.278), (0.180, 0.545, 0.341), (0.0, 0.0, 0.804))


class TrackballStyle(vtkInteractorStyleTrackballCamera):
    """Trackball camera (pyvista's default style). Left press / release go through observers of the style
    itself, as pyvista's style did, so that other observers of the style (`FrameInteractor.add_observer`)
    hear the release too."""

    def __init__(self) -> None:
        super().__init__()
        # bound methods, not lambdas over `self`: VTK keeps a method's object alive with the C++ style (a
        # lambda's `self` outlived its wrapper and crashed on the first click)
        self.AddObserver("LeftButtonPressEvent", self._press)
        self.AddObserver("LeftButtonReleaseEvent", self._release)

    def _press(self, _obj, _evt) -> None:
        self.OnLeftButtonDown()

    def _release(self, _obj, _evt) -> None:
        self.OnLeftButtonUp()


class _ClosedInteractor:
    """Stands in for the VTK interactor once the view is closed: late Qt events (leave, paint) do nothing."""

    def __getattr__(self, _name: str):
        return lambda *args, **kwargs: None


#: Stroke letters for the axes' labels: segments in a unit box (x right, y up), drawn facing the camera.
LETTERS = {"X": ((0, 0, 1, 1), (0, 1, 1, 0)), "Y": ((0, 1, 0.5, 0.5), (1, 1, 0.5, 0.5), (0.5, 0.5, 0.5, 0)),
           "Z": ((0, 1, 1, 1), (1, 1, 0, 0), (0, 0, 1, 0))}


def orientation_axes(renderer: vtkRenderer) -> vtkRenderer:
    """X/Y/Z axes in the bottom-left corner that turn with `renderer`'s camera (pyvista's `add_axes`:
    its colours, labels at the tips). A second renderer on the layer above whose camera copies the
    scene's before every frame — what vtkOrientationMarkerWidget does, without its module (~7 MB in the
    window process, issue 27) — drawing lines and stroke letters (vtkAxesActor's cones, cylinders and
    FreeType captions: ~4 MB more)."""
    from vtkmodules.vtkRenderingCore import vtkFollower

    corner = vtkRenderer()
    corner.SetViewport(0.0, 0.0, 0.2, 0.2)
    corner.SetLayer(1)
    corner.InteractiveOff()
    shafts = vtk_draw.polydata(np.vstack([np.zeros(3), np.eye(3)]), lines=np.array([[0, 1], [0, 2], [0, 3]]))
    vtk_draw.set_cell_colours(shafts, (np.array(AXES_COLOURS) * 255).astype(np.uint8))
    corner.AddActor(vtk_draw.mesh_actor(shafts, rgb=True, line_width=2, lighting=False, pickable=False))
    for axis, segments in enumerate(LETTERS.values()):
        seg = np.array(segments, np.float32).reshape(-1, 2)
        points = np.hstack([seg - 0.5, np.zeros((len(seg), 1))]) * 0.16
        letter = vtkFollower()
        strokes = vtk_draw.polydata(points, lines=np.arange(len(points)).reshape(-1, 2))
        letter.SetMapper(vtk_draw.mesh_actor(strokes).GetMapper())
        letter.GetProperty().SetColor(1.0, 1.0, 1.0)
        letter.GetProperty().LightingOff()
        letter.GetProperty().SetLineWidth(1.5)
        letter.SetPosition(*(np.eye(3)[axis] * 1.22))
        letter.SetCamera(corner.GetActiveCamera())
        letter.PickableOff()
        corner.AddActor(letter)

    def follow(_obj, _evt) -> None:
        cam, own = renderer.GetActiveCamera(), corner.GetActiveCamera()
        own.SetPosition(cam.GetPosition())
        own.SetFocalPoint(cam.GetFocalPoint())
        own.SetViewUp(cam.GetViewUp())
        corner.ResetCamera()
        own.Zoom(0.6)          # about the size of pyvista's axes in their corner

    renderer.AddObserver("StartEvent", follow)
    return corner


class FrameInteractor(QVTKRenderWindowInteractor):
    """The 3D view widget: one renderer, trackball camera; counts the frames it puts on screen
    (`frames_shown`: benchmarks and tests wait for the next)."""

    def __init__(self, parent=None, background: str = "#1e2126") -> None:
        super().__init__(parent)
        self.frames_shown = 0
        self.closed = False
        self.render_window = self.GetRenderWindow()
        # No MSAA: in llvmpipe it multiplies the fill cost of every frame; still frames get FXAA instead.
        self.render_window.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.render_window.AddRenderer(self.renderer)
        self.set_background(background)
        vtkLightKit().AddLightsToRenderer(self.renderer)   # pyvista's 'light kit': key, fill, head, 2 back
        self.iren = self.render_window.GetInteractor()
        self.style = TrackballStyle()
        self.iren.SetInteractorStyle(self.style)
        self.iren.Initialize()
        self.iren.AddObserver("KeyPressEvent", self._on_key)
        self.axes = orientation_axes(self.renderer)
        self.render_window.SetNumberOfLayers(2)
        self.render_window.AddRenderer(self.axes)
        # EndEvent comes after the render window swapped its buffers: the frame is on screen.
        self.render_window.AddObserver("EndEvent", self._count_frame)
        OPEN_VIEWS.add(self)

    def add_observer(self, event: str, callback) -> None:
        """Call `callback(obj, event)` on a VTK interaction event of this view. Button releases are observed
        on the interactor style: the trackball style grabs the mouse on a press, so the interactor's own
        observers never hear the release (pyvista routed them the same way)."""
        target = self.style if event.endswith("ButtonReleaseEvent") else self.iren
        target.AddObserver(event, callback)

    def _count_frame(self, _obj, _evt) -> None:
        self.frames_shown += 1

    def _on_key(self, _obj, _evt) -> None:
        """Up / Down zoom the camera by 5 % (as pyvista's interactor did); VTK's own keys (r: reset the
        camera, w / s: wireframe / surface, …) come from the interactor style."""
        key = self.iren.GetKeySym()
        if key in ("Up", "Down"):
            self.renderer.GetActiveCamera().Zoom(1.05 if key == "Up" else 0.95)
            self.render()

    def set_background(self, colour: str) -> None:
        """Background from a '#rrggbb' colour."""
        c = colour.lstrip("#")
        self.renderer.SetBackground(*(int(c[i:i + 2], 16) / 255 for i in (0, 2, 4)))

    def render(self) -> None:
        """Draw a frame now (nothing once closed)."""
        if not self.closed:
            self.render_window.Render()

    def screenshot(self) -> np.ndarray:
        """The last frame as an (H,W,3) uint8 array, top row first."""
        return vtk_draw.screenshot(self.render_window)

    def Finalize(self) -> None:  # noqa: N802 - QVTKRenderWindowInteractor's API (its closeEvent calls it)
        if self._RenderWindow is not None:
            self._RenderWindow.Finalize()

    def close(self) -> bool:
        """Release the VTK window and its OpenGL context (the window's closeEvent calls this)."""
        if self.closed:
            return True
        self.closed = True
        self.iren.RemoveAllObservers()
        # Detach the style (a Python subclass, kept by VTK until exit): left attached, it keeps a dangling
        # pointer to the destroyed interactor and crashes the interpreter's exit.
        self.style.RemoveAllObservers()
        self.iren.SetInteractorStyle(None)
        self.renderer.RemoveAllObservers()
        for renderer in (self.renderer, self.axes):
            renderer.RemoveAllViewProps()
            self.render_window.RemoveRenderer(renderer)
        self.render_window.Finalize()
        self.iren.TerminateApp()
        # Drop every reference to the VTK window: destroying it closes its own X display connection (kept
        # open, it outlives the X server in scripted runs and Xlib aborts the process at exit).
        self._Iren = _ClosedInteractor()
        self._RenderWindow = self.render_window = self.renderer = self.axes = self.iren = self.style = None
        OPEN_VIEWS.discard(self)
        return super().close()
