"""Samplers side by side: DDPM, respaced DDPM and DDIM at several η, from one shared x_T."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from diffview.core.diffusion import Model
from diffview.core.sampling import final_sample, iter_sample
from diffview.core.schedule import NoiseSchedule


# ----------------------------------------------------------------------------- samplers side by side
@dataclass(frozen=True)
class SamplerSpec:
    label: str
    sampler: str  # "ddpm" or "ddim"
    steps: int
    eta: float = 0.0


def default_sampler_specs(T: int) -> list[SamplerSpec]:
    """DDPM with T steps, DDPM respaced to 50, and DDIM with 50 and 10 steps at η = 0 and 1."""
    k = min(50, T)
    return [SamplerSpec(f"DDPM, {T} steps", "ddpm", T), SamplerSpec(f"DDPM respaced, {k} steps", "ddpm", k),
            SamplerSpec(f"DDIM η=0, {k} steps", "ddim", k, 0.0), SamplerSpec(f"DDIM η=1, {k} steps", "ddim", k, 1.0),
            SamplerSpec(f"DDIM η=0, {min(10, T)} steps", "ddim", min(10, T), 0.0)]


@dataclass
class SamplerResult:
    spec: SamplerSpec
    samples: torch.Tensor  # x_0, CPU float32
    seconds: float


@torch.no_grad()
def compare_samplers(model: Model, x_T: torch.Tensor, schedule: NoiseSchedule, specs: Sequence[SamplerSpec], *,
                     objective: str, clip_x0: bool = True, seed: int = 0,
                     stop: Callable[[], bool] | None = None, label: torch.Tensor | int | None = None,
                     guidance_scale: float = 1.0) -> Iterator[SamplerResult]:
    """Run every sampler from the same x_T (stochastic ones with the same noise seed); a result per sampler.

    ``label`` (a class index, or one per sample) guides a class-conditional model towards that class at
    ``guidance_scale`` in every sampler alike (``iter_sample``); None samples it unconditionally.
    ``stop()`` is asked before every model call; once it is True the iteration ends."""
    for spec in specs:
        if stop is not None and stop():
            return
        t0 = time.perf_counter()
        final = final_sample(iter_sample(model, x_T.shape, schedule, sampler=spec.sampler, steps=spec.steps,
                                         eta=spec.eta, objective=objective, clip_x0=clip_x0, x_T=x_T.clone(),
                                         generator=torch.Generator().manual_seed(seed), label=label,
                                         guidance_scale=guidance_scale), stop)
        if final is None:  # stopped: asked after every step, before the next model call
            return
        yield SamplerResult(spec, final.float().cpu(), time.perf_counter() - t0)
