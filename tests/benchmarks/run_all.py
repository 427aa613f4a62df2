"""Run the cascade, DPoser and viewer benchmarks one after another and merge their medians.

    python tests/benchmarks/run_all.py [--out benchmarks.json] [--quick]

Each benchmark runs in its own process (the viewer one under `xvfb-run` when there is no display);
the merged JSON holds every key they write (issue targets: cascade.n50_s10_ms, cascade.n1_s10_ms,
cascade.n50_s1_ms, dposer.prior_ms, dposer.none_ms, viewer.startup_s, viewer.scrub_frame_ms,
viewer.max_stall_ms) plus the machine and its load average. Prints the targets table. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: key → (target, unit); lower is better for all
TARGETS = {
    "cascade.n50_s10_ms": (1000, "ms"),
    "cascade.n50_s1_ms": (200, "ms"),
    "cascade.n50_over_n1_s10": (3, "x"),
    "dposer.prior_ms": (2000, "ms"),
    "dposer.prior_overhead": (0.10, ""),
    "viewer.startup_s": (3, "s"),
    "viewer.scrub_frame_ms": (16, "ms"),
    "viewer.max_stall_ms": (100, "ms"),
}


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(cmd: list[str], env: dict) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks.json"))
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for the docs)")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    py = sys.executable
    reps = "1" if args.quick else "5"
    merged: dict[str, object] = {"machine": f"{cpu_name()}, {os.cpu_count()} cores",
                                 "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        t = pathlib.Path(tmp)
        run([py, str(HERE / "bench_cascade.py"), "--repeats", reps, "--json", str(t / "cascade.json")], env)
        run([py, str(HERE / "bench_dposer.py"), "--reps", reps, "--tasks", "joints", "--threads", "1",
             "--json", str(t / "dposer.json")], env)
        viewer = [py, str(HERE / "bench_viewer.py"), "--repeats", "1" if args.quick else "3",
                  "--json", str(t / "viewer.json")]
        if not env.get("DISPLAY") and shutil.which("xvfb-run"):
            viewer = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"] + viewer
        run(viewer, env)
        for name in ("cascade", "dposer", "viewer"):
            merged.update(json.loads((t / f"{name}.json").read_text()))
    if "dposer.prior_ms" in merged and "dposer.none_ms" in merged:
        merged["dposer.prior_overhead"] = merged["dposer.prior_ms"] / merged["dposer.none_ms"] - 1
    merged["load_average_after"] = os.getloadavg()[0]
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\n{merged['machine']}; load average {merged['load_average_before']:.1f} → "
          f"{merged['load_average_after']:.1f}\n")
    print("| key | median | target | met |\n|---|---|---|---|")
    for key, (target, unit) in TARGETS.items():
        if key in merged:
            v = float(merged[key])
            shown = f"{100 * v:+.1f} %" if key.endswith("overhead") else f"{v:.3g} {unit}"
            print(f"| `{key}` | {shown} | ≤ {target} {unit} | {'yes' if v <= target else 'no'} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
