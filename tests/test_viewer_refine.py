"""The Refine button in a real window (Xvfb): DPoser refinement of the selected hand's hypotheses against its
2D keypoints (issue 25 item 3) — the meshes change, before / after switches without re-running, cancel leaves
everything as it was, a new photo clears it, the result .npz gets the refined keys."""
import numpy as np
import pytest
from core.paths import SAMPLE_IMAGE
from PySide6 import QtCore
from tests.window_runs import fast_engine, wait_image_run

N, STEPS = 8, 3      # a small, fast image run: the refinement's work scales with N


@pytest.fixture
def photo_window(window, qtbot):
    """The window with the sample photo's result shown (cascade: meshes and their parameters)."""
    fast_engine(window, N, STEPS)
    wait_image_run(window, qtbot, lambda: window.open_path(str(SAMPLE_IMAGE)), 120_000)
    assert window.model.result_state.result.params is not None
    return window


def shown(window) -> tuple[np.ndarray, np.ndarray]:
    """The displayed cloud's points and aggregate mesh's vertices (copies)."""
    scene = window.view3d.scene
    return np.asarray(scene.cloud.points).copy(), np.asarray(scene.aggregate.points).copy()


def click_refine(window, qtbot) -> None:
    qtbot.mouseClick(window.display_panel.refine_button, QtCore.Qt.MouseButton.LeftButton)


def refine_and_wait(window, qtbot, iters: int) -> None:
    window.display_panel.refine_iters.setValue(iters)
    with qtbot.waitSignal(window.prior_runs.busy_changed, timeout=120_000, check_params_cb=lambda busy: not busy):
        click_refine(window, qtbot)
        assert window.model.refine.running
        assert window.display_panel.refine_button.text() == "Cancel refinement"
    assert window.last_error is None, window.last_error


def test_refine_changes_the_meshes_and_before_after_switches_back(photo_window, qtbot, tmp_path):
    from core.prior.choices import DEFAULT_REFINE_ITERS
    from viewer.actions import shortcut_lines
    from viewer.state import RefineState

    window = photo_window
    assert RefineState().iters == DEFAULT_REFINE_ITERS       # the window's default is core's
    assert window.display_panel.refine_iters.value() == DEFAULT_REFINE_ITERS
    assert ("Ctrl+R", window.qactions["refine"].toolTip()[:1].lower() + window.qactions["refine"].toolTip()[1:]) \
        in shortcut_lines()
    assert not window.display_panel.refine_after.isEnabled()        # nothing to switch to yet
    r = window.model.result_state.result
    cloud0, agg0 = shown(window)
    progress = []
    window.prior_runs.progress.connect(lambda done, total, label: progress.append((done, total, label)))

    refine_and_wait(window, qtbot, 4)
    m = window.model
    assert not m.refine.running and window.display_panel.refine_button.text().startswith("Refine")
    assert progress and progress[-1] == (4, 4, "refining")
    outcome = m.refine.outcome_for(m.image_state.chosen, r)[1]
    assert m.display.refinement == (r, outcome) and m.display.refined
    assert outcome.hyp_vertices.shape == r.vertex_hypotheses.shape
    cloud1, agg1 = shown(window)
    assert cloud1.shape == cloud0.shape and np.abs(cloud1 - cloud0).max() > 1e-4     # the cloud moved
    assert np.allclose(agg1, outcome.vertices, atol=1e-6) and not np.allclose(agg1, agg0, atol=1e-4)
    ref = r.refined
    assert ref is outcome.refinement and ref.reprojection_px_after.mean() < ref.reprojection_px_before.mean()
    msg = window.statusBar().currentMessage()
    assert "→" in msg and f"{outcome.error_before:.1f} → {outcome.error_after:.1f} px" in msg, msg
    assert "→" in window.display_panel.refine_info.text()

    # Before / after: the original meshes come back, then the refined ones, without a run.
    assert window.display_panel.refine_after.isEnabled() and window.display_panel.refine_after.isChecked()
    window.display_panel.refine_after.click()
    assert not window.prior_runs.busy and not m.display.refined
    cloud_b, agg_b = shown(window)
    assert np.allclose(cloud_b, cloud0) and np.allclose(agg_b, agg0)
    window.qactions["before_after"].trigger()
    assert window.display_panel.refine_after.isChecked()
    cloud_a, agg_a = shown(window)
    assert np.allclose(cloud_a, cloud1) and np.allclose(agg_a, agg1)

    # The result .npz has the refinement; the exported displayed mesh is the refined aggregate.
    path = tmp_path / "result.npz"
    assert window.exporter.export_npz(str(path)), window.last_error
    with np.load(path) as z:
        assert z["refined_vertex_hypotheses"].shape == r.vertex_hypotheses.shape
        assert np.allclose(z["refined_reprojection_px_after"], ref.reprojection_px_after)
        assert int(z["refined_iters"]) == 4

    # DPoser's "From result" starts from the refined parameters of the selected hypothesis.
    m.display.update(mode="single", index=1)
    assert window.completion_runs.use("result"), window.last_error
    src = m.completion.source
    assert "refined" in src.label and np.allclose(src.pose, ref.params.hyp_pose[1], atol=1e-6)
    assert not np.allclose(src.pose, r.params.hyp_pose[1], atol=1e-4)
    # ... and so do "Save hypothesis as pose file" and "Export all hypotheses" (what is drawn is saved).
    pose_path = tmp_path / "hyp1.npz"
    assert window.exporter.save_hypothesis_pose(str(pose_path)), window.last_error
    with np.load(pose_path) as z:
        assert np.allclose(z["pose"], ref.params.hyp_pose[1], atol=1e-6)
    assert window.exporter.export_all(str(tmp_path / "all")), window.last_error
    obj = (tmp_path / "all" / "hypothesis_001.obj").read_text().splitlines()
    v = np.array([[float(x) for x in ln.split()[1:4]] for ln in obj if ln.startswith("v ")])
    assert np.allclose(v, outcome.hyp_vertices[1], atol=1e-5)
    m.display.update(mode="all")

    # A new photo (result) clears the refinement.
    wait_image_run(window, qtbot, lambda: window.open_path(str(SAMPLE_IMAGE)), 120_000)
    r2 = m.result_state.result
    assert r2 is not r and r2.refined is None
    assert m.display.refinement is None and m.refine.outcomes == {}
    assert not window.display_panel.refine_after.isEnabled() and window.display_panel.refine_info.text() == ""
    cloud2, agg2 = shown(window)
    assert np.allclose(agg2, r2.vertices, atol=1e-6)


