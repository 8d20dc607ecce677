"""The exact negative log-likelihood of the probability-flow ODE, in bits/dim (Song et al. 2021, sec. 4.3).

**The ODE.** In EDM's variables (core/ode.py) y = x_t/√ᾱ_t = x_0 + σ_t ε follows dy/dσ = ε̂(√ᾱ(σ) y, t(σ))
with ᾱ(σ) = 1/(1 + σ²). Its density along a trajectory obeys the instantaneous change of variables
(Chen et al. 2018, thm. 1) d log p(y_σ)/dσ = −tr(∂ε̂/∂y), so

    log p_σmin(y_σmin) = log p_σmax(y_σmax) + ∫_{σmin}^{σmax} tr(∂ε̂/∂y) dσ            (Song et al. 2021, app. D.2)

with σ_min = σ_0 (index 0) and σ_max = σ_{T−1}. The trace is Hutchinson's estimate vᵀ(∂ε̂/∂y)v with one probe v
(Rademacher or Gaussian) held fixed along each trajectory, from a vector–Jacobian product (torch.autograd), or
the exact trace (D products) for a small D. ε̂ is the model's **unclipped** prediction for every objective
(``predict_x0_eps(..., clip_x0=False)``): clipping x̂_0 makes another, non-smooth field, not the score model's
flow; the samplers' clipped DDIM/ancestral chains draw from yet other models.

**The prior.** The samplers start from x_{T−1} ~ N(0, I) (the paper's x_T), so y_σmax = x_{T−1}/√ᾱ_{T−1} ~
N(0, I/ᾱ_{T−1}) = N(0, (1 + σ_max²) I), since 1/ᾱ = 1 + σ². That is the prior used here; k-diffusion's
N(0, σ_max² I) is its VE limit: the two log densities differ by |y|²/(2σ_max²(1 + σ_max²)) − D/2 · log(1 + 1/σ_max²),
small only when σ_max ≫ 1.

**The data.** The ODE cannot go below the model's first timestep, so the density of the data is taken to be
the continuous-time model's density of y at σ_min, evaluated at y = x_0 (the data's x_0 carries the σ_min
noise of y_0 = x_0 + σ_0 ε as part of the model; σ_0 ≈ 0.01 for the linear schedule).

**Bits/dim.** Images in [−1, 1] with 256 levels have bins of width Δ = 2/255 (DDPM's discretised decoder,
eq. 13, uses the same bins). With ``dequantise`` (the default) y = x_0 + u, u ~ U(−Δ/2, Δ/2)ᴰ, and
−E_u log p(x_0 + u) − D log Δ ≥ −log P(bin of x_0) by Jensen: an upper bound, in expectation, on the
discrete NLL of the ODE model's bins. Without it, −log p(x_0) − D log Δ is the bin-volume approximation.
Either way bits/dim = (−log p/D − log Δ)/ln 2 = −log p/(D ln 2) + log₂ 127.5.

**The solver.** An adaptive Dormand–Prince 5(4) (Dormand & Prince 1980) in s = log σ (dy/ds = σ ε̂), because
σ spans four orders of magnitude, with the model evaluated at fractional timesteps: t(σ) interpolates the index
t linearly in log σ between the schedule's σ_t, as k-diffusion's DiscreteSchedule.sigma_to_t does (our networks
embed t.float(), diffusers' UNet takes float timesteps). A fixed solver on the discrete timesteps alone could
only be low order on this non-uniform grid, or need T model calls; the adaptive one's error is set by rtol/atol
and is tested against the closed form of Gaussian data (tests/test_likelihood.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from diffview.core.diffusion import Model, predict_x0_eps
from diffview.core.guidance import Guided
from diffview.core.ode import sigmas
from diffview.core.schedule import NoiseSchedule, schedule_from_betas

BIN = 2.0 / 255.0  # Δ: the width of one of 256 levels on [−1, 1]
TRACES = ("rademacher", "gaussian", "exact")
EXACT_MAX_DIM = 1024  # the exact trace costs D vector–Jacobian products per evaluation
Progress = Callable[[int, int], bool | None]
PROGRESS_UNITS = 1000  # progress counts per-mille of the log σ interval, per batch of images


@dataclass
class LikelihoodResult:
    log_p: np.ndarray  # [B, P] log p(y_σmin) in nats, per image and probe (each probe its own u and v)
    bpd: np.ndarray  # [B] bits/dim per image, the mean over its probes
    mean: float  # the mean bits/dim over images
    stderr: float  # s.e. of the mean from the spread of the per-image values (images, probes, dequantisation)
    probe_stderr: float | None  # s.e. of the mean from the Monte-Carlo draws alone (v and u; None with one probe)
    probes: int
    trace: str
    dequantised: bool
    nfe: int  # model evaluations, each with its vector–Jacobian products
    steps: int  # accepted solver steps (over all batches)
    rejected: int
    sigma_min: float
    sigma_max: float
    rtol: float
    atol: float

    @property
    def images(self) -> int:
        return int(self.bpd.shape[0])


# ----------------------------------------------------------------------------- σ ↔ fractional t
def t_of_sigma(sigma: float, sig: torch.Tensor) -> float:
    # t(σ): the index linearly interpolated in log σ   (k-diffusion's DiscreteSchedule.sigma_to_t)
    """The fractional 0-based timestep at noise level σ ∈ [σ_0, σ_{T−1}] (``sig`` = ``ode.sigmas``)."""
    log_sig = torch.log(sig).numpy()
    return float(np.interp(math.log(sigma), log_sig, np.arange(len(log_sig), dtype=np.float64)))


def sigma_of_t(t: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """σ at fractional timesteps t (float64), the inverse of :func:`t_of_sigma`: log σ linear in t."""
    log_sig = torch.log(sig).numpy()
    tt = t.detach().to(torch.float64).cpu().numpy()
    return torch.from_numpy(np.exp(np.interp(tt, np.arange(len(log_sig), dtype=np.float64), log_sig)))


def eps_at_sigma(output: torch.Tensor, x_t: torch.Tensor, sigma: float, objective: str) -> torch.Tensor:
    # ᾱ(σ) = 1/(1 + σ²); ε̂ from the model's output at that ᾱ, unclipped   (core.diffusion.predict_x0_eps)
    """ε̂ at noise level σ from a model output under ``objective``, through the core's own conversion on a
    one-step schedule whose ᾱ is exactly 1/(1 + σ²)."""
    ab = torch.tensor([1.0 / (1.0 + sigma * sigma)], dtype=torch.float64)
    one = schedule_from_betas(1.0 - ab, name="at σ", alphas_cumprod=ab)
    return predict_x0_eps(output, x_t, 0, one, objective, clip_x0=False)[1]


# ----------------------------------------------------------------------------- densities and bits
def prior_log_prob(y: torch.Tensor, sigma_max: float) -> torch.Tensor:
    # log N(y; 0, (1 + σ_max²) I): x_{T−1} ~ N(0, I) scaled by 1/√ᾱ_{T−1} = √(1 + σ_max²)
    """The prior's log density of y_σmax per sample, float64 [N]."""
    var = 1.0 + sigma_max * sigma_max
    y = y.flatten(1).to(torch.float64)
    return -0.5 * (y.pow(2).sum(1) / var + y.shape[1] * math.log(2 * math.pi * var))


