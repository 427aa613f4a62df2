"""DPoser in a real window (Xvfb): click joints to mask them, complete, re-run on schedule changes, scrub."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6 import QtCore


@pytest.fixture
def pose_window(window, pose_npz):
    from core.paths import MODELS_DIR

    if not (MODELS_DIR / "dposer_hand.safetensors").exists():
        pytest.fail("DPoser weights are missing: resources/models/dposer_hand.safetensors")
    assert window.open_path(str(pose_npz))
    window.dposer_panel.iters.setValue(40)
    window.completion_runs.cancel_scheduled_rerun()
    return window


def click_joint(window, qtbot, j: int) -> None:
    """A real mouse click on the 3D widget at the joint's projected screen position."""
    window.plotter.render()
    x, y = window.view3d.scene.display_coords(window.view3d.scene.marker_joints[j:j + 1])[0]
    widget = window.plotter
    ratio = widget.devicePixelRatioF()
    height = widget.height() * ratio
    pos = QtCore.QPoint(int(round(x / ratio)), int(round((height - y) / ratio)))
    qtbot.mouseClick(widget, QtCore.Qt.MouseButton.LeftButton, pos=pos)


def complete_and_wait(window, qtbot):
    with qtbot.waitSignal(window.prior_runs.busy_changed, timeout=120_000, check_params_cb=lambda b: not b):
        assert window.complete()
    assert window.last_error is None, window.last_error


def test_clicking_a_joint_toggles_it(pose_window, qtbot):
    w = pose_window
    assert not w.model.mask.hidden[8]
    w.view3d.scene.set_fast(True)                   # as if a scrub had left the image view un-smoothed
    w.view3d.render_pose()
    assert w.plotter.renderer.GetUseFXAA()  # pose frames are always anti-aliased
    click_joint(w, qtbot, 8)
    assert w.model.mask.hidden[8] and w.model.mask.hidden.sum() == 1
    assert w.dposer_panel.joint_list.item(8).checkState() == QtCore.Qt.CheckState.Checked
    assert w.view3d.scene.markers_hidden_actor is not None
    click_joint(w, qtbot, 8)
    assert not w.model.mask.hidden.any()
    w.dposer_panel.joint_list.item(12).setCheckState(QtCore.Qt.CheckState.Checked)
    assert w.model.mask.hidden[12]
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    qtbot.keyClick(w, "z", QtCore.Qt.KeyboardModifier.ControlModifier)
    assert not w.model.mask.hidden[12]


def test_complete_keeps_visible_joints_and_varies_hidden_ones(pose_window, qtbot):
    w = pose_window
    for j in (4, 8, 12):
        click_joint(w, qtbot, j)
    assert w.model.mask.hidden.sum() == 3
    complete_and_wait(w, qtbot)
    r = w.model.completion.result
    s = w.dposer_panel.n.value()
    assert r.joints.shape == (s, 21, 3) and w.model.completion.vertices.shape[0] == s
    obs = w.model.completion.source.joints
    visible = ~w.model.mask.hidden
    assert np.abs(r.joints[:, visible] - obs[visible]).max() < 2e-3   # visible joints stay put (< 2 mm)
    assert np.ptp(r.joints[:, w.model.mask.hidden], axis=0).max() > 1e-3    # hypotheses differ where hidden
    assert w.view3d.scene.cloud_actor.GetVisibility()
    assert w.view3d.scene.cloud.n_points == s * w.view3d.scene.points_per_hypothesis


def test_changing_t_max_reruns_and_changes_the_schedule(pose_window, qtbot):
    w = pose_window
    w.dposer_panel.apply_preset("fingertips")
    complete_and_wait(w, qtbot)
    first = w.model.completion.result
    assert first.t_schedule[0] == pytest.approx(w.dposer_panel.t_max.value(), abs=1e-6)
    with qtbot.waitSignal(w.prior_runs.finished, timeout=120_000):
        w.dposer_panel.t_max.setValue(0.4)   # re-runs by itself (debounced)
    second = w.model.completion.result
    assert second is not first
    assert second.t_schedule[0] == pytest.approx(0.4, abs=1e-6)
    assert w.dposer_panel.plot.t_max == pytest.approx(0.4)
    assert not np.allclose(second.joints, first.joints)


def test_dragging_the_plot_handle_changes_t_max(pose_window, qtbot):
    w = pose_window
    plot = w.dposer_panel.plot
    w.dposer_panel.raise_()
    plot.resize(300, 180)
    h = plot.handle_positions()["t_max"]
    target = plot.to_widget(0, 0.5)
    qtbot.mousePress(plot, QtCore.Qt.MouseButton.LeftButton, pos=h.toPoint())
    ev_pos = QtCore.QPointF(h.x(), target.y())
    from PySide6 import QtGui

    move = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, ev_pos, plot.mapToGlobal(ev_pos),
                             QtCore.Qt.MouseButton.NoButton, QtCore.Qt.MouseButton.LeftButton,
                             QtCore.Qt.KeyboardModifier.NoModifier)
    QtCore.QCoreApplication.sendEvent(plot, move)
    qtbot.mouseRelease(plot, QtCore.Qt.MouseButton.LeftButton, pos=ev_pos.toPoint())
    assert w.dposer_panel.t_max.value() == pytest.approx(0.5, abs=0.02)


