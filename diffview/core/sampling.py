"""The samplers: which timesteps a reverse process visits, and the loop that chains the steps of
core/diffusion.py from x_T to x_0, one :class:`SampleStep` at a time.

DDPM (Ho et al. 2020, Alg. 2; respaced as in improved DDPM sec. 4) and DDIM (Song et al. 2021).
A class-conditional model samples a class with classifier-free guidance (core/guidance.py) through
``label`` and ``guidance_scale``: the one place where guidance enters every sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from diffview.core.diffusion import Model, ddim_step, ddpm_step, model_outputs, model_variance
from diffview.core.guidance import guided
from diffview.core.schedule import NoiseSchedule, respace

SAMPLERS = ("ddpm", "ddim")
SPACINGS = ("trailing", "leading", "linspace")


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


def default_steps(sampler: str, T: int) -> int:
    """The steps a sampler takes when none are asked for over T timesteps: all T for DDPM, 50 (at most T) else."""
    return T if sampler == "ddpm" else min(50, T)


def iter_sample(model: Model, shape: Sequence[int], schedule: NoiseSchedule, *, sampler: str = "ddpm",
                steps: int | None = None, eta: float = 0.0, spacing: str = "trailing", objective: str = "eps",
                clip_x0: bool = True, variance: str | None = None, generator: torch.Generator | None = None,
                x_T: torch.Tensor | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32, t_start: int | None = None,
                label: torch.Tensor | int | None = None, guidance_scale: float = 1.0) -> Iterator[SampleStep]:
    """Run the reverse process from x_T ~ N(0, I), yielding a :class:`SampleStep` per step.

    ``model(x_t, t)`` is any callable with ``t`` a LongTensor of shape [B]. DDPM visits all T
    timesteps when ``steps`` is None, else ``timestep_sequence(T, steps, spacing)`` with the
    respaced betas of improved DDPM (sec. 4). DDIM visits ``timestep_sequence`` (default 50 steps).
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
    if steps is None:
        steps = default_steps(sampler, top)
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
    if label is not None:
        model = guided(model, label, guidance_scale, batch)
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
            res = ddim_step(out, x, t, t_prev, schedule, eta=eta, objective=objective, clip_x0=clip_x0,
                            generator=generator)
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


__all__ = ["SAMPLERS", "SPACINGS", "SampleStep", "check_timesteps", "default_steps", "final_sample", "iter_sample",
           "noise_from_seed", "sample", "timestep_sequence"]
