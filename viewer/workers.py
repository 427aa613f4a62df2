"""Engine calls on worker threads with progress and cancel (napari's qthreading pattern, small).

`RunManager.start(fn, ...)` cancels the run in flight (a new image cancels the previous one), runs
`fn(progress, cancel)` on a QThreadPool thread and posts `progress(done, total, label[, partial])`,
`finished(result)` or `failed(message)` back to the GUI thread. Results of a superseded run are dropped.
"""
from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from core.errors import Cancelled


class _Signals(QtCore.QObject):
    progress = QtCore.Signal(int, int, int, str)   # run id, done, total, label
    partial = QtCore.Signal(int, object)           # run id, intermediate result (live display)
    finished = QtCore.Signal(int, object)          # run id, result
    failed = QtCore.Signal(int, str, str)          # run id, message, traceback


class _Job(QtCore.QRunnable):
    def __init__(self, run_id: int, fn: Callable[..., Any], cancel: threading.Event, signals: _Signals) -> None:
        super().__init__()
        self.run_id, self.fn, self.cancel, self.signals = run_id, fn, cancel, signals
        self.setAutoDelete(True)

    def run(self) -> None:  # worker thread
        def progress(done: int, total: int, label: str = "", partial: object = None) -> None:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            self.signals.progress.emit(self.run_id, int(done), int(total), label)
            if partial is not None:
                self.signals.partial.emit(self.run_id, partial)

        try:
            result = self.fn(progress, self.cancel)
        except Cancelled:
            self.signals.failed.emit(self.run_id, "", "")
            return
        except Exception as exc:  # noqa: BLE001 - every engine failure reaches the user
            from core.errors import one_line

            self.signals.failed.emit(self.run_id, one_line(exc), traceback.format_exc())
            return
        self.signals.finished.emit(self.run_id, result)


class RunManager(QtCore.QObject):
    """One kind of engine run (e.g. 'estimate'): at most one live run; starting another cancels it."""

    progress = QtCore.Signal(int, int, str)
    partial = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    busy_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress)
        self._signals.partial.connect(lambda rid, obj: self.partial.emit(obj) if self._current(rid) else None)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._pool = QtCore.QThreadPool()
        self._pool.setMaxThreadCount(2)
        self._run_id = 0
        self._cancel: threading.Event | None = None

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def start(self, fn: Callable[[Callable, threading.Event], Any]) -> int:
        """Run `fn(progress, cancel)` in the background, cancelling the previous run."""
        self.cancel()
        self._run_id += 1
        self._cancel = threading.Event()
        self._pool.start(_Job(self._run_id, fn, self._cancel, self._signals))
        self.busy_changed.emit(True)
        return self._run_id

    def cancel(self) -> None:
        """Ask the live run to stop; its result (if any) will be ignored."""
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
            self.busy_changed.emit(False)
            self.cancelled.emit()

    def wait(self, msecs: int = 5000) -> bool:
        """Block until the pool is idle (tests, shutdown)."""
        return self._pool.waitForDone(msecs)

    def _current(self, run_id: int) -> bool:
        return run_id == self._run_id and self._cancel is not None

    def _on_progress(self, run_id: int, done: int, total: int, label: str) -> None:
        if self._current(run_id):
            self.progress.emit(done, total, label)

    def _on_finished(self, run_id: int, result: object) -> None:
        if self._current(run_id):
            self._cancel = None
            self.busy_changed.emit(False)
            self.finished.emit(result)

    def _on_failed(self, run_id: int, message: str, tb: str) -> None:
        if self._current(run_id):
            self._cancel = None
            self.busy_changed.emit(False)
            if message:
                self.failed.emit(message, tb)
            else:
                self.cancelled.emit()
