"""The 3D view's controller: the only code that touches `HandScene` (viewer/scene.py).

It observes the evented models (viewer/state.py) and draws them: the single hand, an image result and
its denoising trajectory (coarser while the user scrubs, refined once the step stays put, like
vtkLODActor), and a DPoser completion with its clickable joint markers. Clicks and hovers in the view
become model changes and status messages. Frames are requested, never drawn per change: many model
changes in a row cost one VTK render once the event loop is idle.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6 import QtCore

from viewer.state import ViewerModel

#: Mesh-cloud levels of detail (autoencoder sampling levels: 2 = 200 vertices, 3 = 100 vertices) for
#: still frames and while scrubbing (drawn as points), and how long a step must stay put before it is
#: redrawn in full. The translucent cloud at 200 vertices looks the same as at 400 (compared side by
#: side) and halves llvmpipe's still-frame cost (first frame of a result 90 -> 64 ms under load); the
#: opaque aggregate and a single hypothesis keep the full mesh.
CLOUD_LEVEL, SCRUB_LEVEL, REFINE_AFTER_MS = 2, 3, 250
HOVER_EVERY_S = 0.08   # picking under the mouse is throttled so hovering never stalls the event loop


def prepare_levels_of_detail(vertices: np.ndarray) -> None:
    """Build the cloud's level-of-detail gathers at start-up (~30 ms here with the resource's load; the
    window runs it on a thread), not when the first result arrives."""
    from core.hypotheses import coarse_meshes

    for level in (CLOUD_LEVEL, SCRUB_LEVEL):
        coarse_meshes(np.asarray(vertices)[None], level)


class SceneController(QtCore.QObject):
    """Draws `model` into `plotter` (a FrameInteractor); `start` creates the scene once the hand is known."""

    message = QtCore.Signal(str, int)   # a status-bar message and how long it shows (ms, 0 = until replaced)
    hand_picked = QtCore.Signal(int)    # another hand of the photo was clicked in the 3D view (issue 26)

    def __init__(self, plotter, model: ViewerModel, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.plotter = plotter
        self.model = model
        self.scene = None
        self._scrubbing = False     # drawing a trajectory step at the scrubbing level of detail
        # A new result's first frame skips anti-aliasing too (its arrival is the longest GUI-thread job of a
        # run: ~15 ms less of it); the anti-aliased frame follows once the engine is idle (`engine_idle`):
        # drawn while the engine process still decodes the mesh trajectory it cost 55-128 ms instead of ~45.
        self._arriving = False
        self._coarse_cache: dict = {}   # (id of a mesh array, level) → (array, coarse points, faces)
        self._press_pos: tuple[int, int] | None = None
        self._last_hover = 0.0
        self._render_timer = QtCore.QTimer(self, singleShot=True, interval=0)
        self._render_timer.timeout.connect(plotter.render)
        self.photo = None               # viewer.camera_view.PhotoScene: the other hands, the backdrop, the camera view
        self._refine_timer = QtCore.QTimer(self, singleShot=True, interval=REFINE_AFTER_MS)
        self._refine_timer.timeout.connect(self._refine)
        # Count the pause from the end of the last coarse frame (a slow frame must not trigger refinement).
        self._render_timer.timeout.connect(lambda: self._refine_timer.start() if self._scrubbing else None)
        plotter.add_observer("MouseMoveEvent", self._on_mouse_move)
        plotter.add_observer("LeftButtonPressEvent", self._on_left_press)
        plotter.add_observer("LeftButtonReleaseEvent", self._on_left_release)

    def start(self, faces: np.ndarray, vertices: np.ndarray, joints: np.ndarray) -> None:
        """Create the scene with the neutral hand, draw the result actors once, observe the models."""
        from viewer.scene import HandScene

        self.scene = HandScene(self.plotter, faces, vertices)
        m = self.model
        m.hand.events.vertices.connect(self._on_hand)
        m.result_state.events.result.connect(self._on_result)
        m.display.events.connect(self._on_display)
        m.trajectory.events.step.connect(self._on_scrub)
        m.mask.events.hidden.connect(self._on_pose_source)
        m.completion.events.source.connect(self._on_new_source)
        for name in ("result", "vertices", "live_joints", "iteration", "selected"):
            getattr(m.completion.events, name).connect(self.render_pose)
        from viewer.camera_view import PhotoScene

        self.photo = PhotoScene(self.plotter, self.model)
        self.plotter.installEventFilter(self)   # resizes keep the camera view lined up
        self._warm_up(vertices, joints)

    # -- frames ---------------------------------------------------------------------------------------
    def request_render(self) -> None:
        """Render once the event loop is idle: many state changes in a row (live updates, a dragged
        slider) cost one frame, and queued engine updates never pile up renders."""
        if not self._render_timer.isActive():
            self._render_timer.start()

    def engine_idle(self) -> None:
        """The image engine has nothing running: a result that arrived without anti-aliasing gets it now."""
        if self._arriving:
            self._refine_timer.start()

    def still_frame(self) -> None:
        """Draw the current state at full detail now (screenshots)."""
        self._refine_timer.stop()
        self._refine()
        self.plotter.render()

    def view(self, direction: str = "front") -> None:
        """'front' / 'side' / 'top' (framing the hands), or 'camera': through the photo's camera, the photo
        behind the hands (issue 26; orbit away to see the hypotheses' depth spread)."""
        if self.scene is None:
            return
        if direction == "camera":
            if not self.photo.camera_view(on=True):
                self.message.emit("camera view: shown once a photo's result is there", 4000)
            self.request_render()
            return
        self.photo.camera_view(on=False)
        self.scene.view(direction)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QtCore.QEvent.Type.Resize and self.photo is not None and self.photo.camera_on:
            QtCore.QTimer.singleShot(0, self._follow_resize)   # once the view has its new size
        return super().eventFilter(obj, event)

    def _follow_resize(self) -> None:
        if self.photo.follow_resize():
            self.plotter.render()

    def _refine(self) -> None:
        if self._scrubbing:
            self._scrubbing = self._arriving = False
            self.render_image()
        elif self._arriving:          # same data: only the anti-aliasing pass is added
            self._arriving = False
            if self.scene is not None:
                self.scene.set_fast(False)
            self.request_render()

    def _warm_up(self, verts: np.ndarray, joints: np.ndarray) -> None:
        """Draw the result's actors once before any result (cloud, aggregate, skeleton, shrunk to a dot at
        the hand's centre), then hide them: the first frame of the first result otherwise builds their
        buffers and shaders on the GUI thread (~100 ms in llvmpipe, against ~50 ms for later results)."""
        centre = verts.mean(0)
        dot = centre + (verts - centre) * 1e-3
        self.scene.set_cloud(*self._coarse(np.repeat(dot[None], self.model.run_settings.n, 0)))
        self.scene.set_aggregate(dot)
        self.scene.set_skeleton(centre + (joints - centre) * 1e-3)
        self.scene.show_hypotheses(True)
        # other hands of a photo too (issue 26: creating three of them took ~40 ms of the first result)
        self.photo.others.show([(i, dot, self.scene.faces, np.zeros(3)) for i in (1, 2, 3)])
        for fast in (True, False):     # a result's first frame is drawn without FXAA, the refined one with it
            self.scene.set_fast(fast)
            self.plotter.render()
        self.scene.show_hypotheses(False)
        self.photo.others.hide()
        self.request_render()

    def _coarse(self, meshes: np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None, bool]:
        """Arguments of `scene.set_cloud` for a mesh cloud drawn at a coarser level (core): the cloud level
        for still frames; while the user scrubs the trajectory, a coarser level drawn as points."""
        from core.hypotheses import coarse_meshes

        level = SCRUB_LEVEL if self._scrubbing else CLOUD_LEVEL
        key = (id(meshes), level)           # the arrays are held by the result / frames while cached
        if key not in self._coarse_cache:   # each trajectory step once per level (~2 ms for 50 meshes)
            self._coarse_cache[key] = (meshes, *coarse_meshes(meshes, level))
        _, pts, faces = self._coarse_cache[key]
        return pts, "mesh", faces, self._scrubbing

    # -- model events -----------------------------------------------------------------------------------
    def _on_hand(self, vertices: np.ndarray) -> None:
        self.scene.show_hand(vertices)
        self.scene.show_hypotheses(False)
        self.request_render()

    def _on_result(self, result) -> None:
        self._coarse_cache.clear()
        self._arriving = result is not None
        self._show_image()

    def _show_image(self) -> None:
        """An image result newly in view: drawn and framed (one coalesced frame)."""
        if self.model.result_state.result is not None and self.model.display.view == "image":
            self.render_image()                          # requests one coalesced frame
            if not self.photo.camera_view(on=self.photo.camera_on):
                self.scene.view("front", render=False)   # so the camera move does not render another

    def _on_display(self, info) -> None:
        if info.signal.name != "view":
            self.render_image()
            return
        if self.model.display.view == "image":
            self.scene.set_joint_markers(None)
            self.scene.set_see_through(False)
            self._show_image()
        else:
            self._on_new_source()

    def _on_scrub(self) -> None:
        """The position moved within the same trajectory: drawn at the scrubbing level of detail."""
        self._scrubbing = True
        self._refine_timer.start()
        self.render_image()

    def _on_new_source(self) -> None:
        """A new pose to complete (or the pose view again): drawn and framed."""
        self._on_pose_source()
        if self.model.display.view == "pose" and self.model.completion.source is not None:
            self.scene.view("front", render=False)

    def _on_pose_source(self) -> None:
        """The pose being completed or its mask changed: new joint markers, then the pose."""
        c = self.model.completion
        if self.model.display.view != "pose" or c.source is None:
            return
        self.scene.set_joint_markers(c.source.joints, self.model.mask.hidden)
        self.render_pose()

    # -- drawing ----------------------------------------------------------------------------------------
    def render_image(self) -> None:
        """The image result: a trajectory step, or the result in the display mode."""
        m, scene = self.model, self.scene
        r = m.result_state.result
        if r is None or m.display.view != "image" or scene is None:
            return
        sel = m.display.selected(m.result_state.best)
        (meshes, aggregate), t = m.display.meshes(r), m.trajectory
        joint_hyps, agg_joints = m.display.skeletons(r)     # the refined ones after a refinement
        scene.show_hand(None)
        scene.set_fast(self._scrubbing or self._arriving)
        if t.frames and not t.at_result:
            _, kind, pts = t.frames[t.step]
            if kind == "mesh":
                scene.set_cloud(*self._coarse(pts))
            else:
                scene.set_cloud(pts, kind, points_only=self._scrubbing)
            scene.set_aggregate(None)
            scene.set_skeleton(None)
        else:
            mode = m.display.mode
            if mode == "all":
                if meshes is not None:
                    scene.set_cloud(*self._coarse(meshes))
                else:
                    scene.set_cloud(joint_hyps, "joints", points_only=self._scrubbing)
            else:
                scene.hide_cloud()
            if mode in ("all", "aggregate"):
                from core.hypotheses import per_point_spread

                spread = per_point_spread(meshes) if (meshes is not None and m.display.color_by_spread) else None
                scene.set_aggregate(aggregate, spread)
                scene.set_skeleton(agg_joints if mode == "aggregate" else joint_hyps[sel])
            else:
                scene.set_aggregate(meshes[sel] if meshes is not None else None)
                scene.set_skeleton(joint_hyps[sel])
        self._place_hands(r)
        self.request_render()

    def _place_hands(self, r) -> None:
        """Every hand of the photo in the camera frame (issue 26): the selected one's actors at its own
        translation and in its colour, the others drawn by `photo`."""
        from viewer.camera_view import hand_colour

        self.scene.set_offset(self.photo.draw(r))
        actor = self.scene.aggregate_actor
        if actor is not None and not self.model.display.color_by_spread:
            actor.GetProperty().SetColor(*hand_colour(self.model.image_state.chosen))

    def render_pose(self) -> None:
        """The pose being completed: its hand (see-through) before a run, else the completions' cloud and
        the highlighted one."""
        m, scene = self.model, self.scene
        c = m.completion
        if m.display.view != "pose" or scene is None or c.source is None:
            return
        scene.set_fast(False)          # pose mode has no scrub level of detail: always anti-aliased
        scene.set_see_through(True)
        scene.set_offset(None)         # root-relative, without the photo
        self.photo.leave()
        joints = c.display_joints()
        if joints is None:
            scene.hide_cloud()
            scene.set_aggregate(None)
            scene.set_skeleton(None)
            scene.show_hand(c.source.vertices)
        else:
            sel = min(c.selected, len(joints) - 1)
            scene.show_hand(None)
            if c.final and c.vertices is not None:
                scene.set_cloud(*self._coarse(c.vertices))
                scene.set_aggregate(c.vertices[sel])
            else:
                scene.set_cloud(joints, "joints")
                scene.set_aggregate(None)
            scene.set_skeleton(joints[sel])
        if scene.aggregate_actor is not None:      # the image view colours it by hand
            from viewer.scene import SKIN

            scene.aggregate_actor.GetProperty().SetColor(*SKIN)
        self.request_render()

    # -- picking / hover --------------------------------------------------------------------------------
    def _on_mouse_move(self, _obj, _event) -> None:
        now = time.perf_counter()
        if self.scene is None or self.model.display.view != "image" or now - self._last_hover < HOVER_EVERY_S:
            return
        self._last_hover = now
        x, y = self.plotter.iren.GetEventPosition()
        k = self.scene.pick_hypothesis(x, y)
        err = self.model.result_state.reprojection_px
        if k is not None and err is not None and k < len(err):
            text = f"hypothesis #{k}: reprojection error {err[k]:.1f} px"
            self.plotter.setToolTip(text)
            self.message.emit(text, 2000)

    def _on_left_press(self, _obj, _event) -> None:
        self._press_pos = self.plotter.iren.GetEventPosition()

    def _on_left_release(self, _obj, _event) -> None:
        """A click (press and release without dragging) toggles a joint (pose view) or picks a hypothesis."""
        x, y = self.plotter.iren.GetEventPosition()
        if self.scene is None or self._press_pos is None or abs(x - self._press_pos[0]) + abs(y - self._press_pos[1]) > 4:
            return
        self.click_at(x, y)

    def click_at(self, x: int, y: int) -> None:
        """Handle a click at VTK display pixel (x, y)."""
        m = self.model
        if m.display.view == "pose":
            j = self.scene.pick_joint(x, y)
            if j is not None:
                from core.joints import JOINT_NAMES

                m.mask.toggle(j)
                state = "hidden" if m.mask.hidden[j] else "visible"
                self.message.emit(f"joint {j} ({JOINT_NAMES[j]}) {state}", 3000)
            return
        hand = self.photo.pick(x, y)
        if hand is not None:          # another hand of the photo: it becomes the selected one
            self.hand_picked.emit(hand)
            return
        k = self.scene.pick_hypothesis(x, y)
        if k is not None:
            m.display.update(index=k)
