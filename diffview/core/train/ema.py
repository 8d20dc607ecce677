"""The exponential moving average of a model's weights that a run samples from."""

from __future__ import annotations

import copy

import torch


class EMA:
    """Exponential moving average of the weights, with the warm-up decay_k = min(d, (1+k)/(10+k))."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = True):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    def current_decay(self) -> float:
        k = self.updates
        return min(self.decay, (1 + k) / (10 + k)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        ema_params = list(self.model.parameters()) + list(self.model.buffers())
        params = list(model.parameters()) + list(model.buffers())
        torch._foreach_lerp_([e for e in ema_params if e.is_floating_point()],
                             [p.detach() for p in params if p.is_floating_point()], 1.0 - d)
        self.updates += 1


__all__ = ["EMA"]
