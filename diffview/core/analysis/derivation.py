"""Where the loss comes from, number by number: entropy, cross-entropy and KL between Gaussians, and the
bound's KL terms at one pixel of a model, rewritten step by step into DDPM's ε-loss (Ho et al. 2020, sec. 3).

The chain the "Loss from the bound" tab walks:

1. Entropy H(p) = −E_p[log p]; cross-entropy H(p, q) = −E_p[log q]; KL(p ‖ q) = H(p, q) − H(p) ≥ 0.
   With p fixed (the data), minimising H(p, q) over q minimises the KL.
2. For two univariate Gaussians all three have closed forms; :func:`integrate_gaussians` checks them by
   numerical integration on a grid.
3. The bound splits into KLs (DDPM eq. 5): L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), per pixel a
   KL between two 1-D Gaussians (eqs. 6–7). :func:`pixel_terms` computes them exactly as the core's
   ``vlb_terms`` does (the same functions, in the same order), so its numbers are the core's.
4. With equal variances the KL is ‖μ̃_t − μ_θ‖² / (2σ_t²) (eq. 8, C = 0); rewritten in ε it is
   β_t² / (2σ_t² α_t (1 − ᾱ_t)) ‖ε − ε_θ‖² (eq. 12), whose weight DDPM drops to get L_simple (eq. 14).

The KL itself is always the core's ``normal_kl``; no second KL formula lives here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffview.core.diffusion import (
    Model,
    gather,
    model_outputs,
    model_variance,
    p_log_variance,
    predict_x0_eps,
    q_posterior,
    q_sample,
)
from diffview.core.losses import normal_kl
from diffview.core.schedule import NoiseSchedule

LN2 = math.log(2.0)
GRID_POINTS = 4001  # the integration grid over μ_p ± GRID_SIGMAS σ_p
GRID_SIGMAS = 12.0  # p's mass outside is below e^{−72}: nothing any integrand here can notice


# ----------------------------------------------------------------------------- entropy, cross-entropy, KL
def gaussian_entropy(var: float) -> float:
    # H(N(μ, σ²)) = ½ log(2πe σ²)
    """The differential entropy of a Gaussian of variance ``var``, in nats."""
    return 0.5 * math.log(2.0 * math.pi * math.e * var)


def gaussian_cross_entropy(mu_p: float, var_p: float, mu_q: float, var_q: float) -> float:
    # H(p, q) = −E_p[log q] = ½ log(2π σ_q²) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²)
    """The cross-entropy of q = N(μ_q, σ_q²) under p = N(μ_p, σ_p²), in nats."""
    return 0.5 * math.log(2.0 * math.pi * var_q) + (var_p + (mu_p - mu_q) ** 2) / (2.0 * var_q)


def gaussian_kl(mu_p: float, var_p: float, mu_q: float, var_q: float) -> float:
    # KL(p ‖ q) = H(p, q) − H(p), in closed form the core's normal_kl
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) in nats, by the core's ``normal_kl``."""
    f = torch.float64
    return float(normal_kl(torch.tensor(mu_p, dtype=f), math.log(var_p), torch.tensor(mu_q, dtype=f), math.log(var_q)))


