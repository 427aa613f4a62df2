"""Every hand of a photo in one scene, selecting a hand, the camera view over the photo and drawing a box
around a hand, in a real window (Xvfb, issue 26). The photo: the shipped sample and its mirror tiled 2 × 2
(four hands)."""
import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets

from core.geometry import project
from core.io.images import load_image
from core.paths import SAMPLE_IMAGE
from viewer.camera_view import image_to_viewport, translation
from tests.window_runs import fast_engine, wait_image_run

TIMEOUT = 300_000


@pytest.fixture
def four_hands(tmp_path) -> tuple[str, np.ndarray]:
    img = load_image(str(SAMPLE_IMAGE))
    top = np.concatenate([img, img[:, ::-1]], 1)
    tiled = np.ascontiguousarray(np.concatenate([top, top[:, ::-1]], 0))
    path = tmp_path / "four_hands.png"
    Image.fromarray(tiled).save(path)
    return str(path), tiled


@pytest.fixture
def small_run(window):
    return fast_engine(window, 8, 3, weights="mesh_ldm")


def wait_run(window, qtbot, start) -> None:
    wait_image_run(window, qtbot, start, TIMEOUT)


def grab(window) -> np.ndarray:
    window.view3d.still_frame()
    return window.plotter.screenshot().astype(int)


def to_top_left(window, xy: np.ndarray) -> np.ndarray:
    """VTK display pixels (origin bottom-left) → screenshot pixels (origin top-left)."""
    h = window.plotter.renderer.GetSize()[1]
    return np.column_stack([xy[:, 0], h - 1 - xy[:, 1]])


def send_mouse(widget, kind, pos: QtCore.QPointF) -> None:
    button = QtCore.Qt.MouseButton.LeftButton
    buttons = QtCore.Qt.MouseButton.NoButton if kind == QtCore.QEvent.Type.MouseButtonRelease else button
    event = QtGui.QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons,
                              QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, event)


