"""Cancelling long runs: the engine stops at the next step, the GUI run manager drops the result.

Bounds are generous (this is not a timing test); tests/benchmarks/bench_cancel.py prints the real
cancel latency."""
import threading
import time

import numpy as np
import pytest
import torch

from core.errors import Cancelled


def _run_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            box["error"] = exc
        box["t_end"] = time.perf_counter()

    th = threading.Thread(target=target)
    th.start()
    return th, box


def test_ddim_sampling_stops_when_cancelled():
    from core.diffusion import GaussianDiffusion, make_schedule
    from core.nets.joint_diffusion import JointDiffusionConfig, JointDiffusionNet

    torch.manual_seed(0)
    net = JointDiffusionNet(JointDiffusionConfig()).eval()
    diffusion = GaussianDiffusion(make_schedule("linear"))
    n = 64
    c2d = torch.randn(n, 21, 2)
    ctx = torch.zeros(n, 3)
    cancel = threading.Event()
    started = threading.Event()

    def progress(done, total):
        started.set()

    th, box = _run_in_thread(lambda: diffusion.ddim_sample(net, (n, 21, 3), steps=1000, seed=0, record=False,
                                                           progress=progress, cancel=cancel, c2d=c2d, ctx=ctx))
    assert started.wait(60)
    t_cancel = time.perf_counter()
    cancel.set()
    th.join(30)
    assert not th.is_alive()
    assert isinstance(box.get("error"), Cancelled), box
    assert box["t_end"] - t_cancel < 5.0


def test_dposer_completion_stops_when_cancelled(anny_hand):
    from core.prior import TTOConfig, complete_pose
    from core.prior.model import DPoserPrior

    prior = DPoserPrior().eval()  # untrained weights: cancellation does not depend on them
    cancel = threading.Event()
    started = threading.Event()
    hidden = np.zeros(21, bool)
    hidden[[4, 8, 12]] = True

    def callback(it, total, t, pose):
        started.set()

    cfg = TTOConfig(iters=100_000, record=False)
    th, box = _run_in_thread(lambda: complete_pose(prior, np.zeros(45, np.float32), hidden, n=10, cfg=cfg,
                                                   hand=anny_hand, callback=callback, cancel=cancel))
    assert started.wait(60)
    t_cancel = time.perf_counter()
    cancel.set()
    th.join(30)
    assert not th.is_alive()
    assert isinstance(box.get("error"), Cancelled), box
    assert box["t_end"] - t_cancel < 5.0


def test_run_manager_cancel_and_supersede(qtbot):
    from viewer.workers import RunManager

    runs = RunManager()
    results, failures, cancels = [], [], []
    runs.finished.connect(results.append)
    runs.failed.connect(lambda m, tb: failures.append(m))
    runs.cancelled.connect(lambda: cancels.append(1))

    def slow(progress, cancel):
        for i in range(10_000):
            progress(i, 10_000, "working")
            time.sleep(0.001)
        return "slow"

    runs.start(slow)
    qtbot.wait(50)
    runs.start(lambda progress, cancel: "fast")          # supersedes (cancels) the slow run
    qtbot.waitUntil(lambda: results == ["fast"], timeout=10_000)
    assert runs.wait(5000)
    qtbot.wait(50)
    assert results == ["fast"] and not failures          # the slow run's result never arrives
    runs.start(slow)
    qtbot.wait(50)
    runs.cancel()
    assert not runs.busy
    assert runs.wait(5000)                               # the worker really stopped
    assert results == ["fast"] and len(cancels) >= 2


def test_worker_exception_reaches_the_user(qtbot):
    from viewer.workers import RunManager

    runs = RunManager()
    with qtbot.waitSignal(runs.failed, timeout=5000) as blocker:
        runs.start(lambda progress, cancel: 1 / 0)
    message, tb = blocker.args
    assert "division by zero" in message and "ZeroDivisionError" in tb
    assert not runs.busy
