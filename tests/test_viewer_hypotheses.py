"""Image → hypotheses in a real window (Xvfb): cloud, image overlay, display modes, denoising steps, export."""
import pathlib

import numpy as np
import pytest
from core.paths import SAMPLE_IMAGE
from tests.window_runs import fast_engine

DATA = pathlib.Path(__file__).parent / "data"
IMAGE = SAMPLE_IMAGE


@pytest.fixture
def small_run(window):
    return fast_engine(window, 20, 5)


def open_and_wait(window, qtbot, path):
    with qtbot.waitSignal(window.runs.busy_changed, timeout=120_000, check_params_cb=lambda busy: not busy):
        assert window.open_path(str(path))


def grab(window) -> np.ndarray:
    window.plotter.render()
    return window.plotter.screenshot().astype(int)


def test_image_gives_a_cloud_of_hypotheses(small_run, qtbot):
    window = small_run
    open_and_wait(small_run, qtbot, IMAGE)
    assert window.last_error is None, window.last_error
    r = window.model.result_state.result
    n = r.joint_hypotheses.shape[0]
    assert n == 20
    assert window.view3d.scene.cloud is not None and window.view3d.scene.cloud_actor.GetVisibility()
    assert window.view3d.scene.cloud.n_points == n * window.view3d.scene.points_per_hypothesis
    hyps = np.asarray(window.view3d.scene.cloud.points).reshape(n, -1, 3)
    assert np.ptp(hyps, axis=0).max() > 1e-4          # the hypotheses differ
    # Image panel shows the photo with keypoints and the reprojection.
    assert window.image_panel.keypoints is not None and window.image_panel.reprojected is not None
    panel = window.image_panel.grab().toImage()
    assert panel.width() > 100
    assert "hypotheses" in window.display_panel.info.text()
    assert window.timing_label.text().endswith(window.image_runs.engine_kind) and window.image_runs.engine_kind.startswith("cascade")


def test_result_is_shown_before_its_mesh_trajectory(small_run, qtbot):
    """The engine sends the result as soon as its meshes exist, then the decoded mesh steps of the
    denoising trajectory: they are appended to the slider and the result on screen stays."""
    window = small_run
    seen = []
    window.runs.partial.connect(lambda est: seen.append(
        (window.model.result_state.result, [k for _, k, _ in window.model.trajectory.frames], window.view3d.scene.cloud_actor.GetVisibility(),
         window.plotter.renderer.GetUseFXAA())))
    open_and_wait(window, qtbot, IMAGE)
    assert window.last_error is None, window.last_error
    assert len(seen) == 1
    early_result, early_kinds, cloud_visible, early_fxaa = seen[0]
    assert not early_fxaa      # the result's first frame skips anti-aliasing, added once the engine is idle
    qtbot.waitUntil(lambda: window.plotter.renderer.GetUseFXAA(), timeout=5_000)
    assert cloud_visible and early_kinds and set(early_kinds) == {"joints"}     # meshes shown, slider: joints
    kinds = [k for _, k, _ in window.model.trajectory.frames]
    assert window.model.result_state.result is early_result                          # not replaced
    assert kinds[:len(early_kinds)] == early_kinds and kinds.count("mesh") == 5   # 5 DDIM steps appended
    t = window.model.trajectory
    assert t.n_steps == len(kinds) and t.step == t.n_steps - 1
    assert window.denoise_panel.slider.maximum() == t.n_steps - 1
    assert window.denoise_panel.label.text() == "mesh 5/5 (result)"


def test_cancel_after_the_result_keeps_it_without_mesh_steps(small_run, qtbot):
    window = small_run
    def cancel(_est) -> None:
        window.cancel_runs()

    window.runs.partial.connect(cancel)   # cancel while the trajectory is decoded
    with qtbot.waitSignal(window.runs.cancelled, timeout=120_000):
        assert window.open_path(str(IMAGE))
    assert window.model.result_state.result is not None and window.view3d.scene.cloud_actor.GetVisibility()
    assert {k for _, k, _ in window.model.trajectory.frames} == {"joints"}
    assert "without the mesh steps" in window.statusBar().currentMessage()
    window.runs.wait(30_000)
    window.runs.partial.disconnect(cancel)
    open_and_wait(window, qtbot, IMAGE)                          # the window still runs images after it
    assert "mesh" in {k for _, k, _ in window.model.trajectory.frames}


