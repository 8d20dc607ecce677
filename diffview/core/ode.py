"""The probability-flow ODE of the discrete VP process in EDM's variables (Karras et al. 2022).

With σ_t = √((1 − ᾱ_t)/ᾱ_t) (Karras et al. 2022, Table 1, VP) the scaled sample y = x_t/√ᾱ_t = x_0 + σ_t ε
follows dy/dσ = ε̂(x_t, t) (Song et al. 2021, eq. 13, rewritten as Karras et al. 2022, eq. 4 with s = 1).
"""

from __future__ import annotations

import torch

from diffview.core.schedule import NoiseSchedule


def sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    # σ_t = √((1 − ᾱ_t)/ᾱ_t)   (Karras et al. 2022, Table 1: the VP process as x_0 + σ ε, scaled by √ᾱ_t)
    """EDM's noise level σ_t of each 0-based timestep, float64 [T], increasing with t."""
    ab = schedule.alphas_cumprod.to(torch.float64)
    return torch.sqrt((1.0 - ab) / ab)


__all__ = ["sigmas"]
