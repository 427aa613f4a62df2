"""Cost of one model change as the viewer's models emit it (psygnal evented dataclass, viewer/state.py)
against a plain attribute set and a hand-rolled callback list (the viewer's first `Signal`).

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_model_events.py
"""
from __future__ import annotations

import statistics
import timeit


def main(number: int = 200_000, repeats: int = 7) -> None:
    from viewer.state import TrajectoryState, batch

    class HandRolled:   # the viewer's first events: a list of callbacks, emitted by hand
        def __init__(self) -> None:
            self.step, self.callbacks = 0, []

        def set_step(self, step: int) -> None:
            if step != self.step:
                self.step = step
                for cb in list(self.callbacks):
                    cb(self)

    sink = []
    evented = TrajectoryState()
    evented.events.step.connect(lambda v: sink.append(v) if len(sink) > 1_000_000 else None)
    plain = HandRolled()
    plain.callbacks.append(lambda s: sink.append(s) if len(sink) > 1_000_000 else None)
    counter = iter(range(10**9))

    def evented_set() -> None:
        evented.step = next(counter)

    def batched_set() -> None:
        with batch(evented):
            evented.step = next(counter)

    def plain_set() -> None:
        plain.set_step(next(counter))

    for name, fn in (("psygnal field set + emit", evented_set), ("hand-rolled set + emit", plain_set),
                     ("psygnal, inside batch()", batched_set)):
        n = number // 10 if "batch" in name else number
        times = [timeit.timeit(fn, number=n) / n * 1e6 for _ in range(repeats)]
        print(f"{name:28s} median {statistics.median(times):.2f} µs  (min {min(times):.2f}, {repeats} × {n})")


if __name__ == "__main__":
    main()
