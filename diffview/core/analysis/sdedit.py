"""Noise an image to timestep t and denoise it with the reverse process (SDEdit, Meng et al. 2022)."""

from __future__ import annotations

import torch

from diffview.core.diffusion import Model, q_sample
from diffview.core.sampling import iter_sample
from diffview.core.schedule import NoiseSchedule


# ----------------------------------------------------------------------------- noise and denoise
@torch.no_grad()
def sdedit_noised(x0: torch.Tensor, t: int, schedule: NoiseSchedule,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    # x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε   (DDPM eq. 4): where SDEdit's reverse process starts
    """x0 noised to the 0-based timestep ``t`` with ε drawn first from ``generator``, exactly as
    :func:`iter_sdedit` starts: for the same seed, the x_t it then denoises (no model needed)."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    return q_sample(x0, t, schedule, noise)


@torch.no_grad()
def iter_sdedit(model: Model, x0: torch.Tensor, t: int, schedule: NoiseSchedule, *, objective: str,
                sampler: str = "ddim", steps: int = 50, eta: float = 0.0, clip_x0: bool = True,
                generator: torch.Generator | None = None, label: torch.Tensor | int | None = None,
                guidance_scale: float = 1.0):
    # x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, then the reverse process from t   (Meng et al. 2022, SDEdit, sec. 3)
    """Noise x0 to timestep ``t`` (the 0-based index, as everywhere in diffview; the paper's step t+1)
    and denoise from there; ``t = -1`` leaves the image untouched.

    Yields the SampleSteps of the reverse process; at ``t`` = −1 it yields nothing: the image is
    already x_0. The final ``x_prev`` is the edited image. ``label`` steers the denoising of a
    class-conditional model towards that class at ``guidance_scale`` (``iter_sample``; noise a 3, denoise
    it as a 7); None denoises unconditionally.
    """
    T = schedule.timesteps
    if not -1 <= t <= T - 1:
        raise ValueError(f"t must lie in -1..{T - 1} (-1: no noise), got {t}")
    if t == -1:
        return
    x_t = sdedit_noised(x0, t, schedule, generator)
    yield from iter_sample(model, x0.shape, schedule, sampler=sampler, steps=steps, eta=eta, objective=objective,
                           clip_x0=clip_x0, x_T=x_t, t_start=t, generator=generator, label=label,
                           guidance_scale=guidance_scale)


def sdedit(model: Model, x0: torch.Tensor, t: int, schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """The result of :func:`iter_sdedit`: x0 itself at t = −1."""
    out = x0
    for st in iter_sdedit(model, x0, t, schedule, **kwargs):
        out = st.x_prev
    return out
