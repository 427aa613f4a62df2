"""Engine runs in a child process, so the engine's Python never holds the window's GIL and the OS
schedules the window first (the child runs at a lower priority): one runner for the image cascade
(`viewer.engine.serve_cascade`) and one for DPoser (`viewer.engine.serve_prior`). A runner made with
`host=` another is a second *lane* of the host's child (`viewer.engine.serve_lanes`: one process, one
torch runtime, each lane served by its own thread there), which saves a whole engine process (issue 27);
the lanes keep their own pipes, run ids and cancel counters, and share start, death and shutdown.

`ProcessRunner` has the public surface of `viewer.workers.RunManager` (signals progress, partial,
finished, failed, cancelled, busy_changed; start / cancel / wait / busy) plus `prewarm` and `shutdown`.
It owns one child process (multiprocessing, "spawn") running the named `viewer.engine` serve function:
the child imports torch and loads its models once, then serves jobs until told to stop. Per runner two
small threads move messages: a writer (jobs out: the GUI thread never blocks on a full pipe) and a reader
(blocked in `recv`, which releases the GIL) that turns the child's messages into queued Qt signals. Progress and partial results are coalesced (only
the latest is kept until the GUI thread takes it, shown at most every `progress_interval_s` /
`partial_interval_s`: each costs a frame), so a slow frame never lets updates pile up in the event
queue. Cancel is a shared counter: the child stops a job at
its next iteration once `cancel_upto >= run id`. Messages of superseded runs are dropped by run id.

A child that dies (killed, out of memory, a native crash) is noticed at once: the reader's `recv` ends.
A live run then fails with one message; an idle child's death is reported once through `crashed`, and a
child that had started up is replaced at once (restart is automatic; a child that dies while starting is
replaced by the next `start`). Ending children never blocks the window for long: `shutdown` (or
`shutdown_all` for several runners at once) asks, then terminates, then kills, within ~2 s in all.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
import traceback
from typing import Any

from PySide6 import QtCore

from viewer.process_stop import finish_stop, shutdown_all

__all__ = ["ProcessRunner", "shutdown_all"]
Connection = QtCore.Qt.ConnectionType.QueuedConnection
log = logging.getLogger("pose-viewer")


class _ChildSignals(QtCore.QObject):
    """Emitted from the reader thread; delivered (queued) to the runner on the GUI thread."""

    progress = QtCore.Signal()                     # a (run id, done, total, label) is waiting
    partial = QtCore.Signal()                      # a (run id, (iteration, joints)) is waiting
    finished = QtCore.Signal(int, object)          # run id, (TTOResult, vertices)
    failed = QtCore.Signal(int, str, str)          # run id, message, traceback
    cancelled = QtCore.Signal(int)                 # run id
    ready = QtCore.Signal(int, str, object)        # child generation, startup error ('' if none), info dict
    died = QtCore.Signal(int)                      # child generation


class ProcessRunner(QtCore.QObject):
    """Engine runs in a long-lived child process: at most one live run; starting one cancels it."""

    progress = QtCore.Signal(int, int, str)
    partial = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    busy_changed = QtCore.Signal(bool)
    ready = QtCore.Signal()   # the child has built the hand model and loaded the prior
    crashed = QtCore.Signal(str)   # the child died while no run was live (reported once per death)
    partial_interval_s = 0.2  # live results shown at most this often (each one is a render)
    progress_interval_s = 0.25  # progress shown at most this often (the last step always)

    def __init__(self, parent: QtCore.QObject | None = None, hand_spec: dict | None = None,
                 serve: str = "serve_prior", label: str = "DPoser", host: "ProcessRunner | None" = None) -> None:
        super().__init__(parent)
        self.host = host                      # whose child process serves this runner's lane (None: its own)
        self.guests: list[ProcessRunner] = []  # runners served as lanes of this runner's child
        if host is not None:
            host.guests.append(self)
        self._ctx = multiprocessing.get_context("spawn")
        self.hand_spec = hand_spec or {"kind": "anny"}
        self.serve = serve      # the child's main loop: a function of viewer.engine
        self.label = label      # how messages name the process
        self._signals = _ChildSignals()
        self._signals.progress.connect(self._on_progress, Connection)
        self._signals.partial.connect(self._on_partial, Connection)
        self._signals.finished.connect(self._on_finished, Connection)
        self._signals.failed.connect(self._on_failed, Connection)
        self._signals.cancelled.connect(self._on_cancelled, Connection)
        self._signals.ready.connect(self._on_ready, Connection)
        self._signals.died.connect(self._on_died, Connection)
        self._run_id = 0
        self._cancel_mark = 0                 # runs with id <= it are cancelled
        self._live = False                    # a current run whose outcome the GUI waits for
        self._gen = 0                         # child generation (a crashed child is replaced)
        self._proc: Any = None
        self._conn: Any = None
        self._cancel_upto: Any = None         # shared int64: runs with id <= it are cancelled
        self._outbox: queue.Queue | None = None
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._done_id = 0                     # highest run id the child has finished with (any outcome)
        self._sent_id = 0                     # highest run id handed to the current child
        self.child_ready = False
        self.startup_error = ""
        self.info: dict = {}                  # what the child said about itself when ready (e.g. 'device')
        self._sync: dict[int, tuple | None] = {}   # run id of a `call` → its outcome once the child sent it
        self._latest_lock = threading.Lock()
        self._latest_progress: tuple | None = None   # set by the reader, taken by the GUI thread
        self._latest_partial: tuple | None = None
        self._last_partial_t = 0.0
        self._partial_timer = QtCore.QTimer(self, singleShot=True)
        self._partial_timer.timeout.connect(self._on_partial)
        self._last_progress_t = 0.0
        self._progress_timer = QtCore.QTimer(self, singleShot=True)
        self._progress_timer.timeout.connect(self._on_progress)
        self._closing = False
        self._last_respawn_t = -1e9
        self.deaths = 0                       # unexpected child deaths so far (tests, diagnostics)

    # -- public API (as RunManager) --------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._live

    @property
    def pid(self) -> int | None:
        """The child's process id (None when no child is running)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def process(self) -> Any:
        return self._proc

    def prewarm(self, hand_spec: dict | None = None) -> None:
        """Start the child now (it loads torch and its models in the background)."""
        if hand_spec is not None and hand_spec != self.hand_spec:
            for r in self._group():   # the process restarts: every lane's run in flight is cancelled
                r.cancel()
            self._stop_child()
            self.hand_spec = dict(hand_spec)
        try:
            self._ensure_child()
        except Exception:  # noqa: BLE001 - start() tries again and reports the error
            log.warning("could not start the %s process", self.label, exc_info=True)

    def start(self, job: tuple) -> int:
        """Run the job (the serve function's arguments, e.g. DPoser's `(source, hidden, settings)`) in the
        child, cancelling the previous run."""
        self.cancel()
        self._run_id += 1
        self._live = True
        self._last_partial_t = self._last_progress_t = 0.0
        self.busy_changed.emit(True)
        try:
            self._ensure_child()
        except Exception as exc:  # noqa: BLE001 - e.g. the process cannot be spawned
            from core.errors import one_line

            self._live = False
            self.busy_changed.emit(False)
            self.failed.emit(f"could not start the {self.label} process: {one_line(exc)}", traceback.format_exc())
            return self._run_id
        with self._cond:
            self._sent_id = self._run_id
        self._outbox.put(("job", self._run_id, *job))
        return self._run_id

    def call(self, job: tuple, timeout_s: float = 10.0) -> Any:
        """Run a short job (e.g. a pose's mesh: ~10 ms) and wait for its result on this thread, without an
        event loop; the live run is cancelled first. Raises `PoseViewerError` with the child's one-line
        message if it fails, if the child dies, or if no answer comes within `timeout_s`."""
        from core.errors import PoseViewerError

        self.cancel()
        self._run_id += 1
        rid = self._run_id
        self._ensure_child()
        with self._cond:
            self._sync[rid] = None
            self._sent_id = rid
        self._outbox.put(("job", rid, *job))
        with self._cond:
            self._cond.wait_for(lambda: self._sync.get(rid) is not None, timeout_s)
            outcome = self._sync.pop(rid, None)
        if outcome is None:
            self._cancel_mark = rid
            if self._cancel_upto is not None:
                self._cancel_upto.value = rid
            raise PoseViewerError(f"the {self.label} process did not answer within {timeout_s:.0f} s")
        kind, payload = outcome
        if kind == "finished":
            return payload
        raise PoseViewerError(payload or f"the {self.label} request was cancelled")

    def cancel(self) -> None:
        """Ask the live run to stop at its next iteration; its result (if any) will be ignored."""
        self._cancel_mark = self._run_id
        if self._cancel_upto is not None:
            self._cancel_upto.value = self._run_id
        if self._live:
            self._live = False
            self.busy_changed.emit(False)
            self.cancelled.emit()

    def wait(self, msecs: int = 5000) -> bool:
        """Block until the child has finished with every run handed to it (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done_id >= self._sent_id, msecs / 1000)

    def shutdown(self, timeout_s: float = 1.2) -> None:
        """Cancel the live run and end the child process (closing the window): asked to stop, then
        terminated, then killed — at most about `timeout_s` + 0.7 s, whatever the child is doing."""
        shutdown_all([self], timeout_s)

    # -- child process -----------------------------------------------------------------------------------
    def _group(self) -> list["ProcessRunner"]:
        """The runners sharing this runner's child process: the host first, then its guests."""
        host = self.host or self
        return [host, *host.guests]

    def _ensure_child(self) -> None:
        if self.host is not None:
            self.host._ensure_child()   # the host starts the process and attaches every lane
            return
        if self._proc is not None and self._proc.is_alive():
            return
        if self._proc is not None:   # it died and the reader has not said so yet: as if it had (another
            self._on_died(self._gen)   # lane's run in flight fails, the death is reported once)
        if self._proc is not None:
            self._stop_child(0.5)
        import viewer.engine

        # glibc gives each thread of the child its own malloc arena; two are plenty for an engine process
        # and save ~70 MB of its resident memory (measured: 630 → 557 MB after three image runs).
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        lanes = [*self.guests, self]   # set up in this order in the child: DPoser (the window waits for it) first
        pipes = [self._ctx.Pipe(duplex=True) for _ in lanes]
        cancels = [self._ctx.RawValue("q", r._cancel_mark) for r in lanes]
        if self.guests:
            target = viewer.engine.serve_lanes
            args = ([(r.serve, child, cancel, r.hand_spec) for r, (_, child), cancel in zip(lanes, pipes, cancels)],)
        else:
            target, args = getattr(viewer.engine, self.serve), (pipes[0][1], cancels[0], self.hand_spec)
        proc = self._ctx.Process(target=target, args=args, name=f"pose-viewer-{self.serve}", daemon=True)
        try:
            proc.start()
        except BaseException:
            for parent_conn, _ in pipes:
                parent_conn.close()
            raise
        finally:
            for _, child_conn in pipes:
                child_conn.close()
        for r, (parent_conn, _), cancel in zip(lanes, pipes, cancels):
            r._attach(proc, parent_conn, cancel)

    def _attach(self, proc, parent_conn, cancel_upto) -> None:
        """Serve this runner's runs through `parent_conn` to the (just started) child `proc`."""
        self._gen += 1
        self.child_ready, self.startup_error = False, ""
        self._proc, self._conn, self._cancel_upto = proc, parent_conn, cancel_upto
        self._outbox = queue.Queue()
        with self._cond:
            self._sent_id = self._done_id = self._cancel_mark
        self._threads = [
            threading.Thread(target=self._write, args=(parent_conn, self._outbox, self._cancel_upto),
                             name=f"{self.serve}-writer", daemon=True),
            threading.Thread(target=self._read, args=(parent_conn, self._gen), name=f"{self.serve}-reader",
                             daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _stop_child(self, timeout_s: float = 1.2) -> None:
        finish_stop([r._detach_child() for r in self._group()], timeout_s)

    def _detach_child(self) -> tuple | None:
        """Ask the child to stop and forget it; returns what `finish_stop` needs to end it."""
        proc, conn, outbox = self._proc, self._conn, self._outbox
        if proc is None:
            return None
        self._proc = self._conn = self._outbox = None
        self._cancel_upto.value = self._run_id   # the child stops its job at the next iteration
        self._cancel_upto = None
        outbox.put(("stop",))
        outbox.put(None)
        threads, self._threads = self._threads, []
        # A child still starting up (importing torch, building the hand) reads 'stop' only once it is
        # ready: don't wait for that, end it.
        patient = self.child_ready
        self.child_ready = False
        with self._cond:
            self._done_id = max(self._done_id, self._sent_id)
            self._cond.notify_all()
        return proc, conn, threads, patient

    def _write(self, conn, outbox: queue.Queue, cancel_upto) -> None:  # writer thread
        while True:
            msg = outbox.get()
            if msg is None:
                return
            if msg[0] == "job" and cancel_upto.value >= msg[1]:
                self._mark_done(msg[1])   # superseded before the child saw it
                continue
            try:
                conn.send(msg)
            except (OSError, ValueError):   # the child is gone (the reader reports it)
                return

    def _read(self, conn, gen: int) -> None:  # reader thread
        sig = self._signals
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind in ("finished", "failed", "cancelled") and msg[1] in self._sync:   # a `call`: no signals
                with self._cond:
                    self._sync[msg[1]] = (kind, msg[2] if kind != "cancelled" else "")
                    self._done_id = max(self._done_id, msg[1])
                    self._cond.notify_all()
                continue
            if kind == "progress":
                with self._latest_lock:
                    waiting, self._latest_progress = self._latest_progress is not None, msg[1:]
                if not waiting or msg[2] >= msg[3]:   # the last one goes out before 'finished'
                    sig.progress.emit()
            elif kind == "partial":
                with self._latest_lock:
                    waiting, self._latest_partial = self._latest_partial is not None, msg[1:]
                if not waiting:
                    sig.partial.emit()
            elif kind == "finished":
                self._mark_done(msg[1])
                sig.finished.emit(msg[1], msg[2])
            elif kind == "failed":
                self._mark_done(msg[1])
                sig.failed.emit(msg[1], msg[2], msg[3])
            elif kind == "cancelled":
                self._mark_done(msg[1])
                sig.cancelled.emit(msg[1])
            elif kind == "ready":
                sig.ready.emit(gen, msg[1] or "", msg[2] if len(msg) > 2 else {})
        with self._cond:
            self._done_id = max(self._done_id, self._sent_id)
            for rid, outcome in self._sync.items():   # a `call` waiting on this child gets its answer
                if outcome is None:
                    self._sync[rid] = ("failed", f"the {self.label} process stopped unexpectedly")
            self._cond.notify_all()
        sig.died.emit(gen)

    def _mark_done(self, run_id: int) -> None:
        with self._cond:
            self._done_id = max(self._done_id, run_id)
            self._cond.notify_all()

    # -- GUI thread ------------------------------------------------------------------------------------------
    def _current(self, run_id: int) -> bool:
        return run_id == self._run_id and self._live

    def _on_progress(self) -> None:
        with self._latest_lock:
            item = self._latest_progress
            final = item is not None and item[1] >= item[2]
            wait = self._last_progress_t + self.progress_interval_s - time.perf_counter()
            if wait > 0 and not final:   # too soon: show the latest one later (a repaint can cost a frame)
                if not self._progress_timer.isActive():
                    self._progress_timer.start(int(wait * 1000) + 1)
                return
            self._latest_progress = None
        if item is not None and self._current(item[0]):
            self._last_progress_t = time.perf_counter()
            self.progress.emit(*item[1:])

    def _on_partial(self) -> None:
        wait = self._last_partial_t + self.partial_interval_s - time.perf_counter()
        if wait > 0:   # too soon after the last one: show the latest one later
            if not self._partial_timer.isActive():
                self._partial_timer.start(int(wait * 1000) + 1)
            return
        with self._latest_lock:
            item, self._latest_partial = self._latest_partial, None
        if item is not None and self._current(item[0]):
            self._last_partial_t = time.perf_counter()
            self.partial.emit(item[1])

    def _on_finished(self, run_id: int, result: object) -> None:
        if self._current(run_id):
            self._live = False
            self.busy_changed.emit(False)
            self.finished.emit(result)

    def _on_failed(self, run_id: int, message: str, tb: str) -> None:
        if self._current(run_id):
            self._live = False
            self.busy_changed.emit(False)
            self.failed.emit(message, tb)

    def _on_cancelled(self, run_id: int) -> None:
        if self._current(run_id):   # cancelled in the child without cancel() here (e.g. shutdown)
            self._live = False
            self.busy_changed.emit(False)
            self.cancelled.emit()

    def _on_ready(self, gen: int, error: str, info: object = None) -> None:
        if gen == self._gen and self._proc is not None:
            self.child_ready, self.startup_error = True, error
            self.info = dict(info or {})
            self.ready.emit()

    def _on_died(self, gen: int) -> None:
        if gen != self._gen or self._proc is None or self._closing:
            return   # an old child, or one we stopped
        proc = self._proc
        proc.join(0.5)
        code = proc.exitcode
        group = self._group()   # every lane of this child: the first reader to notice handles them all
        was_ready = any(r.child_ready for r in group)
        live = [r for r in group if r._live and r._sent_id >= r._run_id]   # a run not yet sent goes on
        finish_stop([r._detach_child() for r in group], 0.1)   # next start() spawns a fresh child
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        host = group[0]
        host.deaths += 1
        log.warning("the %s process stopped unexpectedly (%s)", host.label, how)
        for r in live:   # each live run fails once; an idle child's death is reported once
            r._live = False
            r.busy_changed.emit(False)
            r.failed.emit(f"the {r.label} process stopped unexpectedly ({how})", "")
        if not live:
            host.crashed.emit(f"the {host.label} process stopped unexpectedly ({how})"
                              + ("; restarting it" if was_ready else ""))
        # Restart at once (the next run should not pay for loading the models) unless the child never
        # got ready (it would die again) or it died moments after the last restart.
        now = time.perf_counter()
        if was_ready and now - host._last_respawn_t > 10.0:
            host._last_respawn_t = now
            QtCore.QTimer.singleShot(0, host._respawn)

    def _respawn(self) -> None:
        if any(r._closing for r in self._group()) or self._proc is not None:
            return
        try:
            self._ensure_child()
        except Exception:  # noqa: BLE001 - start() tries again and reports the error
            log.warning("could not restart the %s process", self.label, exc_info=True)
