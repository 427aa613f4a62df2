"""The first window in a real Qt window under Xvfb (pytest-xvfb): it draws a hand and opens pose files."""
import numpy as np
import pytest

pytest.importorskip("pytestqt")


def grab(window) -> np.ndarray:
    window.plotter.render()
    return window.plotter.screenshot()


def test_window_shows_a_hand_not_just_background(window, qtbot):
    img = grab(window)
    background = img[2, 2].astype(int)
    differs = np.abs(img.astype(int) - background).sum(-1) > 30
    assert differs.mean() > 0.03  # the hand covers a visible part of the view
    skin = (img[..., 0].astype(int) > img[..., 2].astype(int) + 20) & (img[..., 0] > 120)
    assert skin.sum() > 500  # and it is skin-coloured
    # the device label comes from the image engine process, which may still be loading when the window is ready
    qtbot.waitUntil(lambda: "CPU" in window.device_label.text() or "CUDA" in window.device_label.text(),
                    timeout=120_000)


def test_result_actors_are_built_at_start_and_hidden(window):
    """The hypothesis actors are drawn once at start-up (so a first result does not build them on the GUI
    thread) and then hidden: the window shows the neutral hand alone."""
    s = window.view3d.scene
    n = window.settings_panel.n.value()
    assert s.cloud_actor is not None and s.aggregate_actor is not None and s.skeleton_actor is not None
    assert s.cloud.n_points == n * s.points_per_hypothesis
    assert not any(a.GetVisibility() for a in (s.cloud_actor, s.aggregate_actor, s.skeleton_actor))
    assert s.actor.GetVisibility()


def test_opening_a_pose_changes_mesh_and_pixels(window, pose_npz):
    before_pts = np.array(window.view3d.scene.mesh.points)
    before_img = grab(window)
    assert window.open_path(str(pose_npz))
    after_pts = np.array(window.view3d.scene.mesh.points)
    assert np.abs(after_pts - before_pts).max() > 0.01
    assert window.model.hand.source == pose_npz.name
    after_img = grab(window)
    assert np.abs(after_img.astype(int) - before_img.astype(int)).sum(-1).astype(bool).mean() > 0.01


def test_bad_file_keeps_the_current_hand(window, tmp_path, pose_npz):
    assert window.open_path(str(pose_npz))
    shown = np.array(window.view3d.scene.mesh.points)
    bad = tmp_path / "bad.npz"
    np.savez(bad, pose=np.full(45, np.nan))
    assert not window.open_path(str(bad))
    assert "NaN" in window.last_error
    assert "NaN" in window.statusBar().currentMessage()
    assert np.array_equal(np.array(window.view3d.scene.mesh.points), shown)
    assert not window.open_path(str(tmp_path / "photo.gif"))
    assert np.array_equal(np.array(window.view3d.scene.mesh.points), shown)


def test_drop_a_pose_file(window, qtbot, pose_npz):
    from PySide6 import QtCore, QtGui

    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(pose_npz))])
    pos = QtCore.QPointF(50, 50)
    drop = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
                            QtCore.Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    assert window.model.hand.source == pose_npz.name


def test_export_and_screenshot(window, tmp_path):
    import trimesh

    assert window.exporter.export_mesh(str(tmp_path / "hand.ply"))
    assert len(trimesh.load(tmp_path / "hand.ply", process=False).vertices) == 1609
    window.exporter.save_screenshot(str(tmp_path / "shot.png"))
    assert (tmp_path / "shot.png").stat().st_size > 1000


def test_a_change_renders_the_scene_once_and_shows_it(window, qtbot, pose_npz):
    """One VTK render per change: the paint that follows a finished render only copies the frame
    (viewer/interactor.py); a progress-bar repaint does not render the 3D scene again."""
    renders = []
    tag = window.plotter.render_window.AddObserver("EndEvent", lambda *_: renders.append(1))
    try:
        window.progress.setVisible(True)
        qtbot.wait(200)
        renders.clear()
        shown = window.plotter.frames_shown
        window.view3d.request_render()
        qtbot.waitUntil(lambda: window.plotter.frames_shown > shown, timeout=3000)
        qtbot.wait(100)
        assert len(renders) == 1
        renders.clear()
        window.progress.setValue(window.progress.value() + 1)   # a synchronous repaint of the window
        qtbot.wait(100)
        assert renders == []
    finally:
        window.plotter.render_window.RemoveObserver(tag)
        window.progress.setVisible(False)


def test_3d_view_interaction_is_trackball_camera_with_arrow_zoom(window, qtbot):
    """The 3D view behaves as under pyvista: trackball camera (a left drag orbits the camera, the scene
    stays), Up / Down zoom in / out; frames are counted."""
    from PySide6 import QtCore
    from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

    view = window.plotter
    assert isinstance(view.iren.GetInteractorStyle(), vtkInteractorStyleTrackballCamera)
    cam = view.renderer.GetActiveCamera()
    window.view3d.view("front")
    angle, position, focus = cam.GetViewAngle(), np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Up)
    assert cam.GetViewAngle() < angle - 1
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    assert cam.GetViewAngle() > angle
    centre = QtCore.QPoint(view.width() // 2, view.height() // 2)
    shown = view.frames_shown
    qtbot.mousePress(view, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    for dx in (20, 40, 60):
        qtbot.mouseMove(view, centre + QtCore.QPoint(dx, 0))
    qtbot.mouseRelease(view, QtCore.Qt.MouseButton.LeftButton, pos=centre + QtCore.QPoint(60, 0))
    assert np.linalg.norm(np.array(cam.GetPosition()) - position) > 1e-3   # the camera orbited
    assert np.allclose(cam.GetFocalPoint(), focus)                          # around the same point
    assert view.frames_shown > shown                                        # each drag step drew a frame