def test_cancel_stops_a_refinement_and_changes_nothing(photo_window, qtbot):
    window = photo_window
    m = window.model
    r = m.result_state.result
    cloud0, agg0 = shown(window)
    window.display_panel.refine_iters.setValue(1000)       # long: cancelled well before its end
    with qtbot.waitSignal(window.prior_runs.progress, timeout=60_000,
                          check_params_cb=lambda done, total, label: label == "refining" and done >= 1):
        click_refine(window, qtbot)
    assert m.refine.running and window.progress.isVisible()
    with qtbot.waitSignal(window.prior_runs.cancelled, timeout=5_000):
        click_refine(window, qtbot)                        # the button is Cancel now
    assert not m.refine.running and not window.prior_runs.busy and not window.progress.isVisible()
    assert window.display_panel.refine_button.text().startswith("Refine")
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert window.prior_runs.wait(5_000), "the DPoser process did not stop after cancel"
    qtbot.wait(200)                                        # a late outcome of the cancelled run is ignored
    assert r.refined is None and m.refine.outcomes == {} and m.display.refinement is None
    cloud1, agg1 = shown(window)
    assert np.array_equal(cloud1, cloud0) and np.array_equal(agg1, agg0)
    assert window.last_error is None

    # The same process serves the next refinement.
    refine_and_wait(window, qtbot, 2)
    assert r.refined is not None


def test_a_refinement_belongs_to_the_hand_and_result_it_was_run_on():
    """Models only: hand 0's refinement is drawn for hand 0's result, not for another hand's or a new one."""
    from types import SimpleNamespace

    from viewer.state import DisplayState, RefineState

    meshes = np.zeros((2, 5, 3), np.float32)
    hand0, hand1, hand0_again = (SimpleNamespace(vertex_hypotheses=meshes, vertices=meshes[0], params=None,
                                                 joint_hypotheses=np.zeros((2, 21, 3)), mesh_joints=np.zeros((21, 3)))
                                 for _ in range(3))
    outcome = SimpleNamespace(hyp_vertices=meshes + 1, vertices=meshes[0] + 1, hyp_joints=np.ones((2, 21, 3)),
                              joints=np.ones((21, 3)))
    refine, display = RefineState(), DisplayState()
    refine.store(0, hand0, outcome)
    assert refine.outcome_for(0, hand0) == (hand0, outcome)
    assert refine.outcome_for(1, hand1) is None and refine.outcome_for(0, hand0_again) is None
    display.refinement = refine.outcome_for(0, hand0)
    assert display.meshes(hand0)[1] is outcome.vertices and display.skeletons(hand0)[1] is outcome.joints
    assert display.meshes(hand1)[1] is hand1.vertices                      # another hand: its own meshes
    display.refined = False                                               # before
    assert display.meshes(hand0)[1] is hand0.vertices
    refine.forget_replaced([hand0, hand1])
    assert 0 in refine.outcomes
    refine.forget_replaced([hand0_again, hand1])                         # hand 0 has a new result
    assert refine.outcomes == {}


def test_the_refinement_stays_with_the_hand_it_was_run_on(window, qtbot, tmp_path):
    """A photo with two hands (the sample and its mirror side by side): hand A's refinement is not drawn when
    hand B is selected, and comes back with hand A."""
    from PIL import Image

    from core.io.images import load_image

    img = load_image(str(SAMPLE_IMAGE))
    path = tmp_path / "two_hands.png"
    Image.fromarray(np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], 1))).save(path)
    fast_engine(window, N, STEPS, weights="mesh_ldm")
    wait_image_run(window, qtbot, lambda: window.open_path(str(path)), 300_000)
    m = window.model
    assert len(m.hands.estimated) == 2
    a = m.image_state.chosen
    b = 1 - a
    refine_and_wait(window, qtbot, 2)
    ra, rb = m.hands.results[a], m.hands.results[b]
    refined_agg = shown(window)[1]
    assert ra.refined is not None and m.display.refinement[0] is ra

    window.image_runs.choose_hand(b)              # hand B: its own meshes, nothing to switch
    assert m.result_state.result is rb and rb.refined is None
    assert m.display.refinement is None and not window.display_panel.refine_after.isEnabled()
    assert np.allclose(shown(window)[1], rb.vertices, atol=1e-6)
    others = window.view3d.photo.others                       # hand A, drawn as another hand: refined
    k = others.indices.index(a)
    assert np.allclose(np.asarray(others.meshes[k][1].points), refined_agg, atol=1e-6)

    window.image_runs.choose_hand(a)              # back to hand A: its refinement again
    assert m.display.refinement[0] is ra and window.display_panel.refine_after.isEnabled()
    assert np.allclose(shown(window)[1], refined_agg)
