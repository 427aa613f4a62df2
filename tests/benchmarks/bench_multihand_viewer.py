"""Four hands in the window (issue 26): open the sample and its mirror tiled 2 × 2 (four hands) with
50 hypotheses × 10 steps, watch the event loop (a 5 ms timer) and report the longest stall while the
engine runs and shows the four hands, the time until they are on screen and until the run is complete
(mesh trajectories of all four decoded), the GUI-thread cost of selecting another hand (handler + the
frame it requests), and a camera-view frame.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/benchmarks/bench_multihand_viewer.py \\
        [--repeats 2] [--json FILE]

`--json` writes viewer.hands4_max_stall_ms, viewer.hands4_shown_s, viewer.hands4_result_s,
viewer.hands4_select_ms, viewer.hands4_camera_frame_ms (medians) and the 1-minute
load average. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def tiled_sample(folder: str) -> str:
    import numpy as np
    from PIL import Image

    from core.io.images import load_image
    from core.paths import SAMPLE_IMAGE

    img = load_image(str(SAMPLE_IMAGE))
    top = np.concatenate([img, img[:, ::-1]], 1)
    path = os.path.join(folder, "four_hands.png")
    Image.fromarray(np.ascontiguousarray(np.concatenate([top, top[:, ::-1]], 0))).save(path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pose-viewer-bench-config-")
    from viewer.app import qt_environment

    qt_environment()
    sys.setswitchinterval(0.001)   # as viewer.app.run_app does
    from PySide6 import QtCore, QtWidgets

    from viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    w = MainWindow()
    w.show()
    while not w.ready:
        app.processEvents()
        time.sleep(0.01)
    settle = time.perf_counter() + 1.0
    while time.perf_counter() < settle:
        app.processEvents()
        time.sleep(0.01)
    w.settings_panel.n.setValue(50)
    w.settings_panel.steps.setValue(10)
    path = tiled_sample(tempfile.mkdtemp(prefix="pose-viewer-bench-"))
    stalls, shown, complete = [], [], []
    for r in range(args.repeats + 1):      # the first run is a warm-up
        last, worst, t0 = [time.perf_counter()], [0.0], time.perf_counter()
        shown_at = [0.0]

        def tick():
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last[0])
            last[0] = now

        def on_partial(est):
            shown_at[0] = time.perf_counter()

        timer = QtCore.QTimer(interval=5)
        timer.timeout.connect(tick)
        loop = QtCore.QEventLoop()
        done = lambda busy: QtCore.QTimer.singleShot(700, loop.quit) if not busy else None  # noqa: E731
        w.runs.busy_changed.connect(done)
        w.runs.partial.connect(on_partial)
        t_end = [0.0]
        ended = lambda busy: t_end.__setitem__(0, time.perf_counter()) if not busy else None  # noqa: E731
        w.runs.busy_changed.connect(ended)
        timer.start()
        w.open_path(path)
        loop.exec()
        timer.stop()
        for slot in (done, ended):
            w.runs.busy_changed.disconnect(slot)
        w.runs.partial.disconnect(on_partial)
        if w.last_error:
            raise SystemExit(f"estimate failed: {w.last_error}")
        hands = len(w.model.hands.estimated)
        print(f"run {r}{' (warm-up)' if r == 0 else ''}: {hands} hands, shown {shown_at[0] - t0:.2f} s, complete "
              f"{t_end[0] - t0:.2f} s, longest stall {worst[0] * 1000:.0f} ms", flush=True)
        if r:
            stalls.append(worst[0] * 1000)
            shown.append(shown_at[0] - t0)
            complete.append(t_end[0] - t0)

    def with_frame(change) -> float:
        """ms from `change()` until the frame it requests is on screen."""
        t0, before = time.perf_counter(), w.plotter.frames_shown
        change()
        while w.plotter.frames_shown == before and time.perf_counter() - t0 < 2.0:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
        return (time.perf_counter() - t0) * 1000

    first = w.model.image_state.chosen
    select = [with_frame(lambda i=i: w.image_runs.select_hand((first + 1 + i) % 4)) for i in range(8)]
    print(f"select another hand: {[round(x) for x in select]} ms")
    w.view3d.view("camera")
    frames = []
    for _ in range(10):
        t0 = time.perf_counter()
        w.plotter.render()
        frames.append((time.perf_counter() - t0) * 1000)
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    res = {"viewer.hands4_max_stall_ms": statistics.median(stalls), "viewer.hands4_shown_s": statistics.median(shown),
           "viewer.hands4_result_s": statistics.median(complete), "viewer.hands4_select_ms": statistics.median(select),
           "viewer.hands4_camera_frame_ms": statistics.median(frames), "loadavg_1min": load}
    for k, v in res.items():
        print(f"{k:32s} {v:.2f}")
    w.close()
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
