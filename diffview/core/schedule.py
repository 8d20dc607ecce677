"""Variance schedules β_t and every quantity derived from them.

Timesteps are 0-based: index ``t`` ∈ {0, …, T−1} is the paper's step t+1, so
``alphas_cumprod[t]`` = ∏_{s≤t} (1 − β_s) is ᾱ_{t+1} in Ho et al. (2020).
Everything is computed in float64; the diffusion functions cast the
coefficients they gather to the dtype and device of their input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

SCHEDULES = ("linear", "cosine", "sigmoid", "sigmoid-beta", "quadratic")

_F64 = torch.float64


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A variance schedule and its derived per-timestep coefficients (all float64, length T)."""

    name: str
    timesteps: int
    options: dict[str, Any]
    betas: torch.Tensor
    alphas: torch.Tensor  # α_t = 1 − β_t
    alphas_cumprod: torch.Tensor  # ᾱ_t = ∏_{s≤t} α_s
    alphas_cumprod_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_{−1} = 1
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor  # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t   (DDPM eq. 7)
    posterior_log_variance_clipped: torch.Tensor  # log β̃_t with β̃_0 replaced by β̃_1 (β̃_0 = 0)
    posterior_mean_coef1: torch.Tensor  # √ᾱ_{t−1} β_t / (1 − ᾱ_t)           (DDPM eq. 7)
    posterior_mean_coef2: torch.Tensor  # √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)      (DDPM eq. 7)
    snr: torch.Tensor  # ᾱ_t / (1 − ᾱ_t)
    original_timesteps: torch.Tensor | None = field(default=None)
    """For a respaced schedule: the timestep of the original schedule each index stands for."""

    def __len__(self) -> int:
        return self.timesteps

    @property
    def log_snr(self) -> torch.Tensor:
        """log(ᾱ_t / (1 − ᾱ_t)), the quantity schedules are often compared by."""
        return torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)

    def model_timesteps(self) -> torch.Tensor:
        """The timestep the model is conditioned on at each index (identity unless respaced)."""
        if self.original_timesteps is None:
            return torch.arange(self.timesteps)
        return self.original_timesteps


def schedule_from_betas(
    betas: torch.Tensor | Sequence[float],
    name: str = "custom",
    options: dict[str, Any] | None = None,
    original_timesteps: torch.Tensor | None = None,
    allow_terminal_one: bool = False,
    alphas_cumprod: torch.Tensor | None = None,
) -> NoiseSchedule:
    """Build a :class:`NoiseSchedule` from β_0 … β_{T−1}.

    ``allow_terminal_one`` admits β_{T−1} = 1 (ᾱ_{T−1} = 0), which only a
    zero-terminal-SNR schedule produces. ``alphas_cumprod``, when given, is ᾱ itself (the
    betas' cumulative product up to rounding), kept exactly instead of recomputed.
    """
    betas = torch.as_tensor(betas, dtype=_F64).clone()
    if betas.ndim != 1 or betas.numel() < 1:
        raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
    _check_betas(betas, name, allow_terminal_one)
    alphas = 1.0 - betas
    if alphas_cumprod is None:
        alphas_cumprod = torch.cumprod(alphas, dim=0)
    else:
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=_F64).clone()
        if alphas_cumprod.shape != betas.shape:
            raise ValueError(f"alphas_cumprod has shape {tuple(alphas_cumprod.shape)}, betas {tuple(betas.shape)}")
    alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=_F64), alphas_cumprod[:-1]])
    one_minus = 1.0 - alphas_cumprod
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / one_minus
    # β̃_0 = 0, so its log is clipped to log β̃_1 as improved-diffusion does (for T = 1 use β_0).
    first = posterior_variance[1:2] if len(betas) > 1 else betas[:1]
    posterior_log_variance_clipped = torch.log(torch.cat([first, posterior_variance[1:]]))
    return NoiseSchedule(
        name=name,
        timesteps=len(betas),
        options=dict(options or {}),
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_alphas_cumprod=torch.sqrt(alphas_cumprod),
        sqrt_one_minus_alphas_cumprod=torch.sqrt(one_minus),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=posterior_log_variance_clipped,
        posterior_mean_coef1=betas * torch.sqrt(alphas_cumprod_prev) / one_minus,
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * torch.sqrt(alphas) / one_minus,
        snr=alphas_cumprod / one_minus,
        original_timesteps=original_timesteps,
    )


