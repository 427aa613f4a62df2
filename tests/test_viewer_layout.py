"""The first window as a new user sees it (Xvfb, 1600×1000 screen): a usable image panel whose hint fits,
the bundled sample one click away, the DPoser dock in front when a completion runs, old saved layouts
ignored, and menus / shortcuts / help all from one table."""
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

pytest.importorskip("pytestqt")


def visible_width(widget: QtWidgets.QWidget) -> int:
    return widget.visibleRegion().boundingRect().width()


def in_front(dock: QtWidgets.QDockWidget) -> bool:
    """A tabbed dock behind another stays 'visible' to Qt but is moved off screen: nothing of it shows."""
    return not dock.visibleRegion().isEmpty()


def test_first_window_gives_the_image_panel_a_fair_share_and_its_hint_fits(window):
    panel, hint = window.image_panel, window.image_panel.hint
    width = window.width()
    assert panel.width() >= 0.25 * width and visible_width(panel) == panel.width()
    view = window.plotter
    assert view.width() >= 0.35 * width                               # the 3D view keeps the largest part
    assert window.docks["settings"].width() <= 0.3 * width            # the settings column is not 480 px wide
    # The hint is shown in full: each line fits the label, the wrapped text fits its height.
    assert hint.isVisible() and "Drop a photo of a hand here" in hint.text()
    metrics = hint.fontMetrics()
    for line in ("Drop a photo of a hand here", "(or File ▸ Open…)", "Open the sample photo"):
        assert metrics.horizontalAdvance(line) <= hint.width()
    assert hint.heightForWidth(hint.width()) <= hint.height()
    assert hint.geometry().right() <= panel.width() and hint.geometry().left() >= 0
    # What the panel shows: light text pixels on the dark background, none cut at the panel's edges.
    img = panel.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, :3 * img.width()]
    arr = arr.reshape(img.height(), img.width(), 3)
    text = arr.max(-1) > 120
    cols = np.flatnonzero(text.any(0))
    assert text.sum() > 200 and cols.min() > 4 and cols.max() < img.width() - 5


def test_the_sample_photo_is_one_click_away(window, qtbot):
    from core.paths import SAMPLE_IMAGE

    titles = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Open &sample image" in titles
    with qtbot.waitSignal(window.runs.busy_changed, timeout=120_000, check_params_cb=lambda busy: not busy):
        window.image_panel.hint.linkActivated.emit("sample")      # the link in the empty image panel
        assert window.image_runs.running_path == str(SAMPLE_IMAGE)
    assert window.last_error is None, window.last_error
    assert window.model.image_state.path == str(SAMPLE_IMAGE)
    assert not window.image_panel.hint.isVisible()                # the photo replaces the hint
    window.image_runs.running_path = None
    window.qactions["sample"].trigger()                            # File ▸ Open sample image
    assert window.image_runs.running_path == str(SAMPLE_IMAGE)
    window.cancel_runs()


def test_a_completion_brings_the_dposer_dock_to_the_front(window, qtbot, pose_npz):
    docks = window.docks
    docks["settings"].raise_()              # as at first start (earlier tests may have saved another layout)
    qtbot.waitUntil(lambda: in_front(docks["settings"]) and not in_front(docks["dposer"]), timeout=5000)
    assert window.open_path(str(pose_npz))
    window.model.mask.set(np.isin(np.arange(21), (4, 8, 12)))
    window.model.completion_settings.iters = 20
    with qtbot.waitSignal(window.prior_runs.busy_changed, timeout=120_000, check_params_cb=lambda busy: not busy):
        assert window.complete()
        qtbot.waitUntil(lambda: in_front(docks["dposer"]) and not in_front(docks["settings"]), timeout=5000)
    assert window.last_error is None, window.last_error
    assert visible_width(window.dposer_panel.complete_button) > 0


