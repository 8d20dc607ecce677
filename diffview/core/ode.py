"""The probability-flow ODE of the discrete VP process, and the steps of its second-order solvers.

With σ_t = √((1 − ᾱ_t)/ᾱ_t) (Karras et al. 2022, Table 1, VP) the scaled sample y = x_t/√ᾱ_t = x_0 + σ_t ε
follows dy/dσ = ε̂(x_t, t) (Song et al. 2021, eq. 13, written as Karras et al. 2022, eq. 4 with s = 1).
DDIM with η = 0 is Euler's method on this ODE; Heun's method (EDM, Algorithm 1) corrects it with the slope
at the far end, and DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) integrates its linear part exactly in
λ = log(√ᾱ/√(1 − ᾱ)) = −log σ and extrapolates x̂_0 from the last two steps.

Every step works on x_t itself, with coefficients in float64: y = x_t/√ᾱ_t is never formed, so a cosine
schedule's σ_{T−1} ≈ 2·10⁴ costs no precision. All steps move between the schedule's own timesteps
(0-based; −1 is the end of the chain, where ᾱ = 1 and σ = 0), so the network is only asked about the
timesteps it was trained on.
"""

from __future__ import annotations

import math

import torch

from diffview.core.schedule import NoiseSchedule

RHO = 7.0  # Karras et al. 2022, eq. 5
SIGMA_DATA = 0.5  # the data's scale in σ units: Karras et al. 2022's σ_data for images in [−1, 1]
HEUN_MAX_RATIO = 3.0  # σ_i/σ_{i+1} from which Euler beats the trapezoid far above σ_data (see heun_corrects)


def sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    # σ_t = √((1 − ᾱ_t)/ᾱ_t)   (Karras et al. 2022, Table 1: the VP process as x_0 + σ ε, scaled by √ᾱ_t)
    """EDM's noise level σ_t of each 0-based timestep, float64 [T], increasing with t (∞ where ᾱ_t = 0)."""
    ab = schedule.alphas_cumprod.to(torch.float64)
    return torch.sqrt((1.0 - ab) / ab)


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = RHO) -> torch.Tensor:
    # σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0 … n−1   (Karras et al. 2022, eq. 5)
    """The n noise levels of Karras et al.'s schedule from σ_max down to σ_min, float64 (σ_max alone for n = 1)."""
    if n == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.arange(n, dtype=torch.float64) / (n - 1)
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras_timesteps(schedule: NoiseSchedule, steps: int, top: int | None = None, rho: float = RHO) -> list[int]:
    """``steps`` distinct descending timesteps in [0, top) whose σ_t follow Karras et al.'s eq. 5 from σ_{top−1}
    to σ_0, each the timestep nearest in log σ (the network takes the discrete t it was trained on).

    Where the ramp is denser than the schedule's own timesteps (near σ_0 for many steps), the nearest indices
    collide (near σ_0 for many steps, near σ_{T−1} where a cosine schedule's σ leaps); those are moved apart,
    first upwards from the end, then downwards from top−1, so exactly ``steps`` are returned, the first
    top−1 and the last 0 (for steps ≥ 2). A zero-terminal-SNR schedule's σ_{T−1} = ∞
    starts the ramp at the largest finite σ instead; the chain still starts at top−1.
    """
    top = schedule.timesteps if top is None else int(top)
    if not 1 <= steps <= top:
        raise ValueError(f"steps must be an integer in 1..{top}, got {steps!r}")
    log_s = torch.log(sigmas(schedule)[:top])
    finite = log_s[torch.isfinite(log_s)]
    targets = torch.log(karras_sigmas(math.exp(float(finite[0])), math.exp(float(finite[-1])), steps, rho))
    ts = torch.argmin((log_s[None, :] - targets[:, None]).abs(), dim=1).tolist()
    for i in range(steps - 2, -1, -1):  # from the end up: each at least one above the next
        ts[i] = max(ts[i], ts[i + 1] + 1)
    ts[0] = top - 1  # σ_max itself, where the chain starts
    for i in range(1, steps):  # from the start down: each at least one below the last, never under steps−1−i
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return ts


def _coef(schedule: NoiseSchedule, t: int) -> tuple[float, float]:
    """(√ᾱ_t, √(1 − ᾱ_t)) in float64 for a timestep, with t = −1 the chain's end (1, 0)."""
    if t < 0:
        return 1.0, 0.0
    ab = float(schedule.alphas_cumprod[t])
    return math.sqrt(ab), math.sqrt(1.0 - ab)


def heun_step(x_t: torch.Tensor, eps: torch.Tensor, eps_next: torch.Tensor, t: int, t_next: int,
              schedule: NoiseSchedule) -> torch.Tensor:
    # y_{i+1} = y_i + (σ_{i+1} − σ_i) · (ε̂(x_i, σ_i) + ε̂(x̃_{i+1}, σ_{i+1}))/2   (Karras et al. 2022, Alg. 1, line 8)
    """Heun's step from t to t_next (≥ 0) given the slopes ε̂ at both ends (the second at DDIM's Euler prediction):
    x_{t_next} = √(ᾱ'/ᾱ) x_t + (√(1−ᾱ') − √(ᾱ'/ᾱ)√(1−ᾱ)) ε̄, ε̄ their mean; needs ᾱ_t > 0."""
    a, s = _coef(schedule, t)
    a2, s2 = _coef(schedule, t_next)
    ratio = a2 / a
    return ratio * x_t + (s2 - ratio * s) * (0.5 * (eps + eps_next))


