"""Soak test of the window (issue 27): open the sample image N times (default 200) in one window and
record failures, stuck runs and memory. Every 5th open is replaced mid-run by the next one (the run in
flight is cancelled), the others run to the end (result and decoded mesh trajectory).

Run under a display: `xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/benchmarks/soak_viewer.py`
Prints one line per 10 opens and a summary; `--json FILE` writes soak.opens, soak.failures, soak.stuck,
soak.gui_rss_first10_mb / soak.gui_rss_end_mb / soak.gui_growth_mb (GUI process, after the 10th open
and at the end) and the same for all processes of the window (soak.total_*). Exit 1 on any failure or
stuck run, or when the growth after the first 10 opens exceeds --max-growth-mb (default 50).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
IMAGE = ROOT / "resources" / "samples" / "anny_right_256.jpg"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opens", type=int, default=200)
    ap.add_argument("--timeout-s", type=float, default=120.0, help="a run taking longer counts as stuck")
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pose-viewer-soak-config-")
    from _rss import tree_rss_mb

    from viewer.app import qt_environment

    qt_environment()
    sys.setswitchinterval(0.001)
    from PySide6 import QtCore, QtWidgets

    from viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    w = MainWindow()
    w.show()
    deadline = time.perf_counter() + 300
    while not w.ready and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if not w.ready:
        print("the window never got ready", file=sys.stderr)
        return 1

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)

    def wait_idle(timeout_s: float) -> bool:
        end = time.perf_counter() + timeout_s
        while w.runs.busy and time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)
        return not w.runs.busy

    failures, stuck, mem, t_start = [], 0, {}, time.perf_counter()
    for i in range(1, args.opens + 1):
        ok = w.open_path(str(IMAGE))
        if i % 5 == 0 and i < args.opens:   # replaced mid-run by the next open
            pump(0.3)
        else:
            if not wait_idle(args.timeout_s):
                stuck += 1
                w.cancel_runs()
            pump(0.05)
            if not ok or w.last_error:
                failures.append((i, w.last_error))
        if i % 10 == 0 or i == args.opens:
            m = tree_rss_mb()
            mem[i] = m
            print(f"open {i:4d}: {time.perf_counter() - t_start:7.1f} s  GUI {m['gui']:7.1f} MB  "
                  f"all {m['total']:7.1f} MB  failures {len(failures)}  stuck {stuck}", flush=True)
    first = mem[min(mem, key=lambda k: abs(k - 10))]
    end = mem[max(mem)]
    res = {"soak.opens": args.opens, "soak.failures": len(failures), "soak.stuck": stuck,
           "soak.gui_rss_first10_mb": round(first["gui"], 1), "soak.gui_rss_end_mb": round(end["gui"], 1),
           "soak.gui_growth_mb": round(end["gui"] - first["gui"], 1),
           "soak.total_rss_first10_mb": round(first["total"], 1), "soak.total_rss_end_mb": round(end["total"], 1),
           "soak.total_growth_mb": round(end["total"] - first["total"], 1),
           "soak.wall_s": round(time.perf_counter() - t_start, 1)}
    for f in failures[:5]:
        print(f"failure at open {f[0]}: {f[1]}")
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    w.close()
    bad = failures or stuck or res["soak.gui_growth_mb"] > args.max_growth_mb \
        or res["soak.total_growth_mb"] > args.max_growth_mb
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
