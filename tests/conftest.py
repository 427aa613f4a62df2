"""Shared fixtures: the Anny cache location, one Anny hand per session, Qt/VTK environment."""
from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkXOpenGLRenderWindow")
# Qt settings (QSettings) of the tests go to a throw-away folder, not the user's config.
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pose-viewer-test-config-")


@pytest.fixture(scope="session")
def anny_hand():
    from core.hand.anny_hand import AnnyHand

    return AnnyHand()


@pytest.fixture(scope="module")
def detector():
    """One MediaPipe hand detector per test module (closed at the module's end)."""
    from core.detector import HandDetector

    det = HandDetector()
    yield det
    det.close()


@pytest.fixture(scope="module")
def hand_image():
    """The shipped sample photo as RGB."""
    import cv2

    from core.paths import SAMPLE_IMAGE

    return cv2.cvtColor(cv2.imread(str(SAMPLE_IMAGE)), cv2.COLOR_BGR2RGB)


@pytest.fixture
def pose_npz(tmp_path):
    """A valid pose file with a sampled pose."""
    import numpy as np

    from core.pose_sampler import sample_poses

    path = tmp_path / "pose.npz"
    np.savez(path, model="anny", global_orient=np.array([0.1, 0.2, 0.3], np.float32),
             pose=sample_poses(1, 3)[0])
    return path


@pytest.fixture
def window(qtbot):
    """A real MainWindow under Xvfb; on teardown checks that no 3D view (VTK window), top-level widget or
    child process (the engine) leaked."""
    from viewer.app import qt_environment

    qt_environment()
    from PySide6 import QtWidgets

    from viewer.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.ready, timeout=120_000)
    yield w
    w.close()
    qtbot.wait(10)
    from viewer.interactor import OPEN_VIEWS

    assert w.plotter.closed
    assert w.plotter not in OPEN_VIEWS, "leaked VTK view"
    assert w.plotter.render_window is None, "the VTK window is still referenced"
    visible = [t for t in QtWidgets.QApplication.topLevelWidgets() if t.isVisible() and t is not w]
    assert not visible, f"leaked top-level widgets: {visible}"
    import multiprocessing

    assert w.prior_runs.pid is None, "the DPoser process was not shut down"
    assert w.runs.pid is None, "the image (cascade) process was not shut down"
    assert not multiprocessing.active_children(), f"leaked child processes: {multiprocessing.active_children()}"
