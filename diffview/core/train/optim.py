"""The optimiser a run trains with: AdamW, fused into one kernel where this torch has one for the device.

The fused kernel (CUDA; the CPU from torch 2.4) computes the same update as the per-tensor loop, in float32,
to rounding, and on the CPU it takes a quarter of the time: 1 ms a step against 4 for the default 0.36M
network, about 4% of a bf16 step (benchmarks/README.md). Where the kernel is missing the loop runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import torch

BETAS = (0.9, 0.99)  # Adam's β₁ and β₂ (β₂ 0.99 rather than 0.999 suits runs of a few thousand steps)


@lru_cache(maxsize=None)
def fused_adamw_available(device_type: str) -> bool:
    """Whether this torch has the fused AdamW kernel for ``device_type`` ("cpu", "cuda", "mps")."""
    try:
        torch.optim.AdamW([torch.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError, TypeError):  # no kernel for the device, or a torch without fused=
        return False
    return True


def make_adamw(params: Iterable[torch.nn.Parameter], device: torch.device, *, lr: float,
               weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) over ``params`` on ``device``, fused where available."""
    fused = fused_adamw_available(device.type)
    return torch.optim.AdamW(params, lr=lr, betas=BETAS, weight_decay=weight_decay,
                             **({"fused": True} if fused else {}))


def keep_kernel(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """After ``opt.load_state_dict``: step with this machine's kernel, not the one the checkpoint recorded
    (a run saved on a GPU, with fused=True, resumes on a CPU whose torch may have no fused kernel)."""
    fused = fused_adamw_available(device.type)
    for group in opt.param_groups:
        group["fused"] = True if fused else None
        if fused:
            group["foreach"] = None  # torch refuses fused and foreach together
        # the step counts where this kernel reads them, as torch's own loading would place them: on the
        # parameter's device for the fused (or capturable) kernel, on the CPU for the loop
        on_device = fused or group.get("capturable", False)
        for p in group["params"]:
            state = opt.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(device=p.device if on_device else "cpu", dtype=torch.float32)


__all__ = ["BETAS", "fused_adamw_available", "keep_kernel", "make_adamw"]
