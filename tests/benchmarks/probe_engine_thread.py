"""Image runs of the engine on the process's main thread vs on a second thread (issue 27 follow-up):
under load, the cascade's networks ran 10-35 x slower on the main thread (OpenMP spin-waiting; see
docs/reliability.md, "One engine process, two lanes"). Runs at the engine process's niceness.

    ANNY_CACHE_DIR=.cache/anny MALLOC_ARENA_MAX=2 [OMP_WAIT_POLICY=PASSIVE] \
        .venv/bin/python tests/benchmarks/probe_engine_thread.py msm

Each letter is three runs of the sample image (50 x 10): `m` on the main thread, `s` on a new thread.
Prints the seconds per run and the pipeline's own timings (`HandResult.timings`).
"""
from __future__ import annotations

import os
import sys
import threading
import time


def runs(engine, tag: str) -> None:
    from core.paths import SAMPLE_IMAGE

    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        est = engine.run(str(SAMPLE_IMAGE), None, None, 0, {"n": 50, "steps": 10}, lambda *a, **k: None,
                         lambda: False)
        seconds.append(round(time.perf_counter() - t0, 2))
        print("   ", {k: round(v, 3) for k, v in est.result.timings.items() if isinstance(v, float)}, flush=True)
    print(f"{tag}: {seconds} s  (load {' '.join(open('/proc/loadavg').read().split()[:3])})", flush=True)


def main() -> int:
    from viewer.engine import WORKER_NICENESS, Engine

    os.nice(WORKER_NICENESS)
    engine = Engine()
    engine.pipeline("auto").warm()
    for where in (sys.argv[1] if len(sys.argv) > 1 else "ms"):
        if where == "m":
            runs(engine, "main thread")
        else:
            t = threading.Thread(target=runs, args=(engine, "second thread"))
            t.start()
            t.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