def test_display_modes_and_selection(small_run, qtbot):
    window = small_run
    open_and_wait(small_run, qtbot, IMAGE)
    all_img = grab(window)
    window.model.display.update(mode="best")
    assert not window.view3d.scene.cloud_actor.GetVisibility()
    best = window.model.result_state.best
    err = window.model.result_state.reprojection_px
    assert err[best] == err.min()
    sk = np.asarray(window.view3d.scene.skeleton.points)
    assert np.allclose(sk, window.model.result_state.result.joint_hypotheses[best], atol=1e-6)
    assert np.abs(grab(window) - all_img).sum() > 0
    window.model.display.update(mode="single", index=3)
    assert np.allclose(np.asarray(window.view3d.scene.skeleton.points), window.model.result_state.result.joint_hypotheses[3],
                       atol=1e-6)
    assert window.display_panel.index.value() == 3


def test_colour_by_spread_shows_viridis_and_its_colour_bar(small_run, qtbot):
    """'Colour aggregate by spread': the aggregate mesh takes viridis colours over its per-vertex spread (mm)
    and the colour bar shows the same range; turned off, the skin colour and no bar."""
    from core.hypotheses import per_point_spread

    window = small_run
    open_and_wait(small_run, qtbot, IMAGE)
    window.model.display.update(mode="aggregate")
    scene = window.view3d.scene
    skin = grab(window)
    window.model.display.update(color_by_spread=True)
    coloured = grab(window)
    meshes = window.model.result_state.result.vertex_hypotheses
    spread_mm = per_point_spread(meshes) * 1000
    mapper = scene.aggregate_actor.GetMapper()
    assert mapper.GetScalarVisibility() and np.allclose(mapper.GetScalarRange(), (spread_mm.min(), spread_mm.max()),
                                                        rtol=1e-4)
    assert scene.scalar_bar.GetVisibility() and scene.scalar_bar.GetTitle() == "spread (mm)"
    lut = scene.scalar_bar.GetLookupTable()
    assert np.allclose(lut.GetTableValue(0)[:3], (0.267, 0.005, 0.329), atol=0.01)      # viridis' ends
    assert np.allclose(lut.GetTableValue(255)[:3], (0.993, 0.906, 0.144), atol=0.01)

    def skin_px(img):
        return ((img[..., 0] > img[..., 2] + 20) & (img[..., 0] > 120)).sum()

    def viridis_px(img):   # purple / blue / teal / green: more blue or green than red
        return ((img[..., 2] > img[..., 0] + 20) | (img[..., 1] > img[..., 0] + 40)).sum()

    assert skin_px(skin) > 500 and skin_px(coloured) < skin_px(skin) / 5
    assert viridis_px(coloured) > viridis_px(skin) + 500
    window.model.display.update(color_by_spread=False)
    assert not scene.scalar_bar.GetVisibility() and not scene.aggregate_actor.GetMapper().GetScalarVisibility()
    assert skin_px(grab(window)) > skin_px(skin) / 2


