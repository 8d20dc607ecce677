"""The precision a run's network computes in while it trains: bfloat16 autocast or float32.

Under bf16 autocast the convolutions and matrix products take bfloat16 inputs and accumulate in float32;
the weights, the optimiser's state, the EMA and the loss (core/losses.py casts the network's output)
stay float32. ``"auto"`` chooses it where the hardware computes bfloat16 natively, for images: a CUDA GPU
that supports it, and a CPU with AVX512-BF16 or AMX (oneDNN's native bf16 kernels; on other CPUs bfloat16
is emulated and slower than float32). On the built-in digits it gives the same samples per step in less
time (benchmarks/README.md). Sampling, the previews and every analysis stay float32: the numbers they show
are the papers' to float precision.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic in hardware (AVX512-BF16 or AMX tiles)."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    for check in checks:
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # pragma: no cover - a build without cpuinfo
            pass
    return False


def trains_in_bf16(precision: str, device: torch.device, kind: str = "images") -> bool:
    """Whether a run of ``precision`` on ``device`` trains its network under bf16 autocast.

    ``kind`` is the data's ("images" or "points"): "auto" keeps the 2D points' small MLP in float32,
    where bf16 buys no time and its 8-bit mantissa would show in the score field."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16"
    if kind != "images":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def describe_precision(bf16: bool) -> str:
    """The log's words for it."""
    return "bf16 autocast" if bf16 else "float32"
