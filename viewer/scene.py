"""The 3D scene in the embedded VTK view (viewer/interactor.py); every actor is created once and updated
in place (numpy ↔ VTK through viewer/vtk_draw.py).

Everything is drawn in the camera axes of the photo (OpenCV: x right, y down, z forward), wrist at
the origin, so the front view looks at the hand the way the camera saw it.
"""
from __future__ import annotations

import numpy as np

from core.joints import BONES, NUM_JOINTS
from viewer import vtk_draw

SKIN = (0.91, 0.74, 0.64)
CLOUD = (0.55, 0.75, 1.0)
SELECTED = (1.0, 0.85, 0.2)
BACKGROUND = "#1e2126"
FINGER_COLOURS = np.array([[0.9, 0.9, 0.9], [0.95, 0.35, 0.35], [0.95, 0.75, 0.2], [0.35, 0.85, 0.4],
                           [0.3, 0.6, 0.95], [0.75, 0.45, 0.95]])


def joint_colours() -> np.ndarray:
    """RGB per keypoint: wrist white, then one colour per finger (thumb → pinky)."""
    return np.array([FINGER_COLOURS[0]] + [FINGER_COLOURS[1 + (j - 1) // 4] for j in range(1, NUM_JOINTS)])


def _tiled(cells, n: int, points_per_set: int) -> np.ndarray:
    """(n·C, k) cells: the (C, k) point indices `cells` (triangles, bone segments) repeated for each of n
    sets of `points_per_set` points stored one after another."""
    base = np.asarray(cells, np.int64)
    return np.vstack([base + k * points_per_set for k in range(n)])


class HandScene:
    """Actors: the single hand (neutral / pose file), the hypothesis cloud (meshes or skeletons), the
    aggregate mesh (optionally coloured by spread) and the selected hypothesis' skeleton."""

    def __init__(self, plotter, faces: np.ndarray, vertices: np.ndarray) -> None:
        self.plotter = plotter              # viewer.interactor.FrameInteractor
        self.renderer = plotter.renderer
        self.faces = np.asarray(faces)
        self.plotter.set_background(BACKGROUND)
        self.mesh = vtk_draw.polydata(vertices, self.faces)
        self.actor = self._add(vtk_draw.mesh_actor(self.mesh, SKIN, smooth=True, specular=0.2))
        self.cloud: vtk_draw.Mesh | None = None
        self.cloud_actor = None
        self._cloud_key: tuple | None = None
        self.aggregate: vtk_draw.Mesh | None = None
        self.aggregate_actor = None
        self._spread_lut = None
        self.scalar_bar = None              # the spread colour bar (created on first use)
        self.skeleton: vtk_draw.Mesh | None = None
        self.skeleton_actor = None
        self.points_per_hypothesis = 0
        self.marker_joints: np.ndarray | None = None
        self.markers_visible_actor = None
        self.markers_hidden_actor = None
        # Plain alpha blending instead of VTK's order-independent translucency: the hypothesis cloud is one
        # colour at one opacity, where blending order does not matter (same pixels in a screenshot test),
        # and the OIT passes cost ~3-9 ms a frame in llvmpipe. The see-through hand of pose mode may show
        # small order artefacts where it overlaps itself.
        self.renderer.SetUseOIT(False)
        self.set_fast(False)
        self.view_front()

    def _add(self, actor):
        self.renderer.AddActor(actor)
        return actor

    def _remove(self, actor) -> None:
        if actor is not None:
            self.renderer.RemoveActor(actor)

    def set_fast(self, fast: bool) -> None:
        """Frames drawn while the user scrubs skip anti-aliasing (FXAA, a full-view pass); still frames
        and screenshots get it."""
        self.renderer.SetUseFXAA(not fast)

    # -- single hand --------------------------------------------------------------------------
    def set_see_through(self, on: bool) -> None:
        """Pose mode: the hand meshes are half transparent so joint spheres inside stay visible/clickable."""
        opacity = 0.45 if on else 1.0
        self.actor.GetProperty().SetOpacity(opacity)
        if self.aggregate_actor is not None:
            self.aggregate_actor.GetProperty().SetOpacity(opacity)

    def show_hand(self, vertices: np.ndarray | None) -> None:
        """The single hand with these points (updated in place), or hidden when None."""
        if vertices is not None:
            self.mesh.points = np.asarray(vertices, np.float32)
        self.actor.SetVisibility(vertices is not None)

    # -- hypotheses ---------------------------------------------------------------------------
    def show_hypotheses(self, visible: bool) -> None:
        for actor in (self.cloud_actor, self.aggregate_actor, self.skeleton_actor):
            if actor is not None:
                actor.SetVisibility(visible)
        self.actor.SetVisibility(not visible)

    def set_cloud(self, points: np.ndarray, kind: str, faces: np.ndarray | None = None,
                  points_only: bool = False) -> None:
        """Hypotheses as one translucent cloud: `points` (N,V,3) meshes (kind 'mesh', triangles `faces`,
        default the hand's) or (N,21,3) skeletons (kind 'joints'). Same sizes → points updated in place.
        `points_only` draws the cloud's points only (the level of detail while scrubbing: software OpenGL
        pays for every translucent layer of 50 overlapping surfaces, and ~8 ms a frame for 1,000 bone
        lines in llvmpipe; points cost almost nothing)."""
        n, p = points.shape[:2]
        key = (kind, n, p, points_only)
        flat = np.asarray(points, np.float32).reshape(-1, 3)
        if self._cloud_key != key:
            self._remove(self.cloud_actor)
            if points_only:
                # Vertex cells, not triangles drawn as points: each vertex once (a triangle mesh in points
                # representation draws every vertex once per triangle it belongs to, ~6 ×).
                self.cloud = vtk_draw.polydata(flat, verts=True)
                self.cloud_actor = self._add(vtk_draw.mesh_actor(self.cloud, CLOUD, opacity=0.5,
                                                                 point_size=3 if kind == "mesh" else 5))
            elif kind == "mesh":
                f = self.faces if faces is None else np.asarray(faces)
                self.cloud = vtk_draw.polydata(flat, _tiled(f, n, p))
                self.cloud_actor = self._add(vtk_draw.mesh_actor(self.cloud, CLOUD, opacity=0.05))
                # Unlit: the cloud reads as a density of hypotheses (a pixel covered by all 50 is dense, one
                # reached by a few outliers faint) while the opaque aggregate carries the shading. Lighting 50
                # translucent layers with the 5-light kit was ~55 % of a still frame in llvmpipe.
                self.cloud_actor.GetProperty().LightingOff()
                # The cloud shares surfaces with the opaque aggregate / selected mesh: push it back in
                # depth so the opaque mesh wins instead of z-fighting.
                self.cloud_actor.GetMapper().SetRelativeCoincidentTopologyPolygonOffsetParameters(4, 4)
                # Front faces only: half the translucent layers to blend, and a less muddy cloud.
                self.cloud_actor.GetProperty().BackfaceCullingOn()
            else:
                self.cloud = vtk_draw.polydata(flat, lines=_tiled(BONES, n, p))
                self.cloud_actor = self._add(vtk_draw.mesh_actor(self.cloud, CLOUD, opacity=0.35, line_width=1.5))
            self._cloud_key = key
            self.points_per_hypothesis = p
        else:
            self.cloud.points = flat
        self.cloud_actor.SetVisibility(True)

    def hide_cloud(self) -> None:
        if self.cloud_actor is not None:
            self.cloud_actor.SetVisibility(False)

    def set_aggregate(self, vertices: np.ndarray | None, spread: np.ndarray | None = None) -> None:
        """The opaque aggregate mesh (V,3); `spread` (V,) in metres colours it (viridis, mm colour bar)."""
        if vertices is None:
            if self.aggregate_actor is not None:
                self.aggregate_actor.SetVisibility(False)
            self._show_scalar_bar(False)
            return
        want_scalars = spread is not None
        rebuild = (self.aggregate is None or self.aggregate.n_points != len(vertices)
                   or want_scalars != self.aggregate_actor.GetMapper().GetScalarVisibility())
        if rebuild:
            self._remove(self.aggregate_actor)
            self.aggregate = vtk_draw.polydata(vertices, self.faces)
            if want_scalars:
                # no specular on the coloured mesh (as pyvista drew it): the colours read truer
                self.aggregate_actor = self._add(vtk_draw.mesh_actor(self.aggregate, smooth=True))
            else:
                self.aggregate_actor = self._add(vtk_draw.mesh_actor(self.aggregate, SKIN, smooth=True))
        else:
            self.aggregate.points = vertices
        if want_scalars:
            spread_mm = np.asarray(spread, np.float32) * 1000
            vtk_draw.set_point_scalars(self.aggregate, spread_mm, "spread_mm")
            self._colour_by_spread((float(spread_mm.min()), float(spread_mm.max())))
        self._show_scalar_bar(want_scalars)
        self.aggregate_actor.GetProperty().SetOpacity(self.actor.GetProperty().GetOpacity())
        self.aggregate_actor.SetVisibility(True)

    def _colour_by_spread(self, value_range: tuple[float, float]) -> None:
        """The aggregate coloured by its spread scalars; the colour bar shows the same table and range."""
        if self._spread_lut is None:
            from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

            self._spread_lut = vtk_draw.viridis_lut()
            bar = self.scalar_bar = vtkScalarBarActor()
            bar.SetLookupTable(self._spread_lut)
            bar.SetTitle("spread (mm)")
            bar.SetOrientationToVertical()
            bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            bar.SetPosition(0.9, 0.02)        # pyvista's vertical colour bar: right edge, lower half
            bar.SetPosition2(0.08, 0.45)
            bar.SetNumberOfLabels(5)
            bar.SetMaximumNumberOfColors(256)
            bar.SetLabelFormat("{:<#6.3g}")
            bar.SetUnconstrainedFontSize(True)
            bar.SetBarRatio(0.375)
            bar.SetTextPositionToPrecedeScalarBar()   # labels left of the bar (pyvista's, right, were cut off)
            for text, centred in ((bar.GetLabelTextProperty(), False), (bar.GetTitleTextProperty(), True)):
                text.SetFontSize(18)
                text.SetFontFamilyToArial()
                text.SetBold(False)
                text.SetItalic(False)
                text.SetShadow(False)
                text.SetColor(0.85, 0.85, 0.85)   # light on the dark background (pyvista's was black)
                if centred:
                    text.SetJustificationToCentered()
            bar.SetVisibility(False)
            self.renderer.AddViewProp(bar)
        lo, hi = value_range
        vtk_draw.map_scalars(self.aggregate_actor, self._spread_lut, (lo, max(hi, lo + 1e-6)))

    def _show_scalar_bar(self, visible: bool) -> None:
        if self.scalar_bar is not None:
            self.scalar_bar.SetVisibility(visible)

    def set_skeleton(self, joints: np.ndarray | None) -> None:
        """Joints (21,3) and bones of the selected hypothesis."""
        if joints is None:
            if self.skeleton_actor is not None:
                self.skeleton_actor.SetVisibility(False)
            return
        pts = np.asarray(joints, np.float32)
        if self.skeleton is None:
            self.skeleton = vtk_draw.polydata(pts, lines=_tiled(BONES, 1, NUM_JOINTS))
            vtk_draw.set_point_scalars(self.skeleton, (joint_colours() * 255).astype(np.uint8), "rgb")
            self.skeleton_actor = self._add(vtk_draw.mesh_actor(self.skeleton, rgb=True, line_width=4, point_size=12,
                                                                spheres=True, pickable=False))
        else:
            self.skeleton.points = pts
        self.skeleton_actor.SetVisibility(True)

    def set_joint_markers(self, joints: np.ndarray | None, hidden: np.ndarray | None = None) -> None:
        """Clickable joint spheres of the pose being completed: visible ones solid and coloured,
        hidden ones hollow (wireframe) and grey."""
        for actor in (self.markers_visible_actor, self.markers_hidden_actor):
            self._remove(actor)
        self.markers_visible_actor = self.markers_hidden_actor = None
        self.marker_joints = None if joints is None else np.asarray(joints, np.float32)
        if joints is None:
            return
        hidden = np.zeros(NUM_JOINTS, bool) if hidden is None else np.asarray(hidden, bool)
        pts = self.marker_joints
        if (~hidden).any():
            vis = vtk_draw.polydata(pts[~hidden], verts=True)
            vtk_draw.set_point_scalars(vis, (joint_colours()[~hidden] * 255).astype(np.uint8), "rgb")
            self.markers_visible_actor = self._add(vtk_draw.mesh_actor(vis, rgb=True, point_size=16, spheres=True,
                                                                       pickable=False))
        if hidden.any():
            self.markers_hidden_actor = self._add(vtk_draw.mesh_actor(
                _hollow_balls(pts[hidden], radius=0.006), (0.604, 0.604, 0.604), wireframe=True, pickable=False))

    def display_coords(self, points: np.ndarray) -> np.ndarray:
        """VTK display coordinates (x, y from the bottom-left, pixels) of world points (P,3)."""
        ren = self.renderer
        out = np.zeros((len(points), 2))
        for i, p in enumerate(np.asarray(points, np.float64)):
            ren.SetWorldPoint(p[0], p[1], p[2], 1.0)
            ren.WorldToDisplay()
            out[i] = ren.GetDisplayPoint()[:2]
        return out

    def pick_joint(self, x: int, y: int, tolerance_px: float = 14.0) -> int | None:
        """The joint marker nearest to display pixel (x, y), if within `tolerance_px`."""
        if self.marker_joints is None:
            return None
        d = np.linalg.norm(self.display_coords(self.marker_joints) - [x, y], axis=1)
        j = int(np.argmin(d))
        return j if d[j] <= tolerance_px else None

    def pick_hypothesis(self, x: int, y: int) -> int | None:
        """Index of the hypothesis under display pixel (x, y) (VTK coordinates, origin bottom-left)."""
        from vtkmodules.vtkRenderingCore import vtkPointPicker   # not `import vtk`: it loads every VTK module (~100 MB)

        if self.cloud_actor is None or not self.cloud_actor.GetVisibility() or not self.points_per_hypothesis:
            return None
        picker = vtkPointPicker()
        picker.SetTolerance(0.01)
        picker.PickFromListOn()
        picker.AddPickList(self.cloud_actor)
        if not picker.Pick(x, y, 0, self.renderer):
            return None
        pid = picker.GetPointId()
        return None if pid < 0 else pid // self.points_per_hypothesis

    def set_offset(self, t: np.ndarray | None) -> None:
        """Move the result's actors (cloud, aggregate, skeleton) by `t` (3,): the selected hand at its place
        in the photo's camera frame (issue 26); None puts them back at the origin (pose view)."""
        pos = (0.0, 0.0, 0.0) if t is None else tuple(float(x) for x in t)
        for actor in (self.cloud_actor, self.aggregate_actor, self.skeleton_actor):
            if actor is not None:
                actor.SetPosition(*pos)

    # -- camera -------------------------------------------------------------------------------
    def _centre(self) -> np.ndarray:
        for mesh, actor in ((self.aggregate, self.aggregate_actor), (self.cloud, self.cloud_actor),
                            (self.mesh, self.actor)):
            if mesh is not None and actor is not None and actor.GetVisibility():
                return np.asarray(mesh.points).mean(0) + actor.GetPosition()
        return np.zeros(3)

    def view(self, direction: str = "front", render: bool = True) -> None:
        """Front = the photo's camera view (looking along +z, y down); side = from +x; top = from −y.
        `render=False` only moves the camera (the caller has a frame coming anyway)."""
        c = self._centre()
        d = 0.6
        eye, up = {"front": (c + [0, 0, -d], (0, -1, 0)), "side": (c + [d, 0, 0], (0, -1, 0)),
                   "top": (c + [0, -d, 0], (0, 0, 1))}[direction]
        cam = self.renderer.GetActiveCamera()
        cam.SetPosition(*eye)
        cam.SetFocalPoint(*c)
        cam.SetViewUp(*up)
        self.renderer.ResetCamera()          # frames the visible actors along this direction
        if render:
            self.plotter.render()

    def view_front(self) -> None:
        self.view("front")


def _hollow_balls(centres: np.ndarray, radius: float) -> "vtk_draw.Mesh":
    """A small UV sphere (10 × 8, pyvista's `Sphere(theta_resolution=10, phi_resolution=8)`) at each
    centre (the hidden joints of a pose, drawn as wireframe)."""
    from vtkmodules.vtkFiltersSources import vtkSphereSource

    source = vtkSphereSource()
    source.SetRadius(radius)
    source.SetThetaResolution(10)
    source.SetPhiResolution(8)
    source.Update()
    ball = source.GetOutput()
    pts = vtk_draw.vtk_to_numpy(ball.GetPoints().GetData())
    tris = vtk_draw.vtk_to_numpy(ball.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    centres = np.asarray(centres, np.float32)
    points = (pts[None] + centres[:, None]).reshape(-1, 3)
    return vtk_draw.polydata(points, _tiled(tris, len(centres), len(pts)))