def test_a_layout_saved_by_the_old_version_is_ignored(qtbot, tmp_path):
    """The first version saved `saveState()` (version 0) with the image panel squeezed; the new window opens
    with its own layout and keeps the other settings; a corrupt layout does not stop it either."""
    from viewer.app import qt_environment

    qt_environment()
    from viewer.main_window import MainWindow

    path = str(tmp_path / "settings.ini")
    old = QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    probe = QtWidgets.QMainWindow()
    for name, area in (("dock_image", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
                       ("dock_settings", QtCore.Qt.DockWidgetArea.RightDockWidgetArea)):
        dock = QtWidgets.QDockWidget(name, probe)
        dock.setObjectName(name)
        dock.setWidget(QtWidgets.QLabel("x"))
        probe.addDockWidget(area, dock)
    probe.resize(1280, 820)
    probe.show()
    qtbot.waitExposed(probe)
    probe.resizeDocks([probe.findChild(QtWidgets.QDockWidget, "dock_image")], [120], QtCore.Qt.Orientation.Horizontal)
    old.setValue("state", probe.saveState())          # version 0, as the first version saved it
    old.setValue("engine/n", 33)
    old.sync()
    probe.close()
    for state in (None, b"\x00garbage"):
        settings = QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
        if state is not None:
            settings.setValue("state", QtCore.QByteArray(state))
        w = MainWindow(settings=settings)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        assert w.image_panel.width() >= 0.25 * w.width()
        assert w.model.run_settings.n == 33 and w.settings_panel.n.value() == 33
        assert all(in_front(d) for name, d in w.docks.items() if name != "dposer")
        w.close()


def test_a_layout_saved_by_this_version_is_restored(qtbot, tmp_path):
    from viewer.main_window import MainWindow

    path = str(tmp_path / "settings.ini")
    first = MainWindow(settings=QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.docks["hypotheses"].close()
    first.close()
    second = MainWindow(settings=QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert not second.docks["hypotheses"].isVisible() and in_front(second.docks["image"])
    second.close()


def test_menus_shortcuts_and_help_come_from_one_table(window, qtbot):
    from viewer.actions import ACTIONS, shortcut_lines

    menu_actions = [a for m in window.menuBar().actions() if m.menu() for a in m.menu().actions()]
    with_keys = [a for a in menu_actions + window.actions() if not a.shortcut().isEmpty()]
    help_text = "\n".join(f"{k} {v}" for k, v in shortcut_lines())
    native = QtGui.QKeySequence.SequenceFormat.NativeText
    for act in with_keys:                                  # every shortcut a QAction has is in the help
        assert act.shortcut().toString(native) in help_text, act.text()
    assert {a.id for a in ACTIONS if a.run and not a.keys} <= set(window.qactions) | {"recent"}
    assert len({a.id for a in ACTIONS}) == len(ACTIONS)
    # The help dialog shows the table's lines.
    window.qactions["shortcuts"].trigger()
    box = window.findChild(QtWidgets.QMessageBox, "shortcuts_dialog")
    qtbot.waitUntil(box.isVisible, timeout=5000)
    assert "Ctrl+E" in box.text() and "play / pause the denoising" in box.text() and "Click a joint" in box.text()
    box.close()
    # A table shortcut works: G shows the aggregate only.
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_G)
    assert window.model.display.mode == "aggregate" and window.display_panel.mode.currentText() == "aggregate"


def test_scripted_complete_options_show_in_the_dock_and_bring_it_to_the_front(window, qtbot, pose_npz):
    """`pose-viewer POSE --mask … --complete …` goes through `apply_dposer_options` and `complete()`: the
    options land in the models, the DPoser dock shows them, no re-run is scheduled, and the dock comes to
    the front for the completion."""
    from viewer.app import apply_dposer_options, wait_for_run
    from viewer.launch import gui_parser

    args = gui_parser().parse_args([str(pose_npz), "--mask", "4,8,12", "--complete", "--prior", "l2",
                                    "--t-max", "0.3", "--t-min", "0.1", "-n", "3"])
    docks, panel = window.docks, window.dposer_panel
    docks["settings"].raise_()
    assert window.open_path(args.file)
    assert apply_dposer_options(window, args)
    s = window.model.completion_settings
    assert (s.n, s.prior, s.t_max, s.t_min) == (3, "l2", 0.3, 0.1)
    assert (panel.n.value(), panel.prior.currentText(), panel.t_max.value(), panel.t_min.value()) == (3, "l2", 0.3, 0.1)
    assert list(np.flatnonzero(window.model.mask.hidden)) == [4, 8, 12]
    assert not window.completion_runs.rerun_scheduled
    window.model.completion_settings.iters = 20
    assert window.complete() and wait_for_run(window, window.prior_runs)
    qtbot.waitUntil(lambda: in_front(docks["dposer"]) and not in_front(docks["settings"]), timeout=5000)
    assert window.model.completion.result.joints.shape[0] == 3
    t = window.model.completion.result.t_schedule
    assert t[0] == pytest.approx(0.3, abs=1e-6) and t[-1] == pytest.approx(0.1, abs=1e-6)