def heun_corrects(sigma: float, sigma_next: float) -> bool:
    """Whether Heun's step from σ to σ_next takes the trapezoid's correction (a second evaluation) or stays Euler's.

    Never into σ = 0 (Alg. 1, line 7) or out of σ = ∞. Above σ_data the slope is ε̂ ≈ c(1 − σ_data²/2σ²) along the
    path, for which the trapezoid's error over a step of ratio q = σ/σ_next is exactly (q − 1)/2 times Euler's
    (tests/test_ode_samplers.py checks it), and a long step from there down past σ_data weights the slope at its
    small end by half the step. So a step that starts above σ_data with q ≥ 3 is Euler's: on a cosine schedule,
    σ_{T−1} ≈ 2·10⁴, a trapezoid out of σ_max was off by 100 times the data's scale. Below σ_data the slope is
    ∝ σ, where the trapezoid is nearly exact. Elsewhere it is Alg. 1 unchanged; one Euler step's local error is
    O(h²), so the method stays second order."""
    if not sigma_next > 0 or not math.isfinite(sigma):
        return False
    return sigma <= SIGMA_DATA or sigma < HEUN_MAX_RATIO * sigma_next


def churn_timestep(schedule: NoiseSchedule, t: int, s_churn: float, steps: int, top: int | None = None) -> int:
    # γ_i = min(S_churn/N, √2 − 1), σ̂_i = (1 + γ_i) σ_i   (Karras et al. 2022, Alg. 2, lines 4–5)
    """The timestep t̂ ≥ t nearest in log σ to σ̂ = (1 + γ) σ_t, at most top−1 and never where σ is infinite; t itself
    when the churn is too small to reach another timestep."""
    log_s = torch.log(sigmas(schedule)[: schedule.timesteps if top is None else int(top)])
    if s_churn <= 0 or not math.isfinite(float(log_s[t])):
        return t
    gamma = min(s_churn / steps, math.sqrt(2.0) - 1.0)
    target = math.log1p(gamma) + float(log_s[t])
    candidates = torch.nonzero(torch.isfinite(log_s[t:])).flatten() + t
    return int(candidates[torch.argmin((log_s[candidates] - target).abs())])


def churn(x_t: torch.Tensor, t: int, t_hat: int, schedule: NoiseSchedule, noise: torch.Tensor,
          s_noise: float = 1.0) -> torch.Tensor:
    # x̂_i = x_i + √(σ̂_i² − σ_i²) · S_noise · ε, ε ~ N(0, I)   (Karras et al. 2022, Alg. 2, line 6)
    """Noise x_t up to timestep t_hat ≥ t along the forward process: in x-space
    x̂ = √ᾱ̂ (x_t/√ᾱ_t + √(σ̂² − σ_t²) S_noise z), with σ̂ = σ_{t_hat}."""
    if t_hat == t:
        return x_t
    a, s = _coef(schedule, t)
    a2, s2 = _coef(schedule, t_hat)
    sig, sig_hat = s / a, s2 / a2
    return (a2 / a) * x_t + a2 * math.sqrt(sig_hat**2 - sig**2) * s_noise * noise


def dpmpp_2m_step(x_t: torch.Tensor, x0: torch.Tensor, x0_last: torch.Tensor | None, t: int, t_next: int,
                  t_last: int | None, schedule: NoiseSchedule) -> torch.Tensor:
    # x_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) x_{t_{i−1}} − α_{t_i}(e^{−h_i} − 1) D_i,
    #   D_i = (1 + 1/(2r_i)) x̂_0(t_{i−1}) − 1/(2r_i) x̂_0(t_{i−2}), r_i = h_{i−1}/h_i   (Lu et al. 2022, Alg. 2)
    """One DPM-Solver++(2M) step from t to t_next with the model's x̂_0 at t and, from the step before (at t_last),
    ``x0_last``. α = √ᾱ, σ = √(1 − ᾱ), λ = log(α/σ), h_i = λ_{t_next} − λ_t. It is first order (D = x̂_0) on the
    first step (``x0_last`` None) and on the last (t_next = −1, where it returns x̂_0 itself)."""
    if t_next < 0:
        return x0
    a, s = _coef(schedule, t)
    a2, s2 = _coef(schedule, t_next)
    lam, lam2 = _log_ratio(a, s), _log_ratio(a2, s2)
    h = lam2 - lam
    d = x0
    if x0_last is not None and t_last is not None:
        h_last = lam - _log_ratio(*_coef(schedule, t_last))
        half_inv_r = 0.5 * h / h_last if math.isfinite(h_last) else 0.0  # 1/(2r)
        d = (1.0 + half_inv_r) * x0 - half_inv_r * x0_last
    return (s2 / s) * x_t - a2 * math.expm1(-h) * d


def _log_ratio(a: float, s: float) -> float:
    """λ = log(α/σ), −∞ where α = 0 (zero terminal SNR)."""
    return -math.inf if a == 0.0 else math.log(a) - math.log(s)


__all__ = ["HEUN_MAX_RATIO", "RHO", "SIGMA_DATA", "churn", "churn_timestep", "dpmpp_2m_step", "heun_corrects",
           "heun_step", "karras_sigmas", "karras_timesteps", "sigmas"]