def test_every_hand_together_selection_and_the_camera_view(small_run, qtbot, four_hands):
    w = small_run
    path, photo = four_hands
    wait_run(w, qtbot, lambda: w.open_path(path))
    m, scene, ps = w.model, w.view3d.scene, w.view3d.photo
    hands = m.hands.results
    assert len(m.image_state.detections) == 4 and len(hands) == 4 and all(h is not None for h in hands)
    chosen = m.image_state.chosen
    assert m.result_state.result is hands[chosen]
    # The others are drawn, each at its own translation; the selected hand's actors at its own.
    assert sorted(ps.others.indices) == sorted(set(range(4)) - {chosen})
    for actor, i in zip(ps.others.actors, ps.others.indices):
        assert actor.GetVisibility() and np.allclose(actor.GetPosition(), translation(hands[i]))
    assert np.allclose(scene.aggregate_actor.GetPosition(), translation(hands[chosen]))
    centres = np.array([project((h.vertices + translation(h)).mean(0, keepdims=True), h.K)[0] for h in hands])
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(4) for j in range(i)) > 150

    # Camera view (the toolbar button): the camera at the photo's, the photo behind the hands.
    assert w.qactions["camera"] in w.findChild(QtCore.QObject, "main_toolbar").actions()
    w.qactions["camera"].trigger()
    assert ps.camera_on and ps.backdrop.visible and ps.unmoved()
    shot = grab(w)
    p = ps.params
    # A vertex of every hand lands where K puts it on the photo the view shows.
    for h in hands:
        X = h.vertices[::97] + translation(h)
        shown = to_top_left(w, scene.display_coords(X))
        expected = image_to_viewport(project(X, h.K), p)
        assert np.abs(shown - expected).max() < 1.5
    # A resized view keeps it lined up (the camera view follows until the user moves the camera).
    ren, before = w.plotter.renderer, w.plotter.renderer.GetSize()
    w.resize(w.width() - 260, w.height() + 40)
    qtbot.waitUntil(lambda: ren.GetSize() != before and ps.params["viewport"] == tuple(ren.GetSize()), timeout=10_000)
    for h in hands:
        X = h.vertices[::97] + translation(h)
        expected = image_to_viewport(project(X, h.K), ps.params)
        assert np.abs(to_top_left(w, scene.display_coords(X)) - expected).max() < 1.5
    w.resize(w.width() + 260, w.height() - 40)
    qtbot.waitUntil(lambda: ren.GetSize() == before and ps.params["viewport"] == tuple(before), timeout=10_000)
    # The backdrop is the photo, the right way up: away from the hands the view shows the photo's pixels.
    H, W = photo.shape[:2]
    uv = np.array([[W * 0.5, H * 0.08], [W * 0.5, H * 0.5], [W * 0.5, H * 0.92], [W * 0.08, H * 0.5],
                   [W * 0.92, H * 0.5], [W * 0.3, H * 0.1]])
    xy = np.round(image_to_viewport(uv, p)).astype(int)
    seen = shot[xy[:, 1], xy[:, 0]]
    truth = photo[uv[:, 1].astype(int), uv[:, 0].astype(int)].astype(int)
    assert np.abs(seen - truth).mean() < 20, (seen, truth)
    flipped = photo[(H - 1 - uv[:, 1]).astype(int), uv[:, 0].astype(int)].astype(int)
    assert np.abs(seen - flipped).mean() > np.abs(seen - truth).mean() + 5     # not upside down
    # Each hand's mesh covers the photo around its projected centre: drawn flat magenta (whatever the hand
    # colours), the meshes are exactly there and nowhere between the tiles.
    scene.cloud_actor.SetVisibility(False)
    scene.skeleton_actor.SetVisibility(False)
    meshes = [scene.aggregate_actor, *[a for a in ps.others.actors if a.GetVisibility()]]
    for actor in meshes:
        actor.GetProperty().SetColor(1.0, 0.0, 1.0)
        actor.GetProperty().LightingOff()
    marked = grab(w)
    magenta = (marked[..., 0] > 200) & (marked[..., 1] < 60) & (marked[..., 2] > 200)
    palms = np.array([project(h.mesh_joints[[0, 5, 9, 13, 17]].mean(0, keepdims=True) + translation(h), h.K)[0]
                      for h in hands])        # the palm's centre: inside every hand's silhouette
    for c in np.round(image_to_viewport(palms, p)).astype(int):
        assert magenta[c[1] - 3:c[1] + 4, c[0] - 3:c[0] + 4].mean() > 0.8
    far = np.round(image_to_viewport(np.array([[W * 0.5, H * 0.5]]), p)).astype(int)[0]   # between the tiles
    assert not magenta[far[1] - 10:far[1] + 11, far[0] - 10:far[0] + 11].any()
    for actor in meshes:
        actor.GetProperty().LightingOn()
    w.view3d.render_image()

    # Selecting another hand by its box in the image panel: shown at once, no engine run.
    other = (chosen + 1) % 4
    box = m.image_state.detections[other].box
    centre = w.image_panel.image_to_widget(np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]))
    qtbot.mouseClick(w.image_panel, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(*np.round(centre).astype(int)))
    assert m.image_state.chosen == other and m.result_state.result is hands[other] and not w.runs.busy
    assert m.trajectory.frames and w.denoise_panel.slider.maximum() == m.trajectory.n_steps - 1
    assert np.allclose(scene.aggregate_actor.GetPosition(), translation(hands[other]))
    assert chosen in ps.others.indices and other not in ps.others.indices
    assert f"hand {other + 1} of 4" in w.statusBar().currentMessage()
    # ... and by clicking its mesh in the 3D view.
    third = (other + 1) % 4
    k = ps.others.indices.index(third)
    hit = scene.display_coords((hands[third].vertices + translation(hands[third])).mean(0, keepdims=True))[0]
    w.plotter.render()
    w.view3d.click_at(int(hit[0]), int(hit[1]))
    assert ps.others.actors[k] is not None and m.image_state.chosen == third
    assert m.result_state.result is hands[third]

    # Orbit away: the photo stays behind the hands in 3D; the key C goes back to the camera view.
    cam = w.plotter.renderer.GetActiveCamera()
    cam.Azimuth(35)
    w.plotter.render()
    assert not ps.unmoved() and ps.backdrop.visible
    assert w.qactions["camera"].shortcut().toString() == "C"
    w.activateWindow()     # window shortcuts need the active window (Xvfb has no window manager to give it)
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is w, timeout=5_000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_C)
    assert ps.unmoved()


