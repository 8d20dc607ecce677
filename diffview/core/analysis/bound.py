"""The variational bound of a model by timestep, on a batch of images (DDPM eq. 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from diffview.core.diffusion import Model, model_variance
from diffview.core.losses import prior_bpd, vlb_terms
from diffview.core.schedule import NoiseSchedule


# ----------------------------------------------------------------------------- the bound by timestep
@dataclass
class VLBResult:
    timesteps: np.ndarray  # the timesteps evaluated (0-based), ascending
    terms: np.ndarray  # mean bits/dim of L_t at each (column 0 is L_0, the decoder)
    prior: float  # L_T, bits/dim
    total: float  # the bound on −log p(x_0) in bits/dim (subsampled terms rescaled to all T)
    subsampled: bool
    images: int
    variance: str = "fixed_small"  # p_θ's σ²_t: the model's own (fixed_small, fixed_large, learned, learned_range)


def vlb_by_timestep(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, *, objective: str,
                    timesteps: int | None = None, seed: int = 0,
                    progress: Callable[[int, int], bool | None] | None = None) -> VLBResult | None:
    # −log p(x_0) ≤ L_T + Σ_{t>1} L_{t−1} + L_0   (DDPM eq. 5), each term from the core's vlb_terms
    """The VLB terms of ``model`` on images x0 [B, C, H, W] in [−1, 1], averaged over images, with
    p_θ's variance the model's own (``model_variance``: learned where the model learned it).

    With ``timesteps`` = k < T, L_0 and k − 1 evenly spaced L_t are computed and their sum is
    rescaled to the T − 1 KL terms. ``progress(done, total)`` is called after each timestep (each
    model call); if it returns True the computation stops there and None is returned.
    """
    T = schedule.timesteps
    if timesteps is None or timesteps >= T:
        ts = list(range(T))
    else:
        ts = sorted({0, *np.round(np.linspace(1, T - 1, max(1, timesteps - 1))).astype(int).tolist()})
    g = torch.Generator().manual_seed(seed)
    variance = model_variance(model)
    means = []
    for i, t in enumerate(ts):  # the noise of each t drawn from g in ascending t, as one vlb_terms call would
        terms = vlb_terms(model, x0, schedule, objective=objective, variance=variance, generator=g, timesteps=[t])
        means.append(float(terms[:, t].mean()))
        if progress is not None and progress(i + 1, len(ts)):
            return None
    terms = np.asarray(means)
    kl = terms[1:]
    kl_sum = float(kl.sum() * (T - 1) / len(kl)) if len(kl) else 0.0
    prior = float(prior_bpd(x0, schedule).mean())
    return VLBResult(np.asarray(ts), terms, prior, prior + float(terms[0]) + kl_sum, len(ts) < T, x0.shape[0],
                     variance)
