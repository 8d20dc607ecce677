"""The learned score s_θ(x, t) = −ε_θ/√(1−ᾱ_t), its classifier-free guided form for a class, and annealed
Langevin dynamics driven by it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from diffview.core.diffusion import gather, langevin_step, predict_x0_eps
from diffview.core.guidance import guided
from diffview.core.sampling import timestep_sequence
from diffview.core.schedule import NoiseSchedule

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- the score
@torch.no_grad()
def score_from_model(model: Model, x_t: torch.Tensor, t: int, schedule: NoiseSchedule, objective: str,
                     clip_x0: bool = False) -> torch.Tensor:
    # s_θ(x_t, t) = ∇ log p_t(x_t) ≈ −ε_θ(x_t, t) / √(1 − ᾱ_t)   (Song et al. 2021, eq. 9 with Ho et al.'s ε)
    """The learned score at timestep ``t`` for points or images ``x_t``."""
    tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
    _, eps = predict_x0_eps(model(x_t, tt), x_t, tt, schedule, objective, clip_x0)
    return -eps / gather(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)


@torch.no_grad()
def guided_score_from_model(model, x_t: torch.Tensor, t: int, schedule: NoiseSchedule, objective: str,
                            label: torch.Tensor | int, scale: float, clip_x0: bool = False) -> torch.Tensor:
    # s̃(x_t, t, y) = −ε̃/√(1 − ᾱ_t), ε̃ = ε_u + S (ε_c − ε_u)   (Ho & Salimans 2021, eq. 6)
    """The guided score towards class ``label`` at scale S of a class-conditional ``model``: its output
    guided by :class:`~diffview.core.guidance.Guided` (for x_0 and v the output, which is guiding ε), then
    turned into ε by ``predict_x0_eps`` as the unguided score is. S = 0 is the unconditional score and
    S = 1 the conditional one, exactly."""
    return score_from_model(guided(model, label, scale), x_t, t, schedule, objective, clip_x0)


def langevin_step_size(step_size: float, t: int, schedule: NoiseSchedule) -> float:
    # δ_t = δ · (1 − ᾱ_t): the step shrinks with the noise level   (Song & Ermon 2019, Algorithm 1, α_i ∝ σ_i²)
    """The Langevin step at noise level t for a base step ``step_size``."""
    return float(step_size * (1.0 - schedule.alphas_cumprod[int(t)]))


@dataclass(frozen=True)
class LangevinLevel:
    index: int  # 0 at the highest noise level
    t: int
    x: torch.Tensor  # the samples after this level's Langevin steps


def iter_annealed_langevin(score: Callable[[torch.Tensor, int], torch.Tensor], x_T: torch.Tensor,
                           schedule: NoiseSchedule, *, levels: int = 50, steps_per_level: int = 10,
                           step_size: float = 0.1, generator: torch.Generator | None = None
                           ) -> Iterator[LangevinLevel]:
    # x ← x + (δ_t/2) s(x, t) + √δ_t z at each level t, from the noisiest down   (Song & Ermon 2019, Algorithm 1)
    """Annealed Langevin dynamics over ``levels`` noise levels of ``schedule`` (evenly spaced from T−1
    down to 0), ``steps_per_level`` updates each, with the score ``score(x, t)``; a level per yield."""
    if levels < 1 or steps_per_level < 1 or not step_size > 0:
        raise ValueError("levels and steps per level must be >= 1 and the step size > 0")
    x = x_T
    for index, t in enumerate(timestep_sequence(schedule.timesteps, min(levels, schedule.timesteps), "linspace")):
        delta = langevin_step_size(step_size, t, schedule)
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = langevin_step(score(x, t), x, delta, z)
        yield LangevinLevel(index, t, x)
