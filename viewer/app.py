"""Starts the Qt application and the main window."""
from __future__ import annotations

import argparse
import os
import sys


def qt_environment() -> None:
    """Importing the non-headless cv2 points Qt at its own Qt5 plugins: undo that (DESIGN §12)."""
    import cv2  # noqa: F401 - imported for its side effect, then undone

    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    os.environ.pop("QT_QPA_FONTDIR", None)


def run_app(args: argparse.Namespace) -> int:
    qt_environment()
    from PySide6 import QtCore, QtWidgets

    from viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("pose-viewer")
    app.setOrganizationName("pose-viewer")
    window = MainWindow(mano_dir=args.mano_dir)
    window.show()
    status = 0
    if args.file:
        ok = window.open_path(args.file)
        if ok and args.screenshot:
            ok = wait_for_run(window)
        if not ok:
            print(f"error: {args.file}: {window.last_error.split(': ', 1)[-1]}", file=sys.stderr)
            status = 2
    if args.screenshot:
        QtWidgets.QApplication.processEvents()
        window.save_screenshot(args.screenshot)
        window.close()
        return status
    return app.exec() or status


def wait_for_run(window, timeout_s: float = 600.0) -> bool:
    """Run the event loop until the window's engine run ends (scripted use); False if it failed."""
    from PySide6 import QtCore

    if not window.runs.busy:
        return window.last_error is None
    loop = QtCore.QEventLoop()
    window.runs.busy_changed.connect(lambda busy: loop.quit() if not busy else None)
    QtCore.QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return window.last_error is None and not window.runs.busy
