"""The hand's side in a real window (Xvfb, issue 28): shown with its confidence and what decided it; the
key H and the toolbar action flip it and re-run with the side forced; the flip sticks through re-runs
with other settings and a new photo forgets it."""
import numpy as np
import pytest
from PySide6 import QtCore

from core.paths import SAMPLE_IMAGE
from core.side import other
from tests.window_runs import fast_engine, wait_image_run

TIMEOUT = 180_000


@pytest.fixture
def small_run(window):
    return fast_engine(window, 12, 4)


def wait_run(window, qtbot, start) -> None:
    wait_image_run(window, qtbot, start, TIMEOUT)


def shown(window) -> tuple[str, str]:
    """The side as the window shows it: the image panel's box label and the status bar."""
    return window.image_panel.side_text, window.statusBar().currentMessage()


def test_flip_reruns_with_the_other_side_and_sticks(small_run, qtbot, tmp_path):
    w = small_run
    wait_run(w, qtbot, lambda: w.open_path(str(SAMPLE_IMAGE)))
    r0 = w.model.result_state.result
    side0 = r0.handedness
    assert r0.side is not None and r0.side.decided_by != "forced"
    label0, status0 = shown(w)
    assert label0 == r0.side.describe() and label0.startswith(f"{side0} hand, ") and "%" in label0
    assert label0 in status0

    # The key flips it: a new run, the other side, forced; the shown text follows.
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    wait_run(w, qtbot, lambda: qtbot.keyClick(w, QtCore.Qt.Key.Key_H))
    r1 = w.model.result_state.result
    assert r1 is not r0 and r1.handedness == other(side0) and r1.side.decided_by == "forced"
    assert not np.allclose(r1.joints, r0.joints, atol=1e-4)          # lifted as the other hand
    label1, status1 = shown(w)
    assert label1 == f"{other(side0)} hand (forced)" and label1 != label0 and label1 in status1
    assert w.model.image_state.forced_sides == {w.model.image_state.chosen: other(side0)}

    # A re-run with other settings keeps the user's side; the saved result records it.
    w.settings_panel.seed.setValue(7)
    wait_run(w, qtbot, w.settings_panel.rerun.click)
    r2 = w.model.result_state.result
    assert r2 is not r1 and (r2.handedness, r2.side.decided_by) == (other(side0), "forced")
    assert w.exporter.export_npz(str(tmp_path / "result.npz"))
    with np.load(tmp_path / "result.npz") as z:
        assert str(z["side"]) == other(side0) and str(z["side_decided_by"]) == "forced"

    # The toolbar action flips it back.
    assert w.qactions["flip_side"] in w.findChild(QtCore.QObject, "main_toolbar").actions()
    wait_run(w, qtbot, w.qactions["flip_side"].trigger)
    assert (w.model.result_state.result.handedness, w.model.result_state.result.side.decided_by) == (side0, "forced")

    # A new photo forgets the flips: the side is decided again.
    wait_run(w, qtbot, lambda: w.open_path(str(SAMPLE_IMAGE)))
    r3 = w.model.result_state.result
    assert r3.handedness == side0 and r3.side.decided_by != "forced"
    assert w.model.image_state.forced_sides == {} and shown(w)[0] == label0


def test_flip_without_a_result_is_a_clear_error(window):
    assert window.image_runs.flip_side() is False
    assert "open a photo first" in window.last_error
