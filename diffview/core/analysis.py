"""Why the model does what it does: the score field, annealed Langevin, the VLB by timestep,
samplers side by side, memorisation, and noise-and-denoise (SDEdit).

Each is a small pure function over a model callable ``model(x_t, t)`` and a NoiseSchedule,
built from the core's own maths (``predict_x0_eps``, ``langevin_step``, ``vlb_terms``,
``iter_sample``): nothing here re-derives an equation the core already implements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .diffusion import (gather, iter_sample, langevin_step, model_variance, predict_x0_eps, q_sample,
                        timestep_sequence)
from .losses import prior_bpd, vlb_terms
from .schedule import NoiseSchedule

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
                     stop: Callable[[], bool] | None = None) -> Iterator[SamplerResult]:
    """Run every sampler from the same x_T (stochastic ones with the same noise seed); a result per sampler.

    ``stop()`` is asked before every model call; once it is True the iteration ends."""
    for spec in specs:
        if stop is not None and stop():
            return
        t0 = time.perf_counter()
        final = None
        for st in iter_sample(model, x_T.shape, schedule, sampler=spec.sampler, steps=spec.steps, eta=spec.eta,
                              objective=objective, clip_x0=clip_x0, x_T=x_T.clone(),
                              generator=torch.Generator().manual_seed(seed)):
            final = st.x_prev
            if stop is not None and stop():  # before the next model call
                return
        yield SamplerResult(spec, final.float().cpu(), time.perf_counter() - t0)


# ----------------------------------------------------------------------------- memorisation
@dataclass
class Neighbours:
    index: np.ndarray  # [N] the nearest training image of each sample
    distance: np.ndarray  # [N] its L2 distance in pixel space ([−1, 1] images)
    rms: np.ndarray  # [N] the same as root-mean-square per pixel, in 0..255 levels
    near_copy: np.ndarray  # [N] bool: distance < ratio × mean distance to the k nearest (Carlini et al. 2023)


def nearest_training_images(samples: torch.Tensor, train, *, k: int = 50, ratio: float = 1 / 3,
                            chunk: int = 4096, stop: Callable[[], bool] | None = None) -> Neighbours | None:
    # ‖x − y‖² = ‖x‖² − 2⟨x, y⟩ + ‖y‖² to rank, the exact ‖x − y‖² kept for each running winner
    """For each sample, its nearest training image in L2 (pixels), and whether it is a near-copy.

    ``samples`` are float images in [−1, 1]; ``train`` is a float tensor of the same kind, or an image
    dataset (``images_uint8(indices)``, e.g. a streamed folder), read ``chunk`` images at a time: only
    one chunk and the running k nearest distances are ever held. A sample is flagged when its distance
    to the nearest image is below ``ratio`` times its mean distance to the ``k`` nearest: copies stand
    out from their neighbourhood, whatever the data. ``stop()`` is asked between chunks (None if True).
    """
    from .data import ImageDataset

    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n_train = len(train)
    s = samples.flatten(1).double()
    best_d2 = torch.full((len(s),), float("inf"), dtype=torch.float64)
    best_i = torch.zeros(len(s), dtype=torch.long)
    k = max(1, min(k, n_train))
    topk = torch.full((len(s), k), float("inf"), dtype=torch.float64)
    s2 = (s * s).sum(1, keepdim=True)
    for lo in range(0, n_train, chunk):
        if stop is not None and stop():
            return None
        idx = torch.arange(lo, min(lo + chunk, n_train))
        streamed = hasattr(train, "images_uint8")
        part = ImageDataset.to_float(train.images_uint8(idx)) if streamed else train[lo:lo + chunk]
        y = part.flatten(1).double()
        d2 = (s2 - 2 * s @ y.T + (y * y).sum(1)[None]).clamp_(min=0)
        i = d2.argmin(1)
        exact = (s - y[i]).pow(2).sum(1)  # no cancellation error for the chunk's winner
        better = exact < best_d2
        best_d2, best_i = torch.where(better, exact, best_d2), torch.where(better, i + lo, best_i)
        topk = torch.cat([topk, d2], 1).topk(k, dim=1, largest=False).values
    dist = best_d2.sqrt()
    mean_k = topk.clamp(min=0).sqrt().mean(1)
    rms = (best_d2 / s.shape[1]).sqrt() * 127.5
    near = dist < ratio * mean_k if n_train > 1 else dist == 0
    return Neighbours(best_i.numpy(), dist.numpy(), rms.numpy(), near.numpy())


# ----------------------------------------------------------------------------- noise and denoise
@torch.no_grad()
def iter_sdedit(model: Model, x0: torch.Tensor, t: int, schedule: NoiseSchedule, *, objective: str,
                sampler: str = "ddim", steps: int = 50, eta: float = 0.0, clip_x0: bool = True,
                generator: torch.Generator | None = None):
    # x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, then the reverse process from t   (Meng et al. 2022, SDEdit, sec. 3)
    """Noise x0 to timestep ``t`` (the 0-based index, as everywhere in diffview; the paper's step t+1)
    and denoise from there; ``t = -1`` leaves the image untouched.

    Yields the SampleSteps of the reverse process; at ``t`` = −1 it yields nothing: the image is
    already x_0. The final ``x_prev`` is the edited image.
    """
    T = schedule.timesteps
    if not -1 <= t <= T - 1:
        raise ValueError(f"t must lie in -1..{T - 1} (-1: no noise), got {t}")
    if t == -1:
        return
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x_t = q_sample(x0, t, schedule, noise)
    yield from iter_sample(model, x0.shape, schedule, sampler=sampler, steps=steps, eta=eta, objective=objective,
                           clip_x0=clip_x0, x_T=x_t, t_start=t, generator=generator)


def sdedit(model: Model, x0: torch.Tensor, t: int, schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """The result of :func:`iter_sdedit`: x0 itself at t = −1."""
    out = x0
    for st in iter_sdedit(model, x0, t, schedule, **kwargs):
        out = st.x_prev
    return out


__all__ = ["LangevinLevel", "Neighbours", "SamplerResult", "SamplerSpec", "VLBResult", "compare_samplers",
           "default_sampler_specs", "iter_annealed_langevin", "iter_sdedit", "langevin_step_size",
           "nearest_training_images", "score_from_model", "sdedit", "vlb_by_timestep"]
