"""The viewer's handle on the engine: builds the estimator once (on a worker thread) and runs it.

Uses the full cascade (`core.cascade`) when it and its weights are available, else stage 1 alone
(joint hypotheses only). All computation happens in `core`; this only chooses and calls.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Estimate:
    """What one image run returns to the GUI thread."""

    path: str
    image: np.ndarray
    detections: list[Any]
    chosen: int
    result: Any
    reprojection_px: np.ndarray
    seconds: float


class Engine:
    """Lazily constructed detector + estimator, shared by all runs (guarded by a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._estimator: Any = None
        self._device: str | None = None
        self.kind = "not loaded"

    def estimator(self, device: str = "auto") -> Any:
        with self._lock:
            if self._estimator is None or device != self._device:
                from core.device import pick_device

                dev = pick_device(device)
                try:
                    from core.cascade import CascadeEstimator

                    self._estimator = CascadeEstimator(device=dev)
                    self.kind = "cascade (joints + meshes)"
                except ImportError:
                    from core.stage1 import Stage1Estimator

                    self._estimator = Stage1Estimator(device=dev)
                    self.kind = "stage 1 (joints only)"
                self._device = device
            return self._estimator

    def detect(self, image: np.ndarray) -> list[Any]:
        """Every hand in the image, largest first (raises NoHandError when there is none)."""
        from core.detector import select_hands

        est = self.estimator(self._device or "auto")
        return select_hands(est.detector.detect(image), "all")

    def run(self, path: str, image: np.ndarray | None, detections: list[Any] | None, chosen: int,
            settings: dict, progress, cancel) -> Estimate:
        """Load (if needed), detect (if needed) and estimate the chosen hand."""
        import time

        from core.geometry import intrinsics_from_size
        from core.hypotheses import reprojection_errors
        from core.io.images import load_image

        t0 = time.perf_counter()
        progress(0, 3, "loading")
        if image is None:
            image = load_image(path)
        est = self.estimator(settings.get("device", "auto"))
        if detections is None:
            progress(1, 3, "detecting")
            detections = self.detect(image)
            chosen = 0
        det = detections[chosen]
        h, w = image.shape[:2]
        K = intrinsics_from_size(w, h)

        def step(done: int, total: int) -> None:
            progress(done, total, "denoising")

        kwargs = dict(n=settings.get("n", 50), steps=settings.get("steps", 10), seed=settings.get("seed", 0),
                      progress=step, cancel=cancel)
        if self.kind.startswith("cascade"):
            kwargs["mode"] = settings.get("mode", "cloud")
        result = est.run_detection(det, K, **kwargs)
        err = reprojection_errors(result.joint_hypotheses, result.cam_t, result.keypoints2d, result.K)
        return Estimate(path, image, detections, chosen, result, err, time.perf_counter() - t0)
