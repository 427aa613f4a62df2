"""Where the window's memory goes: opens the window, shows the sample image's result, then prints the
RSS of the window process and of each engine process, the window's largest mappings (/proc smaps) and
which heavy packages it has imported. A probe for issue 27's footprint figures (bench_viewer.py reports
the same two totals as JSON).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/benchmarks/probe_rss.py [--top 25]
"""
from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from _rss import children, rss_mb, tree_rss_mb  # noqa: E402

# "vtk" is the all-modules package (the window imports only the vtkmodules it draws with)
HEAVY = ("torch", "matplotlib", "scipy", "cv2", "mediapipe", "pyvista", "pyvistaqt", "vtk", "vtkmodules", "PIL",
         "numpy", "pandas")


def mappings(pid: int) -> list[tuple[float, str]]:
    """(RSS MB, mapping name) summed per file / [heap] / anonymous, largest first."""
    sizes: dict[str, float] = collections.defaultdict(float)
    name = "[anon]"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts[0]) > 8 and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                sizes[name] += int(parts[1]) / 1024
    return sorted(((v, k) for k, v in sizes.items()), reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-image", action="store_true", help="stop after the window is ready")
    args = ap.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    import tempfile

    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pose-viewer-probe-config-")
    marks = [("python start", rss_mb())]
    from viewer.app import qt_environment

    qt_environment()
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    marks.append(("QApplication", rss_mb()))
    from viewer.main_window import MainWindow

    marks.append(("viewer imported", rss_mb()))
    w = MainWindow()
    w.show()
    marks.append(("window shown", rss_mb()))
    t0 = time.perf_counter()
    while not w.ready:
        app.processEvents()
        time.sleep(0.01)
    marks.append((f"ready ({time.perf_counter() - t0:.1f} s)", rss_mb()))
    while not w.runs.child_ready:   # the image engine too (its models load after DPoser's)
        app.processEvents()
        time.sleep(0.01)
    marks.append((f"engine ready ({time.perf_counter() - t0:.1f} s)", rss_mb()))
    if not args.no_image:
        w.open_path(str(ROOT / "resources" / "samples" / "anny_right_256.jpg"))
        app.processEvents()
        while w.runs.busy:
            app.processEvents()
            time.sleep(0.01)
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.01)
        if w.last_error:
            print("error:", w.last_error)
        marks.append(("sample image shown", rss_mb()))
    for label, mb in marks:
        print(f"{label:28s} {mb:8.1f} MB")
    tree = tree_rss_mb()
    for pid in children(os.getpid()):
        with open(f"/proc/{pid}/cmdline") as f:
            cmd = f.read().replace("\0", " ")[:60]
        print(f"child {pid:7d} {rss_mb(pid):8.1f} MB  {cmd}")
        for mb, name in mappings(pid)[: args.top // 2]:
            print(f"      {mb:8.1f} MB  {name}")
    print(f"TOTAL gui {tree['gui']:.1f} children {tree['children']:.1f} total {tree['total']:.1f} MB")
    print("heavy modules in the window:", ", ".join(m for m in HEAVY if m in sys.modules))
    print(f"modules: {len(sys.modules)}")
    for mb, name in mappings(os.getpid())[: args.top]:
        print(f"  {mb:8.1f} MB  {name}")
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