def test_scrubber_changes_the_displayed_pose(pose_window, qtbot):
    w = pose_window
    w.dposer_panel.apply_preset("finger:index")
    complete_and_wait(w, qtbot)
    final = np.asarray(w.view3d.scene.skeleton.points).copy()
    w.dposer_panel.iteration.setValue(0)
    start = np.asarray(w.view3d.scene.skeleton.points).copy()
    assert np.abs(final - start).max() > 1e-3
    assert w.dposer_panel.iteration_label.text().startswith("0/")
    assert w.dposer_panel.plot.iteration == 0


def test_export_a_completion(pose_window, qtbot, tmp_path):
    import trimesh

    from core.io.poses import load_pose_file

    w = pose_window
    w.dposer_panel.apply_preset("fingertips")
    complete_and_wait(w, qtbot)
    w.dposer_panel.hypothesis.setValue(2)
    assert w.exporter.export_completion(str(tmp_path / "c.ply"))
    assert len(trimesh.load(tmp_path / "c.ply", process=False).vertices) == 1609
    assert w.exporter.export_completion(str(tmp_path / "c.npz"))
    pf = load_pose_file(tmp_path / "c.npz")
    assert np.allclose(pf.pose, w.model.completion.result.pose[2])


def test_scripted_completion_screenshot(tmp_path, pose_npz):
    out = tmp_path / "shot.png"
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "viewer.launch", str(pose_npz), "--mask", "4,8,12,16,20",
                        "--complete", "--schedule", "truncated", "--t-max", "0.2", "-n", "5",
                        "--screenshot", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    differs = np.abs(img - img[2, 2]).sum(-1) > 30
    assert differs.mean() > 0.01, "the screenshot shows only the background"


def test_completion_runs_in_a_child_process_with_live_results_cancel_and_shutdown(pose_window, qtbot):
    """The optimisation runs in the DPoser process (not a thread of the window): partial results and
    progress arrive live, the result lands in the panel, cancel is quick, the process serves later
    jobs, failures reach the user, and closing the window ends the process."""
    import time

    w = pose_window
    runner = w.prior_runs
    qtbot.waitUntil(lambda: runner.child_ready, timeout=120_000)   # pre-warmed once the hand was ready
    pid, proc = runner.pid, runner.process
    assert pid is not None and pid != os.getpid() and proc.is_alive()
    assert runner.startup_error == ""

    w.dposer_panel.apply_preset("fingertips")
    partials, progress = [], []
    runner.partial.connect(partials.append)
    runner.progress.connect(lambda done, total, label: progress.append((done, total, label)))
    complete_and_wait(w, qtbot)
    s = w.dposer_panel.n.value()
    assert len(partials) >= 1 and all(p[1].shape == (s, 21, 3) for p in partials)
    assert [p[0] for p in partials] == sorted(p[0] for p in partials)
    assert progress[-1] == (40, 40, "completing")
    first = w.model.completion.result
    assert first.joints.shape == (s, 21, 3) and w.model.completion.vertices.shape == (s, 1609, 3)
    assert w.dposer_panel.hypothesis.maximum() == s - 1
    assert w.statusBar().currentMessage().startswith(f"{s} completions")
    assert w.timing_label.text().startswith("DPoser")
    assert w.view3d.scene.cloud_actor.GetVisibility()

    # Cancel a long run: the window is idle at once, the process stops well within a second,
    # the previous result stays.
    w.dposer_panel.iters.setValue(20_000)
    w.completion_runs.cancel_scheduled_rerun()
    with qtbot.waitSignal(runner.progress, timeout=60_000):
        assert w.complete()
    assert runner.busy
    t0 = time.perf_counter()
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        w.cancel_runs()
    assert not runner.busy and not w.progress.isVisible()
    assert runner.wait(1000), "the DPoser process did not stop within 1 s of cancel"
    assert time.perf_counter() - t0 < 1.0
    assert w.model.completion.result is first

    # The same process serves the next job; a failing job reaches the user as one line.
    w.dposer_panel.iters.setValue(40)
    w.completion_runs.cancel_scheduled_rerun()
    complete_and_wait(w, qtbot)
    assert w.model.completion.result is not first and runner.pid == pid
    from viewer.state import PoseSource

    w.model.completion.set_source(PoseSource("broken", w.model.completion.source.joints, np.zeros(7, np.float32),
                                       np.zeros(3, np.float32)))
    with qtbot.waitSignal(runner.failed, timeout=60_000) as failed:
        assert w.complete()
    message, tb = failed.args
    assert message and "\n" not in message and "Traceback" in tb
    assert w.last_error and not runner.busy

    w.close()
    assert not proc.is_alive() and runner.pid is None


def test_a_crashed_dposer_process_is_reported_and_replaced(pose_window, qtbot):
    import signal

    w = pose_window
    runner = w.prior_runs
    qtbot.waitUntil(lambda: runner.child_ready, timeout=120_000)
    old = runner.pid
    w.dposer_panel.apply_preset("fingertips")
    w.dposer_panel.iters.setValue(20_000)
    w.completion_runs.cancel_scheduled_rerun()
    with qtbot.waitSignal(runner.progress, timeout=60_000):
        assert w.complete()
    with qtbot.waitSignal(runner.failed, timeout=10_000) as failed:
        os.kill(old, signal.SIGKILL)
    assert "stopped unexpectedly" in failed.args[0] and not runner.busy
    assert "stopped unexpectedly" in w.last_error
    w.dposer_panel.iters.setValue(40)
    w.completion_runs.cancel_scheduled_rerun()
    complete_and_wait(w, qtbot)   # a fresh process
    assert runner.pid not in (None, old)
    assert w.model.completion.result.joints.shape[0] == w.dposer_panel.n.value()
