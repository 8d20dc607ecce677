"""The forward process q, the reverse steps p_θ, and the samplers built on them.

References: DDPM (Ho et al. 2020), improved DDPM (Nichol & Dhariwal 2021),
DDIM (Song et al. 2021), v-prediction (Salimans & Ho 2022).

Timesteps are 0-based indices t ∈ {0, …, T−1} (index t is the paper's step t+1).
Every function taking ``t`` accepts a plain int or a LongTensor of shape [B]
(one timestep per sample). Coefficients are gathered from the float64 schedule
and cast to the dtype and device of the input tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from diffview.core.schedule import NoiseSchedule, respace

OBJECTIVES = ("eps", "x0", "v")
SAMPLERS = ("ddpm", "ddim")
SPACINGS = ("trailing", "leading", "linspace")
VARIANCES = ("fixed_small", "fixed_large", "learned", "learned_range")
LEARNED_VARIANCES = ("learned", "learned_range")  # the model's own σ²_t: ``model.with_variance(x_t, t)``

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gather(coef: torch.Tensor, t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """coef[t] cast to x's dtype/device, shaped to broadcast over x ([B, 1, 1, …] or a scalar)."""
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        out = coef.to(device=t.device)[t.long()].to(dtype=x.dtype, device=x.device)
        return out.reshape(-1, *([1] * (x.ndim - 1)))
    return coef[int(t)].to(dtype=x.dtype, device=x.device)


def q_sample(
    x0: torch.Tensor, t: int | torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor | None = None
) -> torch.Tensor:
    # x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε   (DDPM eq. 4, the reparameterisation of q(x_t | x_0))
    """Sample q(x_t | x_0) in closed form; ``noise`` is ε ~ N(0, I) (drawn if None)."""
    if noise is None:
        noise = torch.randn_like(x0)
    return gather(schedule.sqrt_alphas_cumprod, t, x0) * x0 + gather(
        schedule.sqrt_one_minus_alphas_cumprod, t, x0
    ) * noise