def make_schedule(name: str = "linear", timesteps: int = 1000, **options: Any) -> NoiseSchedule:
    """Make a named schedule of T = ``timesteps`` steps.

    Names (``SCHEDULES``):

    - ``"linear"``: β linear from 1e-4 to 0.02 at T = 1000 (Ho et al. 2020, sec. 4); for other T
      both ends scale by 1000/T as in improved-diffusion. ``beta_start``/``beta_end`` override.
    - ``"cosine"``: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2) (Nichol & Dhariwal
      2021, eq. 17), s = 0.008 (option ``s``), β clipped at ``max_beta`` = 0.999.
    - ``"sigmoid"``: a sigmoid curve on ᾱ (Jabri et al. 2022; Chen 2023):
      ᾱ(τ) ∝ σ(end/τ') − σ((τ(end − start) + start)/τ'), start −3, end 3, tau 1, β clipped at 0.999.
    - ``"sigmoid-beta"``: β = σ(linspace(−6, 6, T)) · (beta_end − beta_start) + beta_start
      (GeoDiff, Xu et al. 2022). Not the same schedule as ``"sigmoid"``.
    - ``"quadratic"``: √β linear from √beta_start to √beta_end.

    Option ``zero_terminal_snr=True`` rescales √ᾱ so that ᾱ_{T−1} = 0 while ᾱ_0 is kept
    (Lin et al. 2024, Algorithm 1). The ε-objective cannot predict x_0 at that last step
    (it divides by √ᾱ_{T−1} = 0); train with the v objective, as the paper does.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}")
    opts = dict(options)
    zero_terminal_snr = bool(opts.pop("zero_terminal_snr", False))
    allowed = _OPTIONS[name]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for schedule {name!r}; "
            f"allowed: {', '.join(sorted(allowed) + ['zero_terminal_snr'])}"
        )
    T = timesteps
    if name in ("linear", "quadratic", "sigmoid-beta"):
        scale = 1000.0 / T
        defaulted = {k for k in ("beta_start", "beta_end") if k not in opts}
        opts.setdefault("beta_start", scale * 1e-4)
        opts.setdefault("beta_end", scale * 0.02)
        bs, be = float(opts["beta_start"]), float(opts["beta_end"])
        for key, value in (("beta_start", bs), ("beta_end", be)):
            if not 0.0 < value < 1.0:
                hint = (
                    f" (the default scales 1000/T with T={T}; use T >= 51 or pass {key} explicitly)"
                    if key in defaulted
                    else ""
                )
                raise ValueError(f"{key} must lie in (0, 1), got {value!r}{hint}")
        if name == "linear":
            betas = torch.linspace(bs, be, T, dtype=_F64)
        elif name == "quadratic":
            betas = torch.linspace(math.sqrt(bs), math.sqrt(be), T, dtype=_F64) ** 2
        else:
            betas = torch.sigmoid(torch.linspace(-6.0, 6.0, T, dtype=_F64)) * (be - bs) + bs
    elif name == "cosine":
        opts.setdefault("s", 0.008)
        opts.setdefault("max_beta", 0.999)
        s, max_beta = float(opts["s"]), float(opts["max_beta"])
        tau = torch.arange(T + 1, dtype=_F64) / T
        f = torch.cos((tau + s) / (1.0 + s) * math.pi / 2.0) ** 2
        alpha_bar = f / f[0]
        betas = torch.clamp(1.0 - alpha_bar[1:] / alpha_bar[:-1], max=max_beta)
    else:  # sigmoid on ᾱ
        opts.setdefault("start", -3.0)
        opts.setdefault("end", 3.0)
        opts.setdefault("tau", 1.0)
        opts.setdefault("max_beta", 0.999)
        start, end, tau_ = (float(opts[k]) for k in ("start", "end", "tau"))
        if not end > start or tau_ <= 0:
            raise ValueError(f"sigmoid schedule needs end > start and tau > 0, got {start}, {end}, {tau_}")
        u = torch.arange(T + 1, dtype=_F64) / T
        v_start = torch.sigmoid(torch.tensor(start / tau_, dtype=_F64))
        v_end = torch.sigmoid(torch.tensor(end / tau_, dtype=_F64))
        alpha_bar = (v_end - torch.sigmoid((u * (end - start) + start) / tau_)) / (v_end - v_start)
        alpha_bar = alpha_bar / alpha_bar[0]
        betas = torch.clamp(1.0 - alpha_bar[1:] / alpha_bar[:-1], min=0.0, max=float(opts["max_beta"]))
    _check_betas(betas, name)
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
        opts["zero_terminal_snr"] = True
    return schedule_from_betas(betas, name=name, options=opts, allow_terminal_one=zero_terminal_snr)


def respace(schedule: NoiseSchedule, use_timesteps: Sequence[int]) -> NoiseSchedule:
    """A schedule over a subset of timesteps with the same ᾱ at each kept step.

    β'_i = 1 − ᾱ_{t_i} / ᾱ_{t_{i−1}} (Nichol & Dhariwal 2021, sec. 4), for t_0 < t_1 < … the kept
    timesteps in ascending order. Index i of the result stands for original timestep t_i, and its
    ᾱ_i is the original ᾱ_{t_i} exactly (not re-multiplied from the β'_i).
    """
    keep = sorted(set(int(t) for t in use_timesteps))
    if not keep or keep[0] < 0 or keep[-1] >= schedule.timesteps:
        raise ValueError(f"use_timesteps must lie in 0..{schedule.timesteps - 1}, got {keep[:3]}…")
    ac = schedule.alphas_cumprod[keep]
    prev = torch.cat([torch.ones(1, dtype=_F64), ac[:-1]])
    betas = 1.0 - ac / prev
    original = schedule.model_timesteps()[keep]
    return schedule_from_betas(
        betas,
        name=schedule.name,
        options={**schedule.options, "respaced_from": schedule.timesteps},
        original_timesteps=original,
        allow_terminal_one=bool(schedule.options.get("zero_terminal_snr")),
        alphas_cumprod=ac,
    )


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    # Lin et al. 2024, Algorithm 1: shift and scale √ᾱ so that √ᾱ_{T−1} = 0 and √ᾱ_0 is kept.
    """The betas rescaled to a zero terminal SNR (ᾱ_{T−1} = 0), ᾱ_0 unchanged."""
    sqrt_ab = torch.sqrt(torch.cumprod(1.0 - betas, dim=0))
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


def _check_betas(betas: torch.Tensor, name: str, allow_terminal_one: bool = False) -> None:
    if not torch.isfinite(betas).all():
        raise ValueError(f"schedule {name!r} has non-finite betas")
    body = betas[:-1] if allow_terminal_one else betas
    bad = (body <= 0) | (body >= 1)
    if allow_terminal_one:
        bad = torch.cat([bad, ((betas[-1:] <= 0) | (betas[-1:] > 1))])
    if bad.any():
        i = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"schedule {name!r}: beta[{i}] = {float(betas[i]):.6g} is outside (0, 1); "
            "every beta must satisfy 0 < beta < 1"
        )


_OPTIONS = {
    "linear": ("beta_start", "beta_end"),
    "quadratic": ("beta_start", "beta_end"),
    "sigmoid-beta": ("beta_start", "beta_end"),
    "cosine": ("s", "max_beta"),
    "sigmoid": ("start", "end", "tau", "max_beta"),
}
