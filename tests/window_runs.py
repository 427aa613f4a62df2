"""Helpers of the GUI tests that run the engine: a fast setting, and waiting for an image run."""
from __future__ import annotations

import pytest


def fast_engine(window, n: int, steps: int, weights: str = "joint_diffusion"):
    """The window with a fast engine setting (n hypotheses, steps DDIM steps); fails clearly when the
    shipped `weights` the test needs are missing."""
    from core.paths import MODELS_DIR

    if not (MODELS_DIR / f"{weights}.safetensors").exists():
        pytest.fail(f"weights are missing: resources/models/{weights}.safetensors")
    window.settings_panel.n.setValue(n)
    window.settings_panel.steps.setValue(steps)
    return window


def wait_image_run(window, qtbot, start, timeout: int) -> None:
    """Call `start()` and wait until the image run it starts is over; no error."""
    with qtbot.waitSignal(window.runs.busy_changed, timeout=timeout, check_params_cb=lambda busy: not busy):
        assert start() is not False
    assert window.last_error is None, window.last_error

