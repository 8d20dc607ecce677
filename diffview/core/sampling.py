"""The samplers: which timesteps a reverse process visits, and the loop that chains the steps of
core/diffusion.py and core/ode.py from x_T to x_0, one :class:`SampleStep` at a time.

DDPM (Ho et al. 2020, Alg. 2; respaced as in improved DDPM sec. 4), DDIM (Song et al. 2021), Heun's method
on the probability-flow ODE (Karras et al. 2022, Alg. 1; with churn, Alg. 2) and DPM-Solver++(2M)
(Lu et al. 2022, Alg. 2). Samplers are compared at equal NFE (:func:`nfe`), never at equal steps.
A class-conditional model samples a class with classifier-free guidance (core/guidance.py) through
``label`` and ``guidance_scale``: the one place where guidance enters every sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from diffview.core.diffusion import (
    Model,
    ddim_step,
    ddpm_step,
    model_outputs,
    model_variance,
    noise_like,
    predict_x0_eps,
)
from diffview.core.guidance import guided
from diffview.core.ode import churn, churn_timestep, dpmpp_2m_step, heun_corrects, heun_step, karras_timesteps, sigmas
from diffview.core.schedule import NoiseSchedule, respace

SAMPLERS = ("ddpm", "ddim", "heun", "dpmpp-2m")
SAMPLER_NAMES = {"ddpm": "DDPM", "ddim": "DDIM", "heun": "Heun", "dpmpp-2m": "DPM-Solver++(2M)"}  # as papers write them
SPACINGS = ("trailing", "leading", "linspace", "karras")
ODE_SAMPLERS = ("ddim", "heun", "dpmpp-2m")  # deterministic (DDIM at η = 0, Heun without churn)


def nfe(sampler: str, steps: int, schedule: NoiseSchedule, spacing: str = "trailing",
        t_start: int | None = None, s_churn: float = 0.0) -> int:
    """The network evaluations ``iter_sample`` spends on ``steps`` steps: one a step, and for Heun a second on each
    step that takes the trapezoid's correction (``core.ode.heun_corrects``: not into σ = 0, not on a long step far
    above the data's scale), decided where the step starts: at the churned t̂ with ``s_churn``. A guided sample's
    doubled batch is still one evaluation."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    ts = sampler_timesteps(schedule, steps, spacing, t_start)
    if sampler != "heun":
        return len(ts)
    sig, top = sigmas(schedule).tolist(), schedule.timesteps if t_start is None else int(t_start) + 1
    starts = [churn_timestep(schedule, t, s_churn, len(ts), top) for t in ts]
    return len(ts) + sum(heun_corrects(sig[t], sig[u] if u >= 0 else 0.0) for t, u in zip(starts, [*ts[1:], -1]))


def steps_for_nfe(sampler: str, budget: int, schedule: NoiseSchedule, spacing: str = "trailing",
                  t_start: int | None = None) -> int:
    """The most steps (at least 1) whose :func:`nfe` stays within ``budget``, so that samplers meet at equal cost."""
    top = schedule.timesteps if t_start is None else int(t_start) + 1
    lo, hi = 1, max(1, min(int(budget), top))
    while lo < hi:  # nfe grows with the steps; the largest steps within budget
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if nfe(sampler, mid, schedule, spacing, t_start) <= budget else (lo, mid - 1)
    return lo


