"""The result's hand-model parameters in a real window (Xvfb): a hypothesis saved as a pose file (issue 25)."""
import numpy as np

from tests.test_viewer_hypotheses import IMAGE, open_and_wait, small_run  # noqa: F401 - the fixture


def test_a_hypothesis_is_saved_as_a_pose_file_that_opens(small_run, qtbot, tmp_path):
    from core.io.poses import load_pose_file

    window = small_run
    assert "save_pose" in window.qactions and window.qactions["save_pose"].text().startswith("Save &hypothesis")
    assert not window.exporter.save_hypothesis_pose(str(tmp_path / "none.npz"))     # no result yet
    assert "no hand-model parameters" in window.last_error and not (tmp_path / "none.npz").exists()
    open_and_wait(window, qtbot, IMAGE)
    assert window.last_error is None, window.last_error
    r = window.model.result_state.result
    assert r.params is not None
    window.model.display.update(mode="single", index=3)
    path = tmp_path / "hyp3.npz"
    assert window.exporter.save_hypothesis_pose(str(path)), window.model.status.message
    assert "hypothesis #3" in window.model.status.message
    pf = load_pose_file(path)
    assert pf.model == "anny" and pf.pose.shape == (45,) and pf.side == r.handedness
    assert np.allclose(pf.pose, r.params.hyp_pose[3], atol=1e-6)
    assert not np.allclose(pf.pose, r.params.hyp_pose[0])                           # hypothesis 3, not 0
    window.model.display.update(mode="aggregate")
    agg = tmp_path / "agg.npz"
    assert window.exporter.save_hypothesis_pose(str(agg)) and "aggregate" in window.model.status.message
    assert np.allclose(load_pose_file(agg).pose, r.params.pose, atol=1e-6)


def test_from_result_starts_dposer_from_the_selected_hypothesis_parameters(small_run, qtbot):
    from PySide6 import QtWidgets

    window = small_run
    open_and_wait(window, qtbot, IMAGE)
    r = window.model.result_state.result
    assert r.params is not None
    window.model.display.update(mode="single", index=3)
    button = next(b for b in window.dposer_panel.findChildren(QtWidgets.QPushButton) if b.text() == "From result")
    button.click()
    assert window.last_error is None, window.last_error
    src = window.model.completion.source
    assert "hypothesis #3" in src.label and "Anny parameters" in src.label
    assert np.allclose(src.pose, r.params.hyp_pose[3], atol=1e-6)
    assert np.allclose(src.global_orient, r.params.hyp_global_orient[3], atol=1e-6)
    assert src.vertices is not None and src.vertices.shape[1] == 3 and src.joints.shape == (21, 3)
    assert np.allclose(window.model.hand.vertices, src.vertices)          # the pose view shows its mesh
    assert window.model.display.view == "pose"
    # DPoser completes it as a pose (40 iterations, fingertips hidden).
    window.dposer_panel.iters.setValue(40)
    window.completion_runs.cancel_scheduled_rerun()
    window.dposer_panel.apply_preset("fingertips")
    with qtbot.waitSignal(window.prior_runs.busy_changed, timeout=120_000, check_params_cb=lambda b: not b):
        assert window.complete()
    assert window.last_error is None, window.last_error
    c = window.model.completion.result
    assert c is not None and c.pose.shape[1:] == (45,)


def test_the_parametric_anny_mesh_toggle_swaps_the_drawn_meshes(small_run, qtbot, tmp_path):
    window = small_run
    open_and_wait(window, qtbot, IMAGE)
    r = window.model.result_state.result
    assert r.params is not None and r.params.hyp_vertices is not None
    assert np.abs(r.params.vertices - r.vertices).max() > 1e-4           # two different meshes to tell apart
    scene, panel = window.view3d.scene, window.display_panel
    window.model.display.update(mode="aggregate")
    assert np.allclose(np.asarray(scene.aggregate.points), r.vertices, atol=1e-6)
    panel.param_mesh.click()                                               # the Hypotheses dock's checkbox
    assert window.model.display.param_mesh
    assert np.allclose(np.asarray(scene.aggregate.points), r.params.vertices, atol=1e-6)
    window.model.display.update(mode="single", index=3)
    assert np.allclose(np.asarray(scene.aggregate.points), r.params.hyp_vertices[3], atol=1e-6)
    assert np.allclose(window.exporter.displayed_mesh(), r.params.hyp_vertices[3])   # export follows
    panel.param_mesh.click()
    assert not window.model.display.param_mesh
    assert np.allclose(np.asarray(scene.aggregate.points), r.vertex_hypotheses[3], atol=1e-6)
