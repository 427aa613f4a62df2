"""Ending engine child processes without blocking the window (issue 27: close is never blocked):
every child is asked to stop at once, then the ones still running are terminated, then killed, on one
shared deadline. Works on `viewer.process_worker.ProcessRunner`s (their private detach step)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from viewer.process_worker import ProcessRunner


def shutdown_all(runners: list[ProcessRunner], timeout_s: float = 1.2) -> None:
    """End the children of several runners together (closing the window): every child is asked to stop
    at once, then the ones still running are terminated and killed — about `timeout_s` + 0.7 s at most
    in all, not per runner, so closing never waits for a model load or a long run."""
    runners = list(dict.fromkeys(g for r in runners for g in r._group()))   # a child's lanes end together
    for r in runners:
        r._closing = True
        r.cancel()
    finish_stop([r._detach_child() for r in runners], timeout_s)
    for r in runners:
        r._closing = False


def finish_stop(detached: list, timeout_s: float) -> None:
    """Wait (shared deadline) for asked children to exit; terminate, then kill, the others."""
    detached = [d for d in detached if d is not None]
    if not detached:
        return
    t0 = time.perf_counter()
    for proc, _conn, _threads, patient in detached:
        budget = timeout_s if patient else 0.1
        proc.join(max(0.0, budget - (time.perf_counter() - t0)))
    for sig_name, wait_s in (("terminate", 0.5), ("kill", 0.2)):
        alive = [d[0] for d in detached if d[0].is_alive()]
        if not alive:
            break
        for proc in alive:
            getattr(proc, sig_name)()
        t1 = time.perf_counter()
        for proc in alive:
            proc.join(max(0.0, wait_s - (time.perf_counter() - t1)))
    for _proc, conn, threads, _patient in detached:
        for t in threads:
            t.join(0.2)   # the reader ends with the child's pipe, the writer on its sentinel
        conn.close()
