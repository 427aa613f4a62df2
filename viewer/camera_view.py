"""Every hand of a photo in one scene and the view through the photo's camera (issue 26).

All hands sit in the photo's camera axes (OpenCV: x right, y down, z forward, metres), each at its own
translation (`vertices + mesh_cam_t` overlays the photo). `camera_params` turns the intrinsics K and the
image size into a VTK camera at the origin looking along +z (view up −y) whose view angle and window
centre put pixel (u, v) of the photo where K puts it, letterboxed into the 3D view; `Backdrop` is the
photo as a textured rectangle in that frustum at a depth behind the hands, so the meshes sit on the hands
like a HaMeR render, and orbiting away shows how the hypotheses spread in depth in front of the photo.
`OtherHands` draws the hands that are not selected (opaque aggregates, one colour per hand, clickable).
Nothing here does tensor math: positions come from the engine's results.
"""
from __future__ import annotations

import math

import numpy as np

from viewer import vtk_draw

#: One colour per hand of a photo (hand 0 keeps the single-hand skin colour); boxes in the image panel use
#: them. No light blue: that is the hypothesis cloud's colour (viewer.scene.CLOUD).
HAND_COLOURS = ((0.91, 0.74, 0.64), (0.55, 0.82, 0.6), (0.98, 0.62, 0.35), (0.96, 0.62, 0.78),
                (0.95, 0.85, 0.4), (0.75, 0.6, 0.95), (0.4, 0.75, 0.7), (0.75, 0.75, 0.75))
#: The photo backdrop's depth: this many times the farthest hand's depth (behind every hand).
BACKDROP_BEHIND = 1.6
#: Largest texture side uploaded for the backdrop (bigger photos are subsampled for it).
MAX_TEXTURE = 2048


def hand_colour(index: int) -> tuple[float, float, float]:
    return HAND_COLOURS[index % len(HAND_COLOURS)]


def translation(result) -> np.ndarray:
    """Where a hand's root-relative geometry goes in the camera frame: the mesh's when there are meshes."""
    t = getattr(result, "mesh_cam_t", None)
    return np.asarray(result.cam_t if t is None else t, np.float64)


def camera_params(K: np.ndarray, image_size: tuple[int, int], viewport: tuple[int, int]) -> dict:
    """VTK camera settings that show the photo (`image_size` = (W, H)) through K, letterboxed into a viewport
    of (w, h) pixels: {'view_angle' (deg), 'horizontal' (the angle spans the width), 'window_center',
    'scale' (viewport px per image px), 'offset' (viewport px of image pixel (0, 0), from the top-left)}."""
    K = np.asarray(K, np.float64)
    W, H = image_size
    w, h = max(int(viewport[0]), 1), max(int(viewport[1]), 1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    horizontal = w / h < W / H            # the viewport is narrower than the photo: fit the width
    s = w / W if horizontal else h / H
    angle = 2 * math.degrees(math.atan(W / (2 * fx) if horizontal else H / (2 * fy)))
    offset = np.array([(w - W * s) / 2, (h - H * s) / 2])
    # The optical axis must land on the principal point's place: NDC (x right, y up) of (cx, cy).
    axis = offset + np.array([cx, cy]) * s
    ndc = np.array([axis[0] / w * 2 - 1, 1 - axis[1] / h * 2])
    return {"view_angle": angle, "horizontal": horizontal, "window_center": tuple(-ndc), "scale": s,
            "offset": offset, "viewport": (w, h)}


def image_to_viewport(uv: np.ndarray, params: dict) -> np.ndarray:
    """Photo pixels (P,2) → 3D-view pixels (P,2) from the top-left, under `camera_params`' letterbox."""
    return np.asarray(uv, np.float64) * params["scale"] + params["offset"]


def apply_camera(renderer, K: np.ndarray, image_size: tuple[int, int], near_far: tuple[float, float]) -> dict:
    """Put `renderer`'s camera at the photo's camera (see `camera_params`); returns the parameters used."""
    w, h = renderer.GetSize()
    p = camera_params(K, image_size, (w, h))
    cam = renderer.GetActiveCamera()
    cam.SetPosition(0.0, 0.0, 0.0)
    cam.SetFocalPoint(0.0, 0.0, 1.0)
    cam.SetViewUp(0.0, -1.0, 0.0)
    cam.SetUseHorizontalViewAngle(p["horizontal"])
    cam.SetViewAngle(p["view_angle"])
    cam.SetWindowCenter(*p["window_center"])
    cam.SetClippingRange(*near_far)
    return p


def reset_camera_shape(renderer) -> None:
    """Undo the camera view's window centre and horizontal angle (the other views assume the defaults)."""
    cam = renderer.GetActiveCamera()
    cam.SetWindowCenter(0.0, 0.0)
    cam.SetUseHorizontalViewAngle(False)
    cam.SetViewAngle(30.0)


def backdrop_corners(K: np.ndarray, image_size: tuple[int, int], depth: float) -> np.ndarray:
    """(4,3) camera-frame corners of the photo at `depth`: pixels (0,0), (W,0), (W,H), (0,H)."""
    K = np.asarray(K, np.float64)
    W, H = image_size
    uv = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float64)
    xy = (uv - K[:2, 2]) / np.diag(K)[:2] * depth
    return np.hstack([xy, np.full((4, 1), depth)])


