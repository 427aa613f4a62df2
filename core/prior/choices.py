"""What every DPoser front end offers (CLI `complete`, `pose-viewer --complete`, the DPoser dock): the
schedule kinds, the regularisers, the truncated range per task and the run defaults — defined once here,
torch-free so the GUI's argument parser can import them without loading torch."""
from __future__ import annotations

#: Timestep schedules of the test-time optimisation (`core.prior.tto.Schedule`); the first is the default.
SCHEDULES = ("truncated", "uniform", "fixed", "random")
#: Regularisers in the same loop: the DPoser prior, then the baselines; the first is the default.
PRIORS = ("dposer", "none", "l2")
#: Default truncated ranges (t_max, t_min) per task (paper supp. E; sparse/partial IK per the reference code).
TASK_RANGES = {
    "completion": (0.15, 0.05),
    "ik": (0.15, 0.05),
    "sparse_ik": (0.20, 0.05),
    "fit2d": (0.12, 0.08),
    "denoise": (0.20, 0.05),
}
DEFAULT_HYPOTHESES = 10   # S completions per run
DEFAULT_ITERS = 100       # test-time optimisation iterations
#: Iterations of the refinement of a photo's result (`core.refine`: why so few is said there).
DEFAULT_REFINE_ITERS = 20
