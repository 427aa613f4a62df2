"""The test-time optimisation's timestep schedule t(iteration) (paper 003 eq. 11, Table 9), numpy only:
the DPoser dock plots it in the window process, which has no torch (issue 27); `core.prior.tto` runs it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.prior.choices import SCHEDULES, TASK_RANGES

T_EPS = 1e-3  # smallest t used at test time (σ(t) → 0 as t → 0)


@dataclass
class Schedule:
    """Timestep schedule t(iteration). `truncated`: linear t_max → t_min (paper eq. 11);
    `uniform`: linear 1 → 0; `fixed`: t_fixed every iteration; `random`: t ~ U(0, 1) per iteration."""

    kind: str = SCHEDULES[0]
    t_max: float = TASK_RANGES["completion"][0]
    t_min: float = TASK_RANGES["completion"][1]
    t_fixed: float = 0.10

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule '{self.kind}' (choose from {', '.join(SCHEDULES)})")
        if not (0 <= self.t_min <= 1 and 0 <= self.t_max <= 1):
            raise ValueError("t_min and t_max must lie in [0, 1]")
        if self.t_min > self.t_max:
            raise ValueError(f"t_min ({self.t_min}) must not exceed t_max ({self.t_max})")

    def times(self, n: int, seed: int | None = 0) -> np.ndarray:
        if n <= 0:
            return np.zeros(0)
        if self.kind == "truncated":
            t = np.linspace(self.t_max, self.t_min, n) if n > 1 else np.array([self.t_max])
        elif self.kind == "uniform":
            t = np.linspace(1.0, 0.0, n) if n > 1 else np.array([1.0])
        elif self.kind == "fixed":
            t = np.full(n, self.t_fixed)
        else:
            t = np.random.default_rng(seed).uniform(0.0, 1.0, n)
        return np.clip(t, T_EPS, 1.0)