def bernoulli_entropy(P):
    # H(P) = −P log P − (1 − P) log(1 − P), with 0 log 0 = 0
    """The entropy of a 0–1 variable that is 1 with probability P, in nats (a float, or an array like P)."""
    p = np.asarray(P, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = 0.0 - np.where(p > 0, p * np.log(p), 0.0) - np.where(p < 1, (1 - p) * np.log1p(-p), 0.0)
    return float(h) if h.ndim == 0 else h


def gaussian_log_density(x, mu: float, var: float):
    # log N(x; μ, σ²) = −½ log(2π σ²) − (x − μ)² / (2σ²)
    """log N(x; μ, σ²) on an array x."""
    x = np.asarray(x, dtype=np.float64)
    return -0.5 * math.log(2.0 * math.pi * var) - (x - mu) ** 2 / (2.0 * var)


@dataclass(frozen=True)
class Integrals:
    """H(p), H(p, q) and KL(p ‖ q) by numerical integration on ``x``, and the integrands there."""

    x: np.ndarray
    p: np.ndarray  # the density p(x)
    kl_integrand: np.ndarray  # p(x) log(p(x) / q(x))
    entropy: float  # −∫ p log p
    cross_entropy: float  # −∫ p log q
    kl: float  # ∫ p log(p / q)


def integrate_gaussians(mu_p: float, var_p: float, mu_q: float, var_q: float, n: int = GRID_POINTS) -> Integrals:
    """The three integrals over p's support μ_p ± 12σ_p by the trapezoid rule on ``n`` points (its error on
    these smooth, fast-decaying integrands is far below 1e-6)."""
    sd = math.sqrt(var_p)
    x = np.linspace(mu_p - GRID_SIGMAS * sd, mu_p + GRID_SIGMAS * sd, n)
    log_p, log_q = gaussian_log_density(x, mu_p, var_p), gaussian_log_density(x, mu_q, var_q)
    p = np.exp(log_p)
    integrand = p * (log_p - log_q)
    h = float(-np.trapezoid(p * log_p, x))
    ce = float(-np.trapezoid(p * log_q, x))
    return Integrals(x, p, integrand, h, ce, float(np.trapezoid(integrand, x)))


# ----------------------------------------------------------------------------- the bound's terms at a pixel
@dataclass(frozen=True)
class PixelTerms:
    """The KL term L_{t−1} of one image at timestep index t ≥ 1, pixel by pixel (float64 numpy [C, H, W]).

    ``kl`` and ``bpd`` are the core's numbers: ``bpd.sum()`` is ``vlb_terms``'s column t for this image and
    noise. ``p_mean`` uses x̂_0 as the bound and the sampler use it (clipped when ``clip_x0``); the ε form
    (eq. 12) needs the unclipped x̂_0, so ``p_mean_raw``, ``eps_pred`` and ``eq12`` come from it, and
    ``clipped`` marks the pixels where clipping changed x̂_0 (there eq. 12 is not the bound's term).
    """

    t: int  # 0-based index (the paper's step t + 1)
    variance: str  # p_θ's variance: fixed_small (σ²_t = β̃_t), fixed_large (β_t), learned, learned_range
    clip_x0: bool
    x0: np.ndarray
    x_t: np.ndarray
    eps: np.ndarray  # the ε that made x_t from x_0 (DDPM eq. 4)
    eps_pred: np.ndarray  # ε_θ, the model's prediction converted to ε (unclipped x̂_0)
    x0_pred: np.ndarray  # x̂_0 as the bound uses it (clipped to [−1, 1] when clip_x0)
    q_mean: np.ndarray  # μ̃_t(x_t, x_0)   (eq. 7)
    q_logvar: float  # log β̃_t
    p_mean: np.ndarray  # μ_θ(x_t, t) = μ̃_t(x_t, x̂_0)
    p_mean_raw: np.ndarray  # μ_θ from the unclipped x̂_0
    p_logvar: np.ndarray  # log σ²_t, broadcast to the image (a learned variance differs per pixel)
    kl: np.ndarray  # KL(q ‖ p_θ) per pixel, nats: normal_kl
    bpd: np.ndarray  # its bits/dim contribution, KL / (D ln 2)
    eq8: np.ndarray  # (μ̃_t − μ_θ)² / (2σ²_t): the KL's mean part (eq. 8)
    variance_part: np.ndarray  # KL − eq8: normal_kl of the two variances alone, 0 when σ²_t = β̃_t
    weight: np.ndarray  # λ_t = β_t² / (2σ²_t α_t (1 − ᾱ_t))   (eq. 12's weight)
    eq12: np.ndarray  # λ_t (ε − ε_θ)²: eq. 8 with the unclipped μ_θ, rewritten in ε
    simple: np.ndarray  # (ε − ε_θ)²: L_simple's term, the weight dropped (eq. 14)
    clipped: np.ndarray  # bool: clipping x̂_0 changed it here

    @property
    def dims(self) -> int:
        return int(self.kl.size)

    @property
    def equal_variances(self) -> bool:
        """Whether σ²_t = β̃_t everywhere (fixed_small), where eq. 8 is the whole KL."""
        return bool(np.all(self.variance_part == 0.0))


def pixel_terms(model: Model, x0: torch.Tensor, t: int, schedule: NoiseSchedule, noise: torch.Tensor, *,
                objective: str = "eps", clip_x0: bool = True, variance: str | None = None) -> PixelTerms:
    """L_{t−1}'s KL of one image x0 [1, C, H, W] at index t ≥ 1 with noise ε, per pixel, the way
    ``vlb_terms`` computes it (the same calls, in float64 copies at the end)."""
    if not 1 <= t < schedule.timesteps:
        raise ValueError(f"the KL terms live at t = 1…{schedule.timesteps - 1}; t = 0 is the decoder L_0")
    if x0.shape[0] != 1:
        raise ValueError(f"pixel_terms takes one image [1, C, H, W], got a batch of {x0.shape[0]}")
    variance = model_variance(model) if variance is None else variance
    with torch.no_grad():
        tt = torch.full((1,), t, dtype=torch.long, device=x0.device)
        x_t = q_sample(x0, tt, schedule, noise)  # (DDPM eq. 4)
        out, v = model_outputs(model, x_t, tt, variance)
        x0_pred, _ = predict_x0_eps(out, x_t, tt, schedule, objective, clip_x0)
        x0_raw, eps_pred = predict_x0_eps(out, x_t, tt, schedule, objective, clip_x0=False)
        p_mean, _, _ = q_posterior(x0_pred, x_t, tt, schedule)
        p_mean_raw, _, _ = q_posterior(x0_raw, x_t, tt, schedule)
        p_logvar = p_log_variance(tt, x_t, schedule, variance, v) * torch.ones_like(x0)
        q_mean, _, q_logvar = q_posterior(x0, x_t, tt, schedule)  # (eqs. 6–7)
        q_logvar = q_logvar * torch.ones_like(x0)
        kl = normal_kl(q_mean, q_logvar, p_mean, p_logvar)  # L_{t−1} per pixel, as vlb_terms
        variance_part = normal_kl(q_mean, q_logvar, q_mean, p_logvar)  # the same KL with the means made equal
    d = x0.numel()
    f64 = (lambda a: a.detach().double().cpu().numpy()[0])  # noqa: E731
    p_var = np.exp(f64(p_logvar))
    eq8 = (f64(q_mean) - f64(p_mean)) ** 2 / (2.0 * p_var)  # ‖μ̃_t − μ_θ‖² / (2σ²_t)   (DDPM eq. 8)
    beta, alpha, abar = (float(c[t]) for c in (schedule.betas, schedule.alphas, schedule.alphas_cumprod))
    weight = beta**2 / (2.0 * p_var * alpha * (1.0 - abar))  # β_t² / (2σ²_t α_t (1 − ᾱ_t))   (DDPM eq. 12)
    simple = (f64(noise) - f64(eps_pred)) ** 2  # ‖ε − ε_θ‖²   (DDPM eq. 14)
    return PixelTerms(
        t=t, variance=variance, clip_x0=clip_x0, x0=f64(x0), x_t=f64(x_t), eps=f64(noise), eps_pred=f64(eps_pred),
        x0_pred=f64(x0_pred), q_mean=f64(q_mean), q_logvar=float(q_logvar.flatten()[0]), p_mean=f64(p_mean),
        p_mean_raw=f64(p_mean_raw), p_logvar=f64(p_logvar), kl=f64(kl), bpd=f64(kl.double()) / (d * LN2),
        eq8=eq8, variance_part=f64(variance_part), weight=weight, eq12=weight * simple, simple=simple,
        clipped=f64(x0_pred) != f64(x0_raw))


def posterior_coefficients(t: int, schedule: NoiseSchedule, x: torch.Tensor) -> tuple[float, float]:
    """(√ᾱ_{t−1} β_t / (1 − ᾱ_t), √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)): μ̃_t's weights on x_0 and x_t (eq. 7)."""
    return (float(gather(schedule.posterior_mean_coef1, t, x)), float(gather(schedule.posterior_mean_coef2, t, x)))


__all__ = ["Integrals", "LN2", "PixelTerms", "bernoulli_entropy", "gaussian_cross_entropy", "gaussian_entropy",
           "gaussian_kl", "gaussian_log_density", "integrate_gaussians", "pixel_terms", "posterior_coefficients"]
