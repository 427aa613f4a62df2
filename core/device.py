"""Torch device selection shared by the CLI, the viewer and the engine."""
from __future__ import annotations

import contextlib
import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU raises a readable error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r} (use auto, cpu or cuda)")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device label for the status bar and reports."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX512-BF16): there, bf16 matmuls
    run 6-8x the fp32 rate (docs/performance.md). `POSE_VIEWER_BF16=0|1` overrides the detection."""
    env = os.environ.get("POSE_VIEWER_BF16")
    if env is not None:
        return env.strip().lower() not in ("0", "", "false", "no")
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:   # older torch
        return False


#: Below this batch the bf16 kernels' overhead outweighs their speed (measured: one hypothesis ran
#: 1.5x slower in bf16, 50 ran 1.2x faster; docs/performance.md).
BF16_MIN_BATCH = 16


def inference_precision(device: torch.device | str, batch: int = BF16_MIN_BATCH) -> contextlib.AbstractContextManager:
    """Context for the networks' forward passes at inference: bf16 autocast (matmuls in bf16, results
    and the sampler's arithmetic in fp32) on CPUs with native bf16 and batches of at least
    `BF16_MIN_BATCH`, else a no-op. Measured on the synthetic test split: stage-1 PA-MPJPE unchanged to
    0.01 mm (docs/performance.md)."""
    if torch.device(device).type == "cpu" and batch >= BF16_MIN_BATCH and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
