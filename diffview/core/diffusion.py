"""The forward process q and the reverse steps p_θ; core/sampling.py chains the steps into samplers.

References: DDPM (Ho et al. 2020), improved DDPM (Nichol & Dhariwal 2021),
DDIM (Song et al. 2021), v-prediction (Salimans & Ho 2022).

Timesteps are 0-based indices t ∈ {0, …, T−1} (index t is the paper's step t+1).
Every function taking ``t`` accepts a plain int or a LongTensor of shape [B]
(one timestep per sample). Coefficients are gathered from the float64 schedule
and cast to the dtype and device of the input tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from diffview.core.schedule import NoiseSchedule

OBJECTIVES = ("eps", "x0", "v")
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
        noise = noise_like(x_t, generator)
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
            noise = noise_like(x_t, generator)
        prev = prev + sigma * noise
    return StepResult(prev=prev, x0_pred=x0)


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


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z ~ N(0, I) shaped like x, drawn from ``generator`` (on its device) when one is given."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _nonzero_mask(t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        return (t != 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))).to(x.device)
    return float(int(t) != 0)