class Backdrop:
    """The photo as a textured, unlit rectangle in the camera frustum (created once, updated in place)."""

    def __init__(self, plotter) -> None:
        self.plotter = plotter
        self.actor = None
        self.mesh = None
        self._image_id: int | None = None
        self.depth = 0.0

    def show(self, image: np.ndarray, K: np.ndarray, depth: float) -> None:
        h, w = image.shape[:2]
        corners = backdrop_corners(K, (w, h), depth)
        self.depth = depth
        if self.mesh is None:
            self.mesh = vtk_draw.polydata(corners, np.array([[0, 1, 2, 3]]))
            # texture (s, t) from the bottom-left: pixel (u, v) → (u / W, 1 − v / H)
            vtk_draw.set_texture_coordinates(self.mesh, np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32))
        else:
            self.mesh.points = corners
        if self._image_id != id(image):
            step = max(1, int(math.ceil(max(h, w) / MAX_TEXTURE)))
            texture = vtk_draw.texture(image[::step, ::step], interpolate=True)
            if self.actor is None:
                self.actor = vtk_draw.mesh_actor(self.mesh, (1.0, 1.0, 1.0), lighting=False, pickable=False)
                self.plotter.renderer.AddActor(self.actor)
            self.actor.SetTexture(texture)
            self._image_id = id(image)
        self.actor.SetVisibility(True)

    def hide(self) -> None:
        if self.actor is not None:
            self.actor.SetVisibility(False)

    @property
    def visible(self) -> bool:
        return self.actor is not None and bool(self.actor.GetVisibility())


class OtherHands:
    """The hands of the photo that are not selected: one opaque aggregate per hand in its colour at its own
    translation (a skeleton without meshes); `pick` says which one is under a display pixel."""

    def __init__(self, plotter) -> None:
        self.plotter = plotter
        self.actors: list = []
        self.meshes: list = []
        self.indices: list[int] = []      # the hand index each actor shows

    def show(self, hands: list[tuple[int, np.ndarray, np.ndarray | None, np.ndarray]]) -> None:
        """`hands`: (hand index, points (V,3) or joints (21,3), faces (F,3) or None for a skeleton, translation)."""
        from core.joints import BONES

        for k, (index, pts, faces, t) in enumerate(hands):
            pts = np.asarray(pts, np.float32)
            key = (len(pts), faces is None)
            if k < len(self.actors) and self.meshes[k][0] == key:
                self.meshes[k][1].points = pts
            else:
                if k < len(self.actors):
                    self.plotter.renderer.RemoveActor(self.actors[k])
                if faces is None:
                    mesh = vtk_draw.polydata(pts, lines=np.array(BONES))
                    actor = vtk_draw.mesh_actor(mesh, line_width=4)
                else:
                    mesh = vtk_draw.polydata(pts, np.asarray(faces))
                    actor = vtk_draw.mesh_actor(mesh, smooth=True, specular=0.2)
                self.plotter.renderer.AddActor(actor)
                if k < len(self.actors):
                    self.actors[k], self.meshes[k] = actor, (key, mesh)
                else:
                    self.actors.append(actor)
                    self.meshes.append((key, mesh))
            actor = self.actors[k]
            actor.GetProperty().SetColor(*hand_colour(index))
            actor.SetPosition(*np.asarray(t, np.float64))
            actor.SetVisibility(True)
        for actor in self.actors[len(hands):]:
            actor.SetVisibility(False)
        self.indices = [h[0] for h in hands]

    def hide(self) -> None:
        self.show([])

    def pick(self, renderer, x: int, y: int) -> int | None:
        """The hand index whose mesh is under display pixel (x, y) (origin bottom-left), if any."""
        from vtkmodules.vtkRenderingCore import vtkCellPicker   # not `import vtk`: it loads every VTK module (~100 MB)

        shown = [a for a in self.actors[:len(self.indices)] if a.GetVisibility()]
        if not shown:
            return None
        picker = vtkCellPicker()
        picker.SetTolerance(0.005)
        picker.PickFromListOn()
        for a in shown:
            picker.AddPickList(a)
        if not picker.Pick(x, y, 0, renderer):
            return None
        actor = picker.GetActor()
        for a, index in zip(self.actors, self.indices):
            if a is actor:
                return index
        return None


