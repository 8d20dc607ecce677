"""Training losses and the variational bound (DDPM sec. 3; improved DDPM sec. 2–3)."""

from __future__ import annotations

import math

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
    v_target,
)
from diffview.core.schedule import NoiseSchedule

WEIGHTINGS = ("none", "min_snr")
MIN_SNR_GAMMA = 5.0
T_SAMPLINGS = ("uniform", "lognormal")
LOGNORMAL_MEAN, LOGNORMAL_STD = -1.2, 1.2  # EDM's P_mean, P_std for data in [−1, 1] (Karras et al. 2022, Table 1)
_LN2 = math.log(2.0)


def training_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, objective: str):
    """What the network regresses onto: ε, x_0, or v = √ᾱ ε − √(1−ᾱ) x_0."""
    if objective == "eps":
        return noise
    if objective == "x0":
        return x0
    if objective == "v":
        return v_target(x0, noise, t, schedule)
    raise ValueError(f"unknown objective {objective!r}; choose one of eps, x0, v")


def sample_timesteps(schedule: NoiseSchedule, n: int, *, t_sampling: str = "uniform",
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    # uniform: t ~ U{0, …, T−1} (DDPM Alg. 1); lognormal: ln σ ~ N(P_mean, P_std²), t = the step whose
    # σ_t = √((1 − ᾱ_t)/ᾱ_t) is nearest in ln σ   (EDM sec. 5, "noise distribution")
    """``n`` training timesteps (int64) drawn on ``generator``'s device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    if t_sampling == "uniform":
        t = torch.randint(0, schedule.timesteps, (n,), generator=generator, device=gen_device)
    elif t_sampling == "lognormal":
        z = torch.randn(n, generator=generator, device=gen_device, dtype=torch.float64)
        t = nearest_timestep(schedule, LOGNORMAL_MEAN + LOGNORMAL_STD * z)
    else:
        raise ValueError(f"unknown t_sampling {t_sampling!r}; choose one of {', '.join(T_SAMPLINGS)}")
    return t.to(device) if device is not None else t


def nearest_timestep(schedule: NoiseSchedule, log_sigma: torch.Tensor) -> torch.Tensor:
    """The timestep t ∈ {0, …, T−1} whose ln σ_t is nearest each ``log_sigma`` (σ_t increases with t)."""
    ab = schedule.alphas_cumprod.to(device=log_sigma.device, dtype=torch.float64)
    grid = 0.5 * (torch.log1p(-ab) - torch.log(ab))
    hi = torch.searchsorted(grid, log_sigma.contiguous()).clamp(1, len(grid) - 1)
    lo = hi - 1
    pick_hi = (grid[hi] - log_sigma).abs() < (log_sigma - grid[lo]).abs()
    return torch.where(pick_hi, hi, lo)


def min_snr_weight(t: torch.Tensor, schedule: NoiseSchedule, objective: str, gamma: float = MIN_SNR_GAMMA):
    # w_t = min(SNR_t, γ) / SNR_t for ε, min(SNR_t, γ) for x_0, min(SNR_t, γ)/(SNR_t + 1) for v   (Hang et al. 2023, eqs. 10–12)
    """The Min-SNR-γ loss weight of each sample's timestep, as a float64 tensor of shape [B]."""
    snr = schedule.snr.to(t.device)[t]
    clipped = torch.clamp(snr, max=gamma)
    if objective == "eps":
        return clipped / snr
    if objective == "x0":
        return clipped
    if objective == "v":
        return clipped / (snr + 1.0)
    raise ValueError(f"unknown objective {objective!r}; choose one of eps, x0, v")


def training_loss(
    model: Model,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    objective: str = "eps",
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    weighting: str = "none",
    y: torch.Tensor | None = None,
    t_sampling: str = "uniform",
) -> tuple[torch.Tensor, torch.Tensor]:
    # L_simple = E_{t, x_0, ε} ‖target − f_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²   (DDPM eq. 14)
    """Per-sample simplified loss (mean over pixels) and the timesteps it was taken at.

    ``t`` is drawn by ``t_sampling`` (:func:`sample_timesteps`) and ``noise`` from N(0, I) when not given.
    ``y``: the class labels [B] of a class-conditional model (−1: the null class), passed as ``model(x_t, t, y)``.
    """
    b = x0.shape[0]
    if t is None:
        t = sample_timesteps(schedule, b, t_sampling=t_sampling, generator=generator,
                             device=_gen_device(generator, x0)).to(x0.device)
    if noise is None:
        if generator is None:
            noise = torch.randn_like(x0)
        else:
            noise = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    x_t = q_sample(x0, t, schedule, noise)
    target = training_target(x0, noise, t, schedule, objective)
    out = model(x_t, t) if y is None else model(x_t, t, y)
    per_sample = (out.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    if weighting == "min_snr":
        per_sample = per_sample * min_snr_weight(t, schedule, objective).to(per_sample)
    elif weighting != "none":
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    return per_sample, t


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    # KL(N(μ₁, e^{lv₁}) ‖ N(μ₂, e^{lv₂})) = ½(−1 + lv₂ − lv₁ + e^{lv₁−lv₂} + (μ₁−μ₂)² e^{−lv₂})
    """Elementwise KL divergence between two diagonal Gaussians, in nats."""
    tensor = next(a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor))
    logvar1, logvar2 = (torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device) for v in (logvar1, logvar2))
    # Written with expm1(d) − d, d = lv₁ − lv₂: exact near d = 0 and never negative (expm1(d) ≥ d).
    d = logvar1 - logvar2
    return 0.5 * (torch.expm1(d) - d + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) by the tanh approximation used in improved-diffusion (error below 3e-4)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    # log ∫_{δ₋(x)}^{δ₊(x)} N(y; μ, σ²) dy over 256 bins of width 2/255 on [−1, 1]   (DDPM eq. 13)
    """Elementwise log-likelihood (nats) of images in [−1, 1] under a discretised Gaussian decoder."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,  # the first bin reaches to −∞
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def prior_bpd(x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    # L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim   (DDPM eq. 5)
    """The prior term L_T per sample, in bits per dimension; it has no parameters to learn."""
    t = schedule.timesteps - 1
    mean = gather(schedule.sqrt_alphas_cumprod, t, x0) * x0
    log_var = torch.log1p(-gather(schedule.alphas_cumprod, t, x0)) * torch.ones_like(x0)
    kl = normal_kl(mean, log_var, torch.zeros_like(x0), torch.zeros_like(x0))
    return kl.flatten(1).mean(dim=1) / _LN2


@torch.no_grad()
def vlb_terms(
    model: Model,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    objective: str = "eps",
    clip_x0: bool = True,
    variance: str | None = None,
    generator: torch.Generator | None = None,
    timesteps=None,
) -> torch.Tensor:
    # L_0 = −log p_θ(x_0 | x_1),  L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))   (DDPM eq. 5)
    """The VLB terms of each sample at each timestep in bits/dim, a tensor [B, T].

    Column 0 is L_0 (the discretised decoder), column t ≥ 1 is L_{t}'s KL term (the paper's
    L_{t}, 0-based). ``timesteps`` restricts the work to a subset (other columns stay 0).
    p_θ's variance is ``variance``, by default the model's own (``model_variance``): the σ²_t its
    sampler draws with, learned ones included, so the bound is that model's.
    """
    b, T = x0.shape[0], schedule.timesteps
    terms = torch.zeros(b, T, dtype=torch.float64, device=x0.device)
    variance = model_variance(model) if variance is None else variance
    for t in range(T) if timesteps is None else sorted(int(s) for s in timesteps):
        if generator is None:
            noise = torch.randn_like(x0)
        else:
            noise = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
        tt = torch.full((b,), t, dtype=torch.long, device=x0.device)
        x_t = q_sample(x0, tt, schedule, noise)
        out, v = model_outputs(model, x_t, tt, variance)
        x0_pred, _ = predict_x0_eps(out, x_t, tt, schedule, objective, clip_x0)
        p_mean, _, _ = q_posterior(x0_pred, x_t, tt, schedule)
        p_logvar = p_log_variance(tt, x_t, schedule, variance, v) * torch.ones_like(x0)
        if t == 0:
            nll = -discretized_gaussian_log_likelihood(x0, p_mean, 0.5 * p_logvar)
            terms[:, 0] = nll.flatten(1).mean(dim=1).double() / _LN2
        else:
            q_mean, _, q_logvar = q_posterior(x0, x_t, tt, schedule)
            kl = normal_kl(q_mean, q_logvar * torch.ones_like(x0), p_mean, p_logvar)
            terms[:, t] = kl.flatten(1).mean(dim=1).double() / _LN2
    return terms


def nll_bpd(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Negative log-likelihood bound −log p(x_0) ≤ L_T + Σ_t L_{t−1} + L_0 per sample, bits/dim."""
    return vlb_terms(model, x0, schedule, **kwargs).sum(dim=1) + prior_bpd(x0, schedule).double()


def _gen_device(generator: torch.Generator | None, x: torch.Tensor):
    return generator.device if generator is not None else x.device