def bits_per_dim(log_p: torch.Tensor | np.ndarray | float, dims: int) -> np.ndarray:
    # bpd = (−log p − D log Δ)/(D ln 2), Δ = 2/255: the density of [−1, 1] images on 256 levels
    """bits/dim of 8-bit data from the log density (nats) of its [−1, 1] scaling."""
    return (-np.asarray(log_p, dtype=np.float64) / dims - math.log(BIN)) / math.log(2.0)


# ----------------------------------------------------------------------------- the ODE's right-hand side
class _Field:
    """f(s, y, ℓ) = (σ ε̂, σ tr ∂ε̂/∂y) at s = log σ, counting evaluations."""

    def __init__(self, model: Model, schedule: NoiseSchedule, objective: str, trace: str, probe):
        self.model, self.objective, self.trace, self.probe = model, objective, trace, probe
        self.sig = sigmas(schedule)
        self.model_t = schedule.model_timesteps().to(torch.float64).numpy()
        self.nfe = 0

    def __call__(self, s: float, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = math.exp(s)
        t_idx = t_of_sigma(sigma, self.sig)
        t_model = float(np.interp(t_idx, np.arange(len(self.model_t)), self.model_t))  # a respaced schedule
        t = torch.full((y.shape[0],), t_model, dtype=y.dtype, device=y.device)
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            x_t = y / math.sqrt(1.0 + sigma * sigma)  # x_t = √ᾱ y
            eps = eps_at_sigma(self.model(x_t, t), x_t, sigma, self.objective)
            if self.trace == "exact":
                flat = eps.flatten(1)
                div = torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
                for k in range(flat.shape[1]):  # row k of ∂ε̂/∂y, its k-th entry
                    g = torch.autograd.grad(flat[:, k].sum(), y, retain_graph=True)[0]
                    div += g.flatten(1)[:, k].to(torch.float64)
            else:  # Hutchinson: E[vᵀ J v] = tr J for E[v vᵀ] = I   (Hutchinson 1990)
                g = torch.autograd.grad((eps * self.probe).sum(), y)[0]
                div = (g * self.probe).flatten(1).sum(1).to(torch.float64)
        self.nfe += 1
        return sigma * eps.detach(), sigma * div


# ----------------------------------------------------------------------------- Dormand–Prince 5(4)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B = _A[6] + (0.0,)  # 5th order, FSAL: the 7th stage is f at the new point
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b - b4 for b, b4 in zip(_B, _B4))