def q_posterior(
    x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor, schedule: NoiseSchedule
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # μ̃_t = √ᾱ_{t−1} β_t/(1−ᾱ_t) x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t,  β̃_t   (DDPM eqs. 6–7)
    """Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x_0).

    The variances are broadcastable to x ([B, 1, …] for a tensor t, a scalar for an int t).
    """
    mean = gather(schedule.posterior_mean_coef1, t, x_t) * x0 + gather(schedule.posterior_mean_coef2, t, x_t) * x_t
    variance = gather(schedule.posterior_variance, t, x_t)
    log_variance = gather(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, variance, log_variance


def predict_x0_from_eps(x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor, schedule: NoiseSchedule):
    # x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t   (DDPM eq. 4 solved for x_0; DDPM eq. 15)
    """The x_0 implied by a noise prediction ε at x_t."""
    return (x_t - gather(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / gather(
        schedule.sqrt_alphas_cumprod, t, x_t
    )


def predict_eps_from_x0(x_t: torch.Tensor, t: int | torch.Tensor, x0: torch.Tensor, schedule: NoiseSchedule):
    # ε̂ = (x_t − √ᾱ_t x_0) / √(1−ᾱ_t)   (DDPM eq. 4 solved for ε)
    """The noise ε implied by an x_0 prediction at x_t."""
    return (x_t - gather(schedule.sqrt_alphas_cumprod, t, x_t) * x0) / gather(
        schedule.sqrt_one_minus_alphas_cumprod, t, x_t
    )


def predict_x0_from_v(x_t: torch.Tensor, t: int | torch.Tensor, v: torch.Tensor, schedule: NoiseSchedule):
    # x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v   (Salimans & Ho 2022, sec. 4)
    """The x_0 implied by a v prediction at x_t."""
    return gather(schedule.sqrt_alphas_cumprod, t, x_t) * x_t - gather(
        schedule.sqrt_one_minus_alphas_cumprod, t, x_t
    ) * v


def v_target(x0: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor, schedule: NoiseSchedule):
    # v = √ᾱ_t ε − √(1−ᾱ_t) x_0   (Salimans & Ho 2022, sec. 4)
    """The velocity target v for x_0 noised with ε at t."""
    return gather(schedule.sqrt_alphas_cumprod, t, x0) * eps - gather(
        schedule.sqrt_one_minus_alphas_cumprod, t, x0
    ) * x0


def fixed_large_log_variance(schedule: NoiseSchedule) -> torch.Tensor:
    # σ²_t = β_t, with the t = 0 entry set to β̃_1 as in improved-diffusion (unused: no noise at t = 0)   (DDPM sec. 3.2)
    """log σ²_t of the ``fixed_large`` reverse variance, per timestep (float64, length T)."""
    if len(schedule) == 1:
        return torch.log(schedule.betas)
    return torch.log(torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]))


def model_variance(model) -> str:
    """The reverse variance a model was trained for: its ``variance_type``, else ``fixed_small``."""
    return getattr(model, "variance_type", "fixed_small")


def model_outputs(model, x_t: torch.Tensor, t: torch.Tensor, variance: str):
    """(the mean prediction, the variance output v or None): one model call; a learned-variance model
    gives both through ``model.with_variance``."""
    if variance in LEARNED_VARIANCES:
        if not hasattr(model, "with_variance"):
            raise ValueError(f"variance {variance!r} needs a model that predicts its variance; this one does not")
        return model.with_variance(x_t, t)
    return model(x_t, t), None


def p_log_variance(t: int | torch.Tensor, x_t: torch.Tensor, schedule: NoiseSchedule, variance: str = "fixed_small",
                   model_var: torch.Tensor | None = None) -> torch.Tensor:
    # learned_range: log σ²_t = v′ log β_t + (1 − v′) log β̃_t, v′ = (v + 1)/2   (improved DDPM eq. 15)
    """log σ²_t of p_θ(x_{t−1} | x_t): β̃_t (fixed_small, clipped at t = 0), β_t (fixed_large), the
    interpolation of improved DDPM (learned_range), or σ²_t = v itself (learned, as diffusers'
    DDPMScheduler reads it). Broadcastable to x_t."""
    if variance == "fixed_small":
        return gather(schedule.posterior_log_variance_clipped, t, x_t)
    if variance == "fixed_large":
        return gather(fixed_large_log_variance(schedule), t, x_t)
    if variance not in LEARNED_VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; choose one of {', '.join(VARIANCES)}")
    if model_var is None:
        raise ValueError(f"variance {variance!r} needs the model's variance output")
    if variance == "learned":
        if not bool((model_var > 0).all()):
            raise ValueError("the model's learned variance σ² is not positive everywhere: p_θ is undefined there")
        return torch.log(model_var)
    frac = (model_var + 1) / 2
    max_log = gather(torch.log(schedule.betas), t, x_t)
    return frac * max_log + (1 - frac) * gather(schedule.posterior_log_variance_clipped, t, x_t)


def predict_x0_eps(
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    schedule: NoiseSchedule,
    objective: str = "eps",
    clip_x0: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from a model output under ``objective``; with ``clip_x0`` x̂_0 is clipped to
    [−1, 1] and ε̂ recomputed from the clipped x̂_0 so the two stay consistent."""
    if objective == "eps":
        x0 = predict_x0_from_eps(x_t, t, model_output, schedule)
        eps = model_output
    elif objective == "x0":
        x0 = model_output
        eps = None
    elif objective == "v":
        x0 = predict_x0_from_v(x_t, t, model_output, schedule)
        eps = None
    else:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
        eps = None
    if eps is None:
        eps = predict_eps_from_x0(x_t, t, x0, schedule)
    return x0, eps


@dataclass(frozen=True)
class StepResult:
    prev: torch.Tensor  # the sample one step earlier in the chain, x_{t−1} (or x_{t_prev})
    x0_pred: torch.Tensor  # the model's x̂_0 at this step


def ddpm_step(
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    schedule: NoiseSchedule,
    *,
    objective: str = "eps",
    variance: str = "fixed_small",
    clip_x0: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    model_var: torch.Tensor | None = None,
) -> StepResult:
    # x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z, σ²_t = β̃_t, β_t or learned   (DDPM Alg. 2, eqs. 6–7; improved DDPM eq. 15)
    """One ancestral step of p_θ(x_{t−1} | x_t); no noise is added at t = 0. ``model_var`` is the
    model's variance output for a learned ``variance`` (see :func:`p_log_variance`)."""
    x0, _ = predict_x0_eps(model_output, x_t, t, schedule, objective, clip_x0)
    mean, _, _ = q_posterior(x0, x_t, t, schedule)
    log_var = p_log_variance(t, x_t, schedule, variance, model_var)
    if noise is None:
        noise = _randn_like(x_t, generator)
    nonzero = _nonzero_mask(t, x_t)
    prev = mean + nonzero * torch.exp(0.5 * log_var) * noise
    return StepResult(prev=prev, x0_pred=x0)


def ddim_step(
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    t_prev: int | torch.Tensor,
    schedule: NoiseSchedule,
    *,
    eta: float = 0.0,
    objective: str = "eps",
    clip_x0: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> StepResult:
    # x_{t_prev} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z   (DDIM eq. 12; σ from eq. 16 times η)
    """One DDIM step from t to t_prev (< t); ``t_prev = -1`` means ᾱ_prev = 1 (the final step)."""
    x0, eps = predict_x0_eps(model_output, x_t, t, schedule, objective, clip_x0)
    ab = gather(schedule.alphas_cumprod, t, x_t)
    ab_ext = torch.cat([torch.ones(1, dtype=schedule.alphas_cumprod.dtype), schedule.alphas_cumprod])
    t_prev_idx = t_prev + 1 if isinstance(t_prev, torch.Tensor) else int(t_prev) + 1
    ab_prev = gather(ab_ext, t_prev_idx, x_t)
    sigma = eta * torch.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
    direction = torch.sqrt((1.0 - ab_prev - sigma**2).clamp(min=0.0)) * eps
    prev = torch.sqrt(ab_prev) * x0 + direction
    if eta > 0:
        if noise is None:
            noise = _randn_like(x_t, generator)
        prev = prev + sigma * noise
    return StepResult(prev=prev, x0_pred=x0)


def timestep_sequence(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The descending timesteps a sampler with ``steps`` steps visits out of T, for i = 0 … steps−1.

    Exactly ``steps`` distinct 0-based timesteps in [0, T), computed with integers (no float step
    whose rounding could add or drop one); ties round half to even, as numpy does.

    - ``trailing``: round(T − i·T/steps) − 1, so the first step is T−1 and the last round(T/steps)−1
      (Lin et al. 2024, table 2);
    - ``leading``: (steps−1−i)·(T // steps), so the last step is 0 and the first (steps−1)·(T // steps)
      (DDIM's original spacing);
    - ``linspace``: round((steps−1−i)·(T−1)/(steps−1)), so the first is T−1 and the last 0; a single
      step is at T−1, where the chain starts.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..{T} (the schedule's T), got {steps!r}")
    steps = int(steps)
    if spacing == "trailing":
        return [_round_half_even(T * (steps - i), steps) - 1 for i in range(steps)]
    if spacing == "leading":
        return [(steps - 1 - i) * (T // steps) for i in range(steps)]
    if spacing == "linspace":
        if steps == 1:
            return [T - 1]
        return [_round_half_even((steps - 1 - i) * (T - 1), steps - 1) for i in range(steps)]
    raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")


def check_timesteps(ts: Sequence[int], T: int) -> None:
    """Refuse a sampler's timesteps unless they are non-empty, strictly descending and in [0, T)."""
    if len(ts) == 0:
        raise ValueError("the sampler has no timesteps to visit")
    bad = [t for t in ts if not 0 <= t < T]
    if bad:
        raise ValueError(f"timestep {bad[0]} lies outside 0..{T - 1} (the schedule's T = {T})")
    for a, b in zip(ts, ts[1:]):
        if not b < a:
            raise ValueError(f"timesteps must be strictly descending, got {a} then {b}")


def _round_half_even(num: int, den: int) -> int:
    """round(num / den) for integers, den > 0, ties to even (exact, unlike a float division)."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return q


@dataclass(frozen=True)
class SampleStep:
    """One step of the reverse process, as a view shows it."""

    index: int  # 0 for the first step (at the largest t)
    t: int  # the timestep of x_t (0-based, original schedule)
    t_prev: int  # the timestep the step moved to, −1 after the final step
    x_t: torch.Tensor  # the sample the model saw
    x0_pred: torch.Tensor  # the model's x̂_0 from x_t
    x_prev: torch.Tensor  # the sample after the step: x_{t_prev}, or x_0 after the last step


def iter_sample(model: Model, shape: Sequence[int], schedule: NoiseSchedule, *, sampler: str = "ddpm",
                steps: int | None = None, eta: float = 0.0, spacing: str = "trailing", objective: str = "eps",
                clip_x0: bool = True, variance: str | None = None, generator: torch.Generator | None = None,
                x_T: torch.Tensor | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32, t_start: int | None = None) -> Iterator[SampleStep]:
    """Run the reverse process from x_T ~ N(0, I), yielding a :class:`SampleStep` per step.

    ``model(x_t, t)`` is any callable with ``t`` a LongTensor of shape [B]. DDPM visits all T
    timesteps when ``steps`` is None, else ``timestep_sequence(T, steps, spacing)`` with the
    respaced betas of improved DDPM (sec. 4). DDIM visits ``timestep_sequence`` (default 50 steps).
    With ``t_start`` the chain starts at that timestep instead of T−1 (``x_T`` is then x_{t_start},
    as SDEdit uses it) and visits at most t_start + 1 steps.
    ``variance`` None is the model's own (:func:`model_variance`): fixed_small for a plain callable.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    variance = model_variance(model) if variance is None else variance
    T = schedule.timesteps
    top = T if t_start is None else int(t_start) + 1
    if not 1 <= top <= T:
        raise ValueError(f"t_start must lie in 0..{T - 1}, got {t_start}")
    if steps is None:
        steps = top if sampler == "ddpm" else min(50, top)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    ts = timestep_sequence(top, min(steps, top) if t_start is not None else steps, spacing)
    check_timesteps(ts, T)
    if t_start is not None and ts[0] != top - 1:
        # x_T is x_{t_start}: the first model call must be told that timestep, not an earlier one.
        raise ValueError(f"{spacing} spacing with {len(ts)} steps starts at t = {ts[0]}, not at t_start = "
                         f"{t_start}; use trailing or linspace spacing to start from x_{{t_start}}")
    if x_T is None:
        x = torch.randn(tuple(shape), generator=generator, device=device or "cpu", dtype=dtype)
        x = x.to(device) if device is not None else x
    else:
        x = x_T
    batch = x.shape[0]
    if sampler == "ddpm":
        sched = schedule if len(ts) == T else respace(schedule, ts)
        # Index i of the respaced schedule stands for original timestep ts[-1 - i].
        for index, t in enumerate(ts):
            k = len(ts) - 1 - index if sched is not schedule else t
            t_model = torch.full((batch,), t, dtype=torch.long, device=x.device)
            out, v = model_outputs(model, x, t_model, variance)
            res = ddpm_step(out, x, k, sched, objective=objective, variance=variance, clip_x0=clip_x0,
                            generator=generator, model_var=v)
            t_prev = ts[index + 1] if index + 1 < len(ts) else -1
            yield SampleStep(index, t, t_prev, x, res.x0_pred, res.prev)
            x = res.prev
    else:
        for index, t in enumerate(ts):
            t_prev = ts[index + 1] if index + 1 < len(ts) else -1
            t_model = torch.full((batch,), t, dtype=torch.long, device=x.device)
            out = model(x, t_model)
            res = ddim_step(out, x, t, t_prev, schedule, eta=eta, objective=objective, clip_x0=clip_x0, generator=generator)
            yield SampleStep(index, t, t_prev, x, res.x0_pred, res.prev)
            x = res.prev


def noise_from_seed(shape: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T ~ N(0, I) drawn on the CPU from a generator seeded ``seed``, and that generator: a sampler given
    both draws every step's noise after x_T, so one seed fixes the whole reverse process."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g), g


def final_sample(steps: Iterable[SampleStep], stop: Callable[[], bool] | None = None) -> torch.Tensor | None:
    """The x_0 a reverse process ends at (its last step's ``x_prev``); None once ``stop()``, asked after every
    step (before the next model call), is True."""
    last = None
    for last in steps:
        if stop is not None and stop():
            return None
    return None if last is None else last.x_prev


def sample(model: Model, shape: Sequence[int], schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Run :func:`iter_sample` to the end and return x_0."""
    return final_sample(iter_sample(model, shape, schedule, **kwargs))


def langevin_step(
    score: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    step_size: float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    # x ← x + (δ/2) ∇_x log p(x) + √δ ε   (stochastic gradient Langevin dynamics; Song & Ermon 2019, eq. 4)
    """One Langevin update; ``score`` is ∇_x log p at x, or a callable computing it from x."""
    s = score(x) if callable(score) else score
    if noise is None:
        noise = torch.randn_like(x)
    return x + 0.5 * step_size * s + step_size**0.5 * noise


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _nonzero_mask(t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        return (t != 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))).to(x.device)
    return float(int(t) != 0)