def test_a_box_drawn_around_a_hand_is_estimated(small_run, qtbot, four_hands):
    w = small_run
    path, photo = four_hands
    wait_run(w, qtbot, lambda: w.open_path(path))
    m = w.model
    n0 = len(m.image_state.detections)
    target = m.image_state.detections[2]
    x0, y0 = target.keypoints2d.min(0) - 25
    x1, y1 = target.keypoints2d.max(0) + 25
    panel = w.image_panel
    a = panel.image_to_widget(np.array([x0, y0]))
    b = panel.image_to_widget(np.array([x1, y1]))
    send_mouse(panel, QtCore.QEvent.Type.MouseButtonPress, QtCore.QPointF(*a))
    send_mouse(panel, QtCore.QEvent.Type.MouseMove, QtCore.QPointF(*((a + b) / 2)))
    assert panel.drag_rect is not None                            # the box is drawn while dragging
    with qtbot.waitSignal(w.runs.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy):
        send_mouse(panel, QtCore.QEvent.Type.MouseMove, QtCore.QPointF(*b))
        send_mouse(panel, QtCore.QEvent.Type.MouseButtonRelease, QtCore.QPointF(*b))
    assert w.last_error is None, w.last_error
    assert panel.drag_rect is None
    dets = m.image_state.detections
    assert len(dets) == n0 + 1 and dets[-1].extra.get("source") == "box"
    assert m.image_state.chosen == n0 and m.result_state.result is m.hands.results[n0]
    # the landmarks in the box are that hand's
    size = np.ptp(target.keypoints2d, axis=0).max()
    assert np.linalg.norm(dets[-1].keypoints2d - target.keypoints2d, axis=1).mean() < 0.15 * size
    # the cascade ran for it (meshes), the other hands' results are kept
    r = m.result_state.result
    assert r.vertex_hypotheses is not None and r.vertex_hypotheses.shape[0] == 8
    assert all(h is not None for h in m.hands.results)
    assert len(w.view3d.photo.others.indices) == n0
    # a box with no hand in it is one clear error and keeps the result
    with qtbot.waitSignal(w.runs.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy):
        assert w.image_runs.add_box((0, 0, 40, 40)) is True
    assert w.last_error and "no hand in the box" in w.last_error
    assert m.result_state.result is r


def test_every_hand_setting_finds_the_hand_the_palm_detector_misses(small_run, qtbot, tmp_path):
    """A photo with the sample hand and a small copy of it turned 90° far to the right: the palm detector on
    the whole photo finds the big one only; ticking Every hand (Settings dock) looks again with the crop
    search too and estimates both; unticking goes back to the palm detector's hand. The choice is saved."""
    w = small_run
    img = load_image(str(SAMPLE_IMAGE))
    photo = np.empty((512, 768, 3), np.uint8)
    photo[:] = img[0, 0]
    photo[128:384, :256] = img
    photo[224:304, 648:728] = cv2.resize(np.ascontiguousarray(np.rot90(img)), (80, 80), interpolation=cv2.INTER_AREA)
    path = tmp_path / "small_hand.png"
    Image.fromarray(photo).save(path)
    wait_run(w, qtbot, lambda: w.open_path(str(path)))
    assert len(w.model.image_state.detections) == 1
    box = w.settings_panel.all_hands
    assert box.isVisible() and not box.isChecked()
    try:
        wait_run(w, qtbot, lambda: box.setChecked(True))
        dets = w.model.image_state.detections
        assert w.model.run_settings.all_hands and len(dets) == 2
        assert sorted(d.extra.get("source") for d in dets) == ["palm", "search"]
        small = next(d for d in dets if d.extra.get("source") == "search")
        assert 600 < small.keypoints2d[:, 0].mean() < 768                   # the small hand, where it is
        assert all(r is not None for r in w.model.hands.results)              # both estimated
        w._save_settings()
        assert str(w.qsettings.value("engine/all_hands")).lower() == "true"
        wait_run(w, qtbot, lambda: box.setChecked(False))
        assert len(w.model.image_state.detections) == 1
    finally:   # the tests share one settings folder: leave the default behind whatever happened
        with w.model.run_settings.events.all_hands.blocked():
            w.model.run_settings.all_hands = False
