"""Every command of the window in one table: the menus, the toolbar, the shortcuts and the
Help ▸ Keyboard shortcuts dialog are all built from `ACTIONS` (napari's app-model pattern, in small).

An entry runs `run(window)`. Menu entries become QActions (their shortcut included); `keys` entries are
playback keys handled by an application-wide event filter, so they work whatever widget has the focus
(as in aitviewer), except text and number fields; `menu=None` with no keys is a line of the help only.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

K = QtGui.QKeySequence.StandardKey
Key = QtCore.Qt.Key
MENUS = ("&File", "&Edit", "&View", "&Help")


@dataclass(frozen=True)
class Action:
    """One command: menu text, where it lives, how it is reached, what the help says."""

    id: str
    text: str
    run: Callable | None                       # run(window); None for help-only lines
    menu: str | None = None                    # one of MENUS, or None (toolbar / keys / help only)
    shortcut: str | K | None = None            # a QAction shortcut
    help: str = ""                             # the help line (and tooltip); empty: not in the help
    icon: str | None = None                    # a qtawesome fa5s icon name (viewer/icons.py)
    toolbar: bool = False
    keys: tuple[Key, ...] = ()                 # playback keys (event filter) instead of a shortcut
    key_text: str = ""                         # how the help names `keys` (or a mouse gesture)
    separator_before: bool = False


def _mode(mode: str) -> Callable:
    return lambda w: w.model.display.update(mode=mode)


def _step(delta: int) -> Callable:
    return lambda w: w.model.trajectory.advance(delta)


ACTIONS: tuple[Action, ...] = (
    Action("open", "&Open…", lambda w: w.open_dialog(), "&File", K.Open, "open an image or a pose file",
           "fa5s.folder-open", toolbar=True),
    Action("recent", "Open &recent", None, "&File"),   # the submenu of recent files (filled by the window)
    Action("sample", "Open &sample image", lambda w: w.open_sample(), "&File",
           help="open the bundled sample photo, to try the cascade", icon="fa5s.hand-paper"),
    Action("export", "&Export displayed mesh…", lambda w: w.exporter.export_mesh_dialog(), "&File", "Ctrl+E",
           "export the displayed mesh", "fa5s.file-export", toolbar=True, separator_before=True),
    Action("export_all", "Export &all hypotheses…", lambda w: w.exporter.export_all_dialog(), "&File",
           "Ctrl+Shift+E", "export all hypotheses"),
    Action("save_npz", "Save result .npz…", lambda w: w.exporter.export_npz_dialog(), "&File", "Ctrl+S",
           "save result.npz"),
    Action("save_pose", "Save &hypothesis as pose file…", lambda w: w.exporter.save_hypothesis_pose_dialog(),
           "&File", help="save the selected hypothesis (or the aggregate) as a pose .npz (pose-viewer, complete)"),
    Action("screenshot", "Save &screenshot…", lambda w: w.exporter.screenshot_dialog(), "&File", "Shift+S",
           "save a screenshot", "fa5s.camera", toolbar=True),
    Action("quit", "&Quit", lambda w: w.close(), "&File", K.Quit, "quit", separator_before=True),

    Action("undo", "&Undo mask change", lambda w: w.model.mask.undo(), "&Edit", K.Undo,
           "undo the last mask change", "fa5s.undo"),
    Action("fingertips", "Hide &fingertips", lambda w: w.dposer_panel.apply_preset("fingertips"), "&Edit"),
    Action("random_mask", "Hide &random 60%", lambda w: w.dposer_panel.apply_preset("random:0.6"), "&Edit"),
    Action("clear_mask", "&Clear mask", lambda w: w.model.mask.clear(), "&Edit"),
    Action("flip_side", "Flip hand &side (left ↔ right)", lambda w: w.image_runs.flip_side(), "&Edit", "H",
           "flip the selected hand's side (left ↔ right) and re-run", "fa5s.exchange-alt", toolbar=True,
           separator_before=True),

    Action("refine", "&Refine hypotheses with DPoser", lambda w: w.refine_runs.toggle(), "&Edit", "Ctrl+R",
           "refine the selected hand's hypotheses against its 2D keypoints with DPoser (again: cancel)",
           "fa5s.bullseye"),

    Action("front", "&Front (camera) view", lambda w: w.view3d.view("front"), "&View", "R",
           "front view / reset camera", "fa5s.crosshairs"),
    Action("side", "&Side view", lambda w: w.view3d.view("side"), "&View", "Ctrl+2", "side view"),
    Action("top", "&Top view", lambda w: w.view3d.view("top"), "&View", "Ctrl+3", "top view"),
    Action("camera", "&Camera view (over the photo)", lambda w: w.view3d.view("camera"), "&View", "C",
           "camera view: every hand over the photo, seen through its camera (orbit away to see depth)",
           "fa5s.image", toolbar=True),
    Action("show_all", "Show all", _mode("all"), "&View", "A", "show all hypotheses", separator_before=True),
    Action("show_aggregate", "Show aggregate", _mode("aggregate"), "&View", "G", "aggregate only"),
    Action("show_best", "Show best", _mode("best"), "&View", "B", "best hypothesis"),
    Action("show_single", "Show single", _mode("single"), "&View"),
    Action("before_after", "Before / after &refinement",
           lambda w: w.refine_runs.show_refined(not w.model.display.refined), "&View", "Ctrl+Shift+R",
           "switch between the meshes before and after the DPoser refinement"),

    Action("shortcuts", "&Keyboard shortcuts", lambda w: show_shortcuts(w), "&Help", K.HelpContents,
           "this list", "fa5s.keyboard"),
    Action("about", "&About", lambda w: w.show_about(), "&Help"),

    Action("cancel", "Cancel", lambda w: w.cancel_runs(), None, "Esc",
           "cancel the running estimate / completion", "fa5s.times-circle", toolbar=True, separator_before=True),
    Action("complete", "Complete", lambda w: w.complete(), None, "Ctrl+Return",
           "complete the hidden joints with DPoser", "fa5s.magic", toolbar=True),
    Action("play", "Play / pause", lambda w: w.denoise_panel.toggle(), keys=(Key.Key_Space,), key_text="Space",
           help="play / pause the denoising"),
    Action("step_back", "Previous step", _step(-1), keys=(Key.Key_Comma, Key.Key_Left), key_text=", or ←",
           help="previous denoising step"),
    Action("step_on", "Next step", _step(1), keys=(Key.Key_Period, Key.Key_Right), key_text=". or →",
           help="next denoising step"),
    Action("first_step", "First step", lambda w: w.model.trajectory.set_step(0), keys=(Key.Key_Home,),
           key_text="Home", help="first step"),
    Action("last_step", "Last step", lambda w: w.model.trajectory.set_step(w.model.trajectory.n_steps - 1),
           keys=(Key.Key_End,), key_text="End", help="last step (the result)"),
    Action("click_joint", "", None, key_text="Click a joint", help="hide / show it (pose view)"),
    Action("pick_hand", "", None, key_text="Click a hand",
           help="select it (its box in the photo or its mesh in 3D): the panels follow it"),
    Action("draw_box", "", None, key_text="Drag in photo", help="draw a box around a hand the detector missed"),
    Action("mouse", "", None, key_text="Mouse",
           help="left-drag rotate, right-drag / wheel zoom, middle-drag pan; hover a hypothesis for its error"),
)


def key_text(action: Action) -> str:
    """How the help names the way to reach `action` (its shortcut as Qt shows it, or its keys)."""
    if action.key_text:
        return action.key_text
    if action.shortcut is None:
        return ""
    return QtGui.QKeySequence(action.shortcut).toString(QtGui.QKeySequence.SequenceFormat.NativeText)


def shortcut_lines() -> list[tuple[str, str]]:
    """(keys, what) for every action the help lists, in table order."""
    return [(key_text(a), a.help) for a in ACTIONS if a.help and key_text(a)]


def show_shortcuts(parent: QtWidgets.QWidget) -> QtWidgets.QMessageBox:
    text = "\n".join(f"{k:<14} {v}" for k, v in shortcut_lines())
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, "Keyboard shortcuts", text, parent=parent)
    box.setObjectName("shortcuts_dialog")
    box.setStyleSheet("QLabel { font-family: monospace; }")
    box.open()
    return box


def build(window: QtWidgets.QMainWindow) -> dict[str, QtGui.QAction]:
    """Menus, toolbar and shortcuts of `window` from `ACTIONS`; returns the QActions by id (the recent-files
    submenu is `window.recent_menu`). Playback keys are installed as an application event filter."""
    from viewer.icons import icon

    menus = {name: window.menuBar().addMenu(name) for name in MENUS}
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main_toolbar")
    actions: dict[str, QtGui.QAction] = {}
    for a in ACTIONS:
        if a.id == "recent":
            window.recent_menu = menus[a.menu].addMenu(a.text)
            continue
        if a.run is None or a.keys:
            continue
        act = QtGui.QAction(icon(a.icon) if a.icon else QtGui.QIcon(), a.text, window)
        if a.shortcut is not None:
            act.setShortcut(a.shortcut)
        tip = a.help[:1].upper() + a.help[1:] if a.help else a.text.replace("&", "").rstrip("…")
        act.setToolTip(tip)
        act.setStatusTip(tip)
        act.triggered.connect(lambda _=False, run=a.run: run(window))
        if a.menu is not None:
            if a.separator_before:
                menus[a.menu].addSeparator()
            menus[a.menu].addAction(act)
        else:
            window.addAction(act)       # shortcut active without a menu entry
        if a.toolbar:
            if a.separator_before and a.menu is None:
                toolbar.addSeparator()
            toolbar.addAction(act)
        actions[a.id] = act
    window.view_menu = menus["&View"]
    window.playback_keys = PlaybackKeys(window)
    QtWidgets.QApplication.instance().installEventFilter(window.playback_keys)
    return actions


class PlaybackKeys(QtCore.QObject):
    """The table's `keys` for this window, unless a text/number field or the joint list has the focus."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.keys = {k: a.run for a in ACTIONS for k in a.keys}

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QtCore.QEvent.Type.KeyPress and not event.modifiers() & ~QtCore.Qt.KeyboardModifier.KeypadModifier:
            run = self.keys.get(event.key())
            if run is not None and isinstance(obj, QtWidgets.QWidget) and obj.window() is self.window:
                focus = QtWidgets.QApplication.focusWidget()
                if not isinstance(focus, (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox, QtWidgets.QListWidget)):
                    run(self.window)
                    return True
        return super().eventFilter(obj, event)

    def remove(self) -> None:
        QtWidgets.QApplication.instance().removeEventFilter(self)