def test_denoising_slider_steps_through_the_trajectory(small_run, qtbot):
    window = small_run
    open_and_wait(small_run, qtbot, IMAGE)
    t = window.model.trajectory
    assert t.n_steps >= 6 and t.step == t.n_steps - 1
    kinds = [kind for _, kind, _ in window.model.trajectory.frames]
    last_joints = max(i for i, k in enumerate(kinds) if k == "joints")
    t.set_step(last_joints)
    joints_result = np.asarray(window.view3d.scene.cloud.points).copy()
    t.set_step(0)
    noise = np.asarray(window.view3d.scene.cloud.points).copy()
    assert np.abs(noise - joints_result).max() > 1e-3
    assert np.ptp(noise, axis=0).max() > np.ptp(joints_result, axis=0).max()   # step 0 is noise: wider
    # Scrubbing the joint steps draws the skeletons as points (bone lines cost llvmpipe ~8 ms a frame),
    # then the bones come back when the step stays put.
    assert window.view3d.scene.cloud.GetNumberOfLines() == 0 and window.view3d.scene.cloud.GetNumberOfVerts() == noise.shape[0]
    qtbot.waitUntil(lambda: window.view3d.scene.cloud.GetNumberOfLines() > 0, timeout=5_000)
    assert np.allclose(np.asarray(window.view3d.scene.cloud.points), noise)
    if "mesh" in kinds:   # stage 2: decoded x̂0 meshes at each step, then the result
        t.set_step(kinds.index("mesh"))
        first_mesh = np.asarray(window.view3d.scene.cloud.points).copy()
        t.set_step(t.n_steps - 1)
        assert first_mesh.shape == np.asarray(window.view3d.scene.cloud.points).shape
        assert np.abs(first_mesh - np.asarray(window.view3d.scene.cloud.points)).max() > 1e-4
        # Level of detail: while scrubbing the cloud is coarser, then redrawn in full when the step stays.
        from viewer.scene_controller import CLOUD_LEVEL, SCRUB_LEVEL

        from core.mesh.sampling import load_sampling

        sizes = load_sampling().num_vertices
        cloud = lambda: window.view3d.scene.cloud  # noqa: E731
        assert window.view3d.scene.points_per_hypothesis == sizes[SCRUB_LEVEL] < sizes[CLOUD_LEVEL]
        # drawn as vertices (one vertex cell per point, no triangles)
        assert cloud().GetNumberOfPolys() == 0 and cloud().GetNumberOfVerts() == cloud().n_points
        renderer = window.plotter.renderer
        assert not renderer.GetUseFXAA()            # scrub frames skip anti-aliasing …
        qtbot.waitUntil(lambda: window.view3d.scene.points_per_hypothesis == sizes[CLOUD_LEVEL], timeout=5_000)
        assert cloud().GetNumberOfPolys() > 0 and cloud().GetNumberOfVerts() == 0
        assert window.view3d.scene.cloud_actor.GetProperty().GetRepresentationAsString() == "Surface"
        assert renderer.GetUseFXAA()                # … the still frame gets it
        assert window.plotter.render_window.GetMultiSamples() == 0   # no MSAA: its cost in llvmpipe
        assert window.view3d.scene.cloud.n_points == 20 * sizes[CLOUD_LEVEL]
    t.set_step(0)
    qtbot.keyClick(window, "."); assert t.step == 1
    qtbot.keyClick(window, ","); assert t.step == 0
    window.denoise_panel.set_playing(True)
    qtbot.waitUntil(lambda: t.step == t.n_steps - 1, timeout=10_000)
    assert "result" in window.denoise_panel.label.text()


def test_no_hand_keeps_the_previous_result(small_run, qtbot, tmp_path):
    window = small_run
    import cv2

    open_and_wait(small_run, qtbot, IMAGE)
    before = window.model.result_state.result
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    open_and_wait(small_run, qtbot, blank)
    assert window.last_error and "hand" in window.last_error.lower()
    assert window.model.result_state.result is before
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    open_and_wait(small_run, qtbot, bad)
    assert "image" in window.last_error.lower()
    assert window.model.result_state.result is before


def test_export_result_and_screenshot(small_run, qtbot, tmp_path):
    window = small_run
    open_and_wait(small_run, qtbot, IMAGE)
    assert window.exporter.export_npz(str(tmp_path / "result.npz"))
    with np.load(tmp_path / "result.npz") as z:
        assert z["joint_hypotheses"].shape == (20, 21, 3) and z["K"].shape == (3, 3)
    window.exporter.save_screenshot(str(tmp_path / "shot.png"))
    assert (tmp_path / "shot.png").stat().st_size > 1000


