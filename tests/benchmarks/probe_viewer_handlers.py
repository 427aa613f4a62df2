"""GUI-thread cost of the viewer's model-change handlers, without the VTK frame they request: showing an
image result (the arrival handler), one scrub step of the denoising slider, one display-mode change.
Medians over many calls; the frame itself is measured by bench_viewer.py.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/benchmarks/probe_viewer_handlers.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time


def main(repeats: int = 30) -> None:
    os.environ.setdefault("ANNY_CACHE_DIR", os.path.join(os.getcwd(), ".cache", "anny"))
    import tempfile

    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pose-viewer-probe-")
    from viewer.app import qt_environment

    qt_environment()
    from PySide6 import QtWidgets

    from core.paths import SAMPLE_IMAGE
    from viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    w = MainWindow()
    w.show()
    while not w.ready:
        app.processEvents()
        time.sleep(0.01)
    new = hasattr(w, "model")          # this tree's window, or the one before the split (5eb53a9^)
    show = w.image_runs._show if new else w._on_estimate
    traj = w.model.trajectory if new else w.trajectory
    display = w.model.display if new else w.display
    got = []
    w.runs.finished.connect(got.append)
    w.open_path(str(SAMPLE_IMAGE))
    while not got:
        app.processEvents()
        time.sleep(0.01)
    est = got[0]
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)

    def timed(fn) -> float:
        app.processEvents()             # the previous change's frame first: not counted
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    import copy
    import dataclasses

    def fresh():   # a new result each time, as a run delivers it (the same objects again change nothing)
        return dataclasses.replace(est, result=copy.copy(est.result), image=est.image.copy())

    arrive = [timed(lambda e=fresh(): show(e)) for _ in range(repeats)]
    steps = [timed(lambda k=k: traj.set_step(k % max(traj.n_steps - 1, 1))) for k in range(3 * repeats)]
    traj.set_step(traj.n_steps - 1)
    modes = [timed(lambda m=m: display.update(mode=m)) for m in ["best", "all"] * repeats]
    for name, xs in (("show a result", arrive), ("scrub step", steps), ("display mode", modes)):
        print(f"{name:16s} median {statistics.median(xs):6.2f} ms  min {min(xs):6.2f}  (n={len(xs)})")
    w.close()


if __name__ == "__main__":
    main()