class PhotoScene:
    """What the scene controller adds for a photo's result: the hands that are not selected, the photo
    backdrop and the camera view (on / off, kept lined up through resizes until the user moves the camera).
    Reads the models (`viewer.state.ViewerModel`); never touches the selected hand's actors."""

    def __init__(self, plotter, model) -> None:
        self.plotter = plotter
        self.model = model
        self.others = OtherHands(plotter)
        self.backdrop = Backdrop(plotter)
        self.camera_on = False          # the user asked for the camera view (kept for the next results)
        self.params: dict | None = None # camera_params of the last camera view
        self._shaped = False            # the VTK camera has the camera view's window centre / angle

    def draw(self, selected) -> np.ndarray:
        """The other estimated hands of the photo around `selected` (the selected hand's result); returns
        the selected hand's translation (where the controller puts its actors)."""
        m = self.model
        chosen = m.image_state.chosen
        items = []
        for i, h in enumerate(m.hands.results):
            if h is None or i == chosen or h is selected:
                continue
            refined = m.refine.outcome_for(i, h) if m.display.refined else None   # its refinement, if drawn
            if refined is not None:
                items.append((i, refined[1].vertices, h.faces, translation(h)))
            elif getattr(h, "vertices", None) is not None:
                items.append((i, h.vertices, h.faces, translation(h)))
            else:
                items.append((i, h.joints, None, translation(h)))
        self.others.show(items)
        if self.camera_on and self.unmoved():
            self.camera_view(on=True)
        return translation(selected)

    def leave(self) -> None:
        """The pose view: no photo, no other hands, the default camera shape."""
        if self.others.indices:
            self.others.hide()
        self.backdrop.hide()
        if self._shaped:
            reset_camera_shape(self.plotter.renderer)
            self._shaped = False

    def camera_view(self, on: bool) -> bool:
        """Turn the camera view on (the camera at the photo's, the photo behind the hands; False when there
        is no photo result) or off (the backdrop hidden, the default camera shape)."""
        m = self.model
        r, image = m.result_state.result, m.image_state.image
        if not on:
            self.camera_on = False
            self.backdrop.hide()
            if self._shaped:
                reset_camera_shape(self.plotter.renderer)
                self._shaped = False
            return False
        self.camera_on = True           # also for the next photo when there is no result yet
        if r is None or image is None or m.display.view != "image":
            return False
        depths = [translation(h)[2] for h in m.hands.results if h is not None] or [translation(r)[2]]
        depth = BACKDROP_BEHIND * max(max(depths), 0.05)
        self.backdrop.show(image, r.K, depth)
        h, w = image.shape[:2]
        self.params = apply_camera(self.plotter.renderer, r.K, (w, h), (0.01, depth * 1.5))
        self._shaped = True
        return True

    def unmoved(self) -> bool:
        """The VTK camera is still where the camera view put it (the user has not orbited or zoomed)."""
        cam = self.plotter.renderer.GetActiveCamera()
        return (self._shaped and np.allclose(cam.GetPosition(), 0.0, atol=1e-9)
                and np.allclose(cam.GetDirectionOfProjection(), (0.0, 0.0, 1.0), atol=1e-6)
                and np.allclose(cam.GetViewUp(), (0.0, -1.0, 0.0), atol=1e-6))

    def follow_resize(self) -> bool:
        """After a resize: the camera view is recomputed for the new shape if the user has not moved it."""
        if self.camera_on and self.unmoved():
            return self.camera_view(on=True)
        return False

    def pick(self, x: int, y: int) -> int | None:
        return self.others.pick(self.plotter.renderer, x, y)