def _comb(base, ks, coefs, h):
    out = base.clone()
    for k, c in zip(ks, coefs):
        if c != 0.0:
            out = out + (h * c) * k
    return out


def _err_norm(err, old, new, rtol, atol) -> float:
    scale = atol + rtol * torch.maximum(old.abs(), new.abs())
    return float(torch.sqrt(torch.mean((err / scale) ** 2)))


def dopri5(f, s0: float, s1: float, y: torch.Tensor, *, rtol: float, atol: float,
           progress: Callable[[float], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor, int, int] | None:
    # y_{n+1} = y_n + h Σ b_i k_i, error h Σ (b_i − b*_i) k_i   (Dormand & Prince 1980, Table 2; Hairer et al. II.4)
    """Integrate (dy/ds, dℓ/ds) = f(s, y) from s0 to s1 > s0 with ℓ(s0) = 0; (y(s1), ℓ(s1), steps, rejected),
    or None when ``progress(fraction done)`` returns True. The step is accepted when the RMS of the error over
    y and (separately) over ℓ, each scaled by atol + rtol·|value|, is ≤ 1."""
    ell = torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
    k1 = f(s0, y)
    d0 = float(torch.sqrt(torch.mean((y / (atol + rtol * y.abs())) ** 2)))
    d1 = float(torch.sqrt(torch.mean((k1[0] / (atol + rtol * y.abs())) ** 2)))
    h = min(0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-3, s1 - s0)  # Hairer et al. II.4, (a)–(b)
    s, steps, rejected = s0, 0, 0
    while s < s1:
        last = h >= s1 - s
        h = s1 - s if last else h
        if h < 1e-10 * (s1 - s0):
            raise ValueError(f"the ODE solver's step fell to {h:.3g} in log σ at σ = {math.exp(s):.4g}: the "
                             "model's prediction changes too fast there to integrate (not finite, or exploding)")
        ks = [k1]
        for i in range(1, 6):
            ks.append(f(s + _C[i] * h, _comb(y, [k[0] for k in ks], _A[i], h)))
        y_new = _comb(y, [k[0] for k in ks], _B[:6], h)
        ell_new = _comb(ell, [k[1] for k in ks], _B[:6], h)
        k7 = f(s1 if last else s + h, y_new)
        ks.append(k7)
        err_y = _comb(torch.zeros_like(y), [k[0] for k in ks], _E, h)
        err_l = _comb(torch.zeros_like(ell), [k[1] for k in ks], _E, h)
        err = max(_err_norm(err_y, y, y_new, rtol, atol), _err_norm(err_l, ell, ell_new, rtol, atol))
        if not math.isfinite(err):
            raise ValueError("the ODE's solution is not finite: the model's prediction overflowed")
        if err <= 1.0:
            s, y, ell, k1, steps = s1 if last else s + h, y_new, ell_new, k7, steps + 1
            if progress is not None and progress((s - s0) / (s1 - s0)):
                return None
        else:
            rejected += 1
        h *= min(10.0, max(0.2, 0.9 * (err if err > 0 else 1e-10) ** -0.2))
    return y, ell, steps, rejected


# ----------------------------------------------------------------------------- the likelihood
def _probe(trace: str, like: torch.Tensor, g: torch.Generator) -> torch.Tensor | None:
    if trace == "exact":
        return None
    if trace == "rademacher":
        return (torch.randint(0, 2, like.shape, generator=g) * 2 - 1).to(like.dtype).to(like.device)
    return torch.randn(like.shape, generator=g, dtype=like.dtype).to(like.device)


def _check(x0: torch.Tensor, schedule: NoiseSchedule, objective: str, trace: str, probes: int, rtol, atol) -> None:
    if x0.ndim < 2 or x0.shape[0] < 1 or not x0.is_floating_point():
        raise ValueError(f"x0 must be a float batch [B, …] with B ≥ 1, got {tuple(x0.shape)} {x0.dtype}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 has non-finite values")
    if objective not in ("eps", "x0", "v"):
        raise ValueError(f"unknown objective {objective!r}; choose one of eps, x0, v")
    if trace not in TRACES:
        raise ValueError(f"unknown trace estimator {trace!r}; choose one of {', '.join(TRACES)}")
    if trace == "exact" and x0[0].numel() > EXACT_MAX_DIM:
        raise ValueError(f"the exact trace needs D = {x0[0].numel()} products per evaluation; use it for "
                         f"D ≤ {EXACT_MAX_DIM}, or a Hutchinson estimator (rademacher, gaussian)")
    if probes < 1:
        raise ValueError(f"probes must be ≥ 1, got {probes}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be > 0, got {rtol}, {atol}")
    if schedule.timesteps < 2:
        raise ValueError("the ODE needs a schedule of at least 2 timesteps (σ_min < σ_max)")
    if not float(schedule.alphas_cumprod[-1]) > 0:
        raise ValueError("ᾱ_{T−1} = 0 (a zero-terminal-SNR schedule): σ_max is infinite, so the ODE's prior "
                         "at σ_max is not defined")


def ode_log_likelihood(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, *, objective: str,
                       probes: int = 1, trace: str = "rademacher", dequantise: bool = True, rtol: float = 1e-3,
                       atol: float = 1e-3, label: int | None = None, seed: int = 0, batch_size: int | None = None,
                       progress: Progress | None = None) -> LikelihoodResult | None:
    # log p(y_σmin) = log N(y_σmax; 0, (1 + σ_max²) I) + ∫ tr(∂ε̂/∂y) dσ   (Song et al. 2021, app. D.2; module doc)
    """The probability-flow ODE's log-likelihood of x0 [B, …] (in [−1, 1] for images) and its bits/dim.

    Each image is integrated ``probes`` times, each time with its own probe v and (``dequantise``) its own
    uniform dequantisation u; ``trace`` is "rademacher", "gaussian" or "exact". ``label`` None evaluates a
    class-conditional model unconditionally (the null class ∅, as ``model(x_t, t)`` does), else the class
    ``label`` (``core.guidance.Guided`` at S = 1). ``batch_size`` caps the images × probes per solve.
    ``progress(done, total)`` is called after each accepted step with per-mille of log σ covered per batch;
    if it returns True the computation stops and None is returned. Runs under ``torch.no_grad`` or not.
    """
    _check(x0, schedule, objective, trace, probes, rtol, atol)
    if label is not None:
        model = Guided(model, label)
    sig = sigmas(schedule)
    s_min, s_max = float(sig[0]), float(sig[-1])
    g = torch.Generator().manual_seed(seed)
    B, dims = x0.shape[0], x0[0].numel()
    y0 = x0.repeat(probes, *([1] * (x0.ndim - 1)))  # replica p·B + i is image i, probe p
    if dequantise:
        y0 = y0 + ((torch.rand(y0.shape, generator=g, dtype=y0.dtype) - 0.5) * BIN).to(y0.device)
    probe = _probe(trace, y0, g)
    n = y0.shape[0]
    size = n if batch_size is None else max(1, int(batch_size))
    chunks = list(range(0, n, size))
    log_p = torch.empty(n, dtype=torch.float64)
    nfe = steps = rejected = 0
    for c, lo in enumerate(chunks):
        sl = slice(lo, lo + size)
        field = _Field(model, schedule, objective, trace, None if probe is None else probe[sl])

        def tick(frac, c=c):
            return bool(progress(c * PROGRESS_UNITS + int(round(frac * PROGRESS_UNITS)),
                                 len(chunks) * PROGRESS_UNITS)) if progress is not None else False

        out = dopri5(field, math.log(s_min), math.log(s_max), y0[sl], rtol=rtol, atol=atol, progress=tick)
        nfe += field.nfe
        if out is None:
            return None
        y_max, ell, n_steps, n_rejected = out
        log_p[sl] = (prior_log_prob(y_max, s_max) + ell).cpu()
        steps, rejected = steps + n_steps, rejected + n_rejected
    return _result(log_p.reshape(probes, B).T.numpy(), dims, trace, dequantise, nfe, steps, rejected, s_min, s_max,
                   rtol, atol)


def _result(log_p: np.ndarray, dims: int, trace: str, dequantise: bool, nfe: int, steps: int, rejected: int,
            s_min: float, s_max: float, rtol: float, atol: float) -> LikelihoodResult:
    B, P = log_p.shape
    bpd_all = bits_per_dim(log_p, dims)  # [B, P]
    bpd = bpd_all.mean(axis=1)
    stderr = float(bpd.std(ddof=1) / math.sqrt(B)) if B > 1 else float("nan")
    probe_se = None
    if P > 1:  # Var(mean) = Σ_i Var_i/P / B², each image's probe variance
        probe_se = float(math.sqrt(bpd_all.var(axis=1, ddof=1).sum() / P) / B)
    return LikelihoodResult(log_p, bpd, float(bpd.mean()), stderr, probe_se, P, trace, dequantise, nfe, steps,
                            rejected, s_min, s_max, rtol, atol)


__all__ = ["BIN", "TRACES", "LikelihoodResult", "bits_per_dim", "dopri5", "eps_at_sigma", "ode_log_likelihood",
           "prior_log_prob", "sigma_of_t", "t_of_sigma"]
