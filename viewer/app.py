"""Starts the Qt application and the main window."""
from __future__ import annotations

import argparse
import os
import sys


#: glibc's M_ARENA_MAX (mallopt): the most malloc arenas the window process may make.
_M_ARENA_MAX = -8


def qt_environment() -> None:
    """The window process's set-up before Qt starts. Importing the non-headless cv2 points Qt at its own
    Qt5 plugins (DESIGN §12): drop those variables (the engine imports cv2 later, on workers, when Qt is
    up). And cap glibc's malloc arenas at 2: by default each thread that meets a busy arena may get one of
    its own (up to 8 × cores), memory the window keeps for little gain — it does no heavy allocation on
    threads (issue 27: ~4 MB less here, more on machines with many cores)."""
    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    os.environ.pop("QT_QPA_FONTDIR", None)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
        except (OSError, AttributeError):   # not glibc (musl has no mallopt): nothing to cap
            pass


def run_app(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s")
    if args.debug:
        os.environ["POSE_VIEWER_DEBUG"] = "1"   # keep native libraries' messages too
    qt_environment()
    # Engine workers run Python loops; a short GIL switch interval keeps the window responsive.
    sys.setswitchinterval(0.001)
    from PySide6 import QtCore, QtWidgets

    from viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("pose-viewer")
    app.setOrganizationName("pose-viewer")
    window = MainWindow(mano_dir=args.mano_dir)
    window.show()
    status = 0
    if args.file or args.screenshot:
        wait_until_ready(window)   # the neutral hand is shown and the DPoser lane answers
    if args.file:
        ok = window.open_path(args.file)
        if ok and args.screenshot:
            ok = wait_for_run(window, window.runs)
        if ok and getattr(args, "view", None):
            window.view3d.view(args.view)
        if ok and (args.mask or args.mask_preset or args.complete):
            ok = apply_dposer_options(window, args)
            if ok and args.complete:
                ok = window.complete() and wait_for_run(window, window.prior_runs)
        if not ok:
            print(f"error: {args.file}: {window.last_error.split(': ', 1)[-1]}", file=sys.stderr)
            status = 2
    if args.screenshot:
        QtWidgets.QApplication.processEvents()
        if not window.exporter.save_screenshot(args.screenshot, whole_window=True):
            print(f"error: {window.last_error}", file=sys.stderr)
            status = 2
        window.close()
        return status
    return app.exec() or status


def apply_dposer_options(window, args: argparse.Namespace) -> bool:
    """--mask / --mask-preset / --prior / --schedule / --t-max / --t-min / -n onto the window's models (the
    DPoser dock shows them; setting a model directly schedules no re-run)."""
    from core.errors import InputError, one_line
    from core.io.poses import parse_mask
    from viewer.state import batch

    try:
        hidden = parse_mask(args.mask, args.mask_preset)
    except InputError as exc:
        return window.show_error(one_line(exc))
    if hidden is not None:
        window.model.mask.set(hidden)
    s = window.model.completion_settings
    with batch(s):
        s.prior, s.schedule = args.prior, args.schedule
        if args.t_max is not None:
            s.t_max = args.t_max
        if args.t_min is not None:
            s.t_min = args.t_min
        if args.n is not None:
            s.n = args.n
    return True


def wait_until_ready(window, timeout_s: float = 600.0) -> None:
    """Run the event loop until the window can open files (scripted use)."""
    from PySide6 import QtCore

    if window.ready:
        return
    loop = QtCore.QEventLoop()
    timer = QtCore.QTimer(interval=20)
    timer.timeout.connect(lambda: loop.quit() if window.ready else None)
    timer.start()
    QtCore.QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    timer.stop()


def wait_for_run(window, runs, timeout_s: float = 600.0) -> bool:
    """Run the event loop until `runs` (a RunManager) is idle (scripted use); False if it failed."""
    from PySide6 import QtCore

    if not runs.busy:
        return window.last_error is None
    loop = QtCore.QEventLoop()
    runs.busy_changed.connect(lambda busy: loop.quit() if not busy else None)
    QtCore.QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return window.last_error is None and not runs.busy