def test_cancel_keeps_the_previous_result(small_run, qtbot):
    window = small_run
    open_and_wait(window, qtbot, IMAGE)
    before = window.model.result_state.result
    window.settings_panel.n.setValue(200)
    window.settings_panel.steps.setValue(50)
    window.open_path(str(IMAGE))
    assert window.runs.busy and window.cancel_button.isVisibleTo(window)
    window.cancel_button.click()
    assert not window.runs.busy
    assert window.runs.wait(30_000)                 # the worker stopped
    qtbot.wait(100)
    assert window.model.result_state.result is before     # the cancelled run's result never arrives
    assert "Cancelled" in window.statusBar().currentMessage()


def test_dropping_a_non_image_shows_an_error(small_run, qtbot, tmp_path):
    from PySide6 import QtCore, QtGui

    window = small_run
    open_and_wait(window, qtbot, IMAGE)
    before = window.model.result_state.result
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(text))])
    window.dropEvent(QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.DropAction.CopyAction, mime,
                                      QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier))
    assert "unsupported file type" in window.last_error
    assert window.model.result_state.result is before
    open_and_wait(window, qtbot, IMAGE)             # still usable
    assert window.last_error is None


def test_scripted_image_screenshot(tmp_path):
    import os
    import subprocess
    import sys

    from PIL import Image

    out = tmp_path / "window.png"
    r = subprocess.run([sys.executable, "-m", "viewer.launch", str(IMAGE), "--screenshot", str(out)],
                       capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert (img.min(-1) > 200).mean() > 0.05          # light Qt panels: the whole window, not only the 3D view
    assert (np.abs(img - img[5, 5]).sum(-1) > 30).mean() > 0.05
    r = subprocess.run([sys.executable, "-m", "viewer.launch", str(tmp_path / "missing.jpg"), "--screenshot",
                        str(tmp_path / "x.png")], capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert r.returncode == 2 and "error:" in r.stderr


def test_image_overlay_repaints_only_when_it_changes(qtbot, monkeypatch):
    from viewer.image_panel import ImagePanel

    panel = ImagePanel()
    qtbot.addWidget(panel)
    calls = []
    monkeypatch.setattr(panel, "update", lambda: calls.append(1))
    kp = np.arange(42, dtype=float).reshape(21, 2)
    panel.set_overlay(boxes=[np.array([0, 0, 10, 10])], keypoints=kp, reprojected=kp + 1)
    panel.set_overlay(boxes=[np.array([0, 0, 10, 10])], keypoints=kp.copy(), reprojected=kp + 1)   # same: no repaint
    assert len(calls) == 1
    panel.set_overlay(boxes=[np.array([0, 0, 10, 10])], keypoints=kp, reprojected=kp + 1, highlight=kp)
    panel.set_overlay(boxes=[np.array([0, 0, 10, 10])], keypoints=kp, reprojected=kp + 2, highlight=kp)
    assert len(calls) == 3 and np.allclose(panel.reprojected, kp + 2)


def test_side_tag_of_a_hand_at_the_right_edge_stays_whole_in_the_panel(qtbot):
    """The chosen hand's side is written on a tag above its box; a box at the photo's right edge puts the tag
    against the panel's edge, where it must move in rather than lose the end of its text."""
    from PySide6 import QtGui

    from viewer.image_panel import ImagePanel

    panel = ImagePanel()
    qtbot.addWidget(panel)
    panel.resize(300, 200)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_image(np.full((200, 300, 3), 90, np.uint8))      # fills the panel: image px = widget px
    text = "right hand, 100 % (label)"
    panel.side_text = text
    panel.set_overlay(boxes=[np.array([250.0, 100.0, 295.0, 150.0])], chosen=0)
    img = panel.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    shot = np.frombuffer(img.constBits(), np.uint8, img.bytesPerLine() * img.height())
    shot = shot.reshape(img.height(), img.bytesPerLine())[:, :3 * img.width()].reshape(img.height(), img.width(), 3)
    tag_text = (shot[..., 0] > 200) & (shot[..., 1] > 150) & (shot[..., 2] < 120)     # yellow on the dark tag
    cols = np.flatnonzero(tag_text[:100].any(0))
    assert cols.size and cols[-1] < img.width() - 1
    assert cols[-1] - cols[0] > 0.85 * panel.fontMetrics().horizontalAdvance(text)    # the whole text