def sampler_timesteps(schedule: NoiseSchedule, steps: int, spacing: str = "trailing",
                      t_start: int | None = None) -> list[int]:
    """The timesteps ``iter_sample`` visits with ``steps`` steps from T−1 (or from ``t_start``, at most t_start + 1)."""
    top = schedule.timesteps if t_start is None else int(t_start) + 1
    if not 1 <= top <= schedule.timesteps:
        raise ValueError(f"t_start must lie in 0..{schedule.timesteps - 1}, got {t_start}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return timestep_sequence(top, min(steps, top) if t_start is not None else steps, spacing, schedule)


def timestep_sequence(T: int, steps: int, spacing: str = "trailing",
                      schedule: NoiseSchedule | None = None) -> list[int]:
    """The descending timesteps a sampler with ``steps`` steps visits out of T, for i = 0 … steps−1.

    Exactly ``steps`` distinct 0-based timesteps in [0, T), computed with integers (no float step
    whose rounding could add or drop one); ties round half to even, as numpy does.

    - ``trailing``: round(T − i·T/steps) − 1, so the first step is T−1 and the last round(T/steps)−1
      (Lin et al. 2024, table 2);
    - ``leading``: (steps−1−i)·(T // steps), so the last step is 0 and the first (steps−1)·(T // steps)
      (DDIM's original spacing);
    - ``linspace``: round((steps−1−i)·(T−1)/(steps−1)), so the first is T−1 and the last 0; a single
      step is at T−1, where the chain starts;
    - ``karras``: σ_t on Karras et al.'s ρ = 7 ramp (eq. 5) from σ_{T−1} to σ_0, each the nearest timestep
      (core/ode.py: ``karras_timesteps``); it needs the ``schedule``, whose first T timesteps it spaces.
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
    if spacing == "karras":
        if schedule is None:
            raise ValueError("karras spacing needs the noise schedule (its σ_t)")
        return karras_timesteps(schedule, steps, top=T)
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
    nfe: int = 1  # network evaluations this step spent (Heun: 2 where it corrects, see core.ode.heun_corrects)


# `diffview sample`'s default: Heun with EDM's churn gave the best samples per network evaluation on the digits
# (benchmarks/README.md: at 48 NFE, readable 0.60 and Fréchet distance 19.5 against DDIM-50's 0.49 and 32.6).
DEFAULT_SAMPLER = "heun"
DEFAULT_CHURN = 20.0  # S_churn: over 25 steps γ_i = min(S_churn/N, √2 − 1) = √2 − 1 at every step (EDM Alg. 2)


def default_churn(sampler: str) -> float:
    """The S_churn a sampler takes when none is asked for: DEFAULT_CHURN for Heun, 0 (none) for the others."""
    return DEFAULT_CHURN if sampler == "heun" else 0.0


def default_steps(sampler: str, T: int) -> int:
    """The steps a sampler takes when none are asked for over T timesteps: all T for DDPM, 25 for Heun (at most
    49 evaluations), 50 else (at most T)."""
    return T if sampler == "ddpm" else min(25 if sampler == "heun" else 50, T)


def iter_sample(model: Model, shape: Sequence[int], schedule: NoiseSchedule, *, sampler: str = "ddpm",
                steps: int | None = None, eta: float = 0.0, spacing: str = "trailing", objective: str = "eps",
                clip_x0: bool = True, variance: str | None = None, generator: torch.Generator | None = None,
                x_T: torch.Tensor | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32, t_start: int | None = None,
                label: torch.Tensor | int | None = None, guidance_scale: float = 1.0,
                timesteps: Sequence[int] | None = None, s_churn: float = 0.0,
                s_noise: float = 1.0) -> Iterator[SampleStep]:
    """Run the reverse process from x_T ~ N(0, I), yielding a :class:`SampleStep` per step.

    ``model(x_t, t)`` is any callable with ``t`` a LongTensor of shape [B]. DDPM visits all T
    timesteps when ``steps`` is None, else ``timestep_sequence(T, steps, spacing)`` with the
    respaced betas of improved DDPM (sec. 4). The others visit ``timestep_sequence`` (``default_steps``);
    ``timesteps`` (strictly descending, 0-based) replaces the spacing altogether.
    ``eta`` is DDIM's η; ``s_churn`` and ``s_noise`` are Heun's stochastic churn (EDM Alg. 2: each step first
    noises x_t up to the timestep nearest σ̂ = (1 + γ) σ_t, γ = min(S_churn/N, √2 − 1)); 0 is Alg. 1.
    Every step's ``nfe`` says what it cost; :func:`nfe` gives the total in advance.
    With ``t_start`` the chain starts at that timestep instead of T−1 (``x_T`` is then x_{t_start},
    as SDEdit uses it) and visits at most t_start + 1 steps.
    ``variance`` None is the model's own (:func:`model_variance`): fixed_small for a plain callable.
    ``label`` (a class index, or a LongTensor [B] of them, −1 for none) samples a class-conditional model
    guided at ``guidance_scale`` S (core/guidance.py: S = 0 unconditional, 1 conditional, > 1 guided);
    None samples it unconditionally (the null class).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    variance = model_variance(model) if variance is None else variance
    T = schedule.timesteps
    top = T if t_start is None else int(t_start) + 1
    if not 1 <= top <= T:
        raise ValueError(f"t_start must lie in 0..{T - 1}, got {t_start}")
    if timesteps is not None:
        ts = [int(t) for t in timesteps]
    else:
        ts = sampler_timesteps(schedule, default_steps(sampler, top) if steps is None else steps, spacing, t_start)
    check_timesteps(ts, T)
    if t_start is not None and ts[0] != top - 1:
        # x_T is x_{t_start}: the first model call must be told that timestep, not an earlier one.
        raise ValueError(f"{spacing} spacing with {len(ts)} steps starts at t = {ts[0]}, not at t_start = "
                         f"{t_start}; use trailing, linspace or karras spacing to start from x_{{t_start}}")
    if x_T is None:
        x = torch.randn(tuple(shape), generator=generator, device=device or "cpu", dtype=dtype)
        x = x.to(device) if device is not None else x
    else:
        x = x_T
    if label is not None:
        model = guided(model, label, guidance_scale, x.shape[0])
    args = dict(objective=objective, clip_x0=clip_x0, generator=generator)
    if sampler == "ddpm":
        yield from _ddpm(model, x, ts, schedule, variance, **args)
    elif sampler == "ddim":
        yield from _ddim(model, x, ts, schedule, eta, **args)
    elif sampler == "heun":
        yield from _heun(model, x, ts, schedule, s_churn, s_noise, top, **args)
    else:
        yield from _dpmpp_2m(model, x, ts, schedule, **args)


def _at(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def _ddpm(model, x, ts, schedule, variance, *, objective, clip_x0, generator) -> Iterator[SampleStep]:
    sched = schedule if len(ts) == schedule.timesteps else respace(schedule, ts)
    # Index i of the respaced schedule stands for original timestep ts[-1 - i].
    for index, t in enumerate(ts):
        k = len(ts) - 1 - index if sched is not schedule else t
        out, v = model_outputs(model, x, _at(t, x), variance)
        res = ddpm_step(out, x, k, sched, objective=objective, variance=variance, clip_x0=clip_x0,
                        generator=generator, model_var=v)
        yield SampleStep(index, t, _next(ts, index), x, res.x0_pred, res.prev)
        x = res.prev


def _ddim(model, x, ts, schedule, eta, *, objective, clip_x0, generator) -> Iterator[SampleStep]:
    for index, t in enumerate(ts):
        t_prev = _next(ts, index)
        res = ddim_step(model(x, _at(t, x)), x, t, t_prev, schedule, eta=eta, objective=objective,
                        clip_x0=clip_x0, generator=generator)
        yield SampleStep(index, t, t_prev, x, res.x0_pred, res.prev)
        x = res.prev


def _heun(model, x, ts, schedule, s_churn, s_noise, top, *, objective, clip_x0, generator) -> Iterator[SampleStep]:
    """Karras et al. 2022, Alg. 1 (s_churn = 0) and Alg. 2 in σ = √((1−ᾱ)/ᾱ); the Euler predictor is DDIM at η = 0,
    and a step stays Euler's where ``core.ode.heun_corrects`` says the trapezoid would be the worse of the two."""
    sig = sigmas(schedule).tolist()
    for index, t in enumerate(ts):
        t_prev = _next(ts, index)
        t_hat = churn_timestep(schedule, t, s_churn, len(ts), top)
        if t_hat != t:
            x = churn(x, t, t_hat, schedule, noise_like(x, generator), s_noise)
        out = model(x, _at(t_hat, x))
        euler = ddim_step(out, x, t_hat, t_prev, schedule, objective=objective, clip_x0=clip_x0)
        if not heun_corrects(sig[t_hat], sig[t_prev] if t_prev >= 0 else 0.0):  # Euler alone
            yield SampleStep(index, t_hat, t_prev, x, euler.x0_pred, euler.prev)
            x = euler.prev
            continue
        _, eps = predict_x0_eps(out, x, t_hat, schedule, objective, clip_x0)
        _, eps_next = predict_x0_eps(model(euler.prev, _at(t_prev, x)), euler.prev, t_prev, schedule, objective,
                                     clip_x0)
        prev = heun_step(x, eps, eps_next, t_hat, t_prev, schedule)
        yield SampleStep(index, t_hat, t_prev, x, euler.x0_pred, prev, nfe=2)
        x = prev


def _dpmpp_2m(model, x, ts, schedule, *, objective, clip_x0, generator) -> Iterator[SampleStep]:
    x0_last = t_last = None
    for index, t in enumerate(ts):
        t_prev = _next(ts, index)
        x0, _ = predict_x0_eps(model(x, _at(t, x)), x, t, schedule, objective, clip_x0)
        prev = dpmpp_2m_step(x, x0, x0_last, t, t_prev, t_last, schedule)
        yield SampleStep(index, t, t_prev, x, x0, prev)
        x, x0_last, t_last = prev, x0, t


def _next(ts: Sequence[int], index: int) -> int:
    """The timestep after ts[index], −1 after the last."""
    return ts[index + 1] if index + 1 < len(ts) else -1


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


__all__ = ["DEFAULT_CHURN", "DEFAULT_SAMPLER", "ODE_SAMPLERS", "SAMPLERS", "SAMPLER_NAMES", "SPACINGS", "SampleStep",
           "check_timesteps", "default_churn", "default_steps", "final_sample", "iter_sample", "nfe", "noise_from_seed",
           "sample", "sampler_timesteps", "steps_for_nfe", "timestep_sequence"]
