"""DDIM inversion (Song et al. 2021, secs. 4.3, 5.3 and 5.4): the deterministic sampler run backwards, from an image
x_0 up to its x_T, and decoded again; and interpolation between two x_T along the sphere they lie near.

With η = 0, DDIM's update (eq. 12) is the probability-flow ODE discretised (eq. 14): in EDM's variables
y = x_t/√ᾱ_t and σ_t = √((1−ᾱ_t)/ᾱ_t) one decoding step from t to t' < t is y_{t'} = y_t + (σ_{t'} − σ_t) ε̂,
an affine map for a fixed ε̂, so it has an exact inverse y_t = y_{t'} + (σ_t − σ_{t'}) ε̂ — if one knew the
ε̂ = ε_θ(x_t, t) that decoding will use at the upper end. Inversion does not know x_t yet, so it evaluates the
model at (x_{t'}, t) instead: the current, less noisy sample told the upper timestep. This is the standard
approximation (diffusers' DDIMInverseScheduler: its ``step`` takes the model's output for ``timestep`` on the
sample one level below and moves it up to ``timestep``), exact as the steps shrink and the source of every
reconstruction error here: the error falls as the steps grow.

The first inversion step goes from x_0 itself (ᾱ = 1, σ = 0) to ts[-1], the last timestep decoding visits:
the decoder's last step maps x_{ts[-1]} to x_0 with ε̂(x_{ts[-1]}, ts[-1]), so the inverse uses ε̂(x_0, ts[-1]),
x_0 treated as the sample at ts[-1]. The model's output is turned into ε̂ at the timestep the model was told
(``predict_x0_eps`` at t, for every objective), which is the ε̂ that decoding computes from its output there;
diffusers instead converts an x_0 or v output with the lower level's ᾱ, which at x_0 (ᾱ = 1) divides by zero
for an x_0-predicting model. For an ε-model the two agree exactly.

No step of the inversion clips x̂_0 to [−1, 1]: a clipped step sends every x whose x̂_0 leaves the box to the
same boundary, so it is many-to-one and has no inverse, and ``predict_x0_eps`` would recompute ε̂ from the
clipped x̂_0, so the steps would no longer follow the ODE. Decoding for a reconstruction
does not clip either (``clip_x0=False``), for the same reason: clipping is a sampling heuristic, not part of
the ODE whose inverse this is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from diffview.core.diffusion import Model, gather, predict_x0_eps
from diffview.core.guidance import guided
from diffview.core.sampling import iter_sample, timestep_sequence
from diffview.core.schedule import NoiseSchedule

Progress = Callable[[int, int], "bool | None"]  # progress(done, total) after each model call; True stops
GREY_LEVELS = 127.5  # one unit of [−1, 1] in grey levels: x ↦ (x + 1)·127.5 on the 0–255 scale (io.export.to_uint8)
PARALLEL_DOT = 0.9995  # |cos θ| above this: slerp falls back to the straight line (sin θ too small to divide by)


# ----------------------------------------------------------------------------- inversion
def ddim_inverse_step(eps: torch.Tensor, x: torch.Tensor, t: int, t_next: int, schedule: NoiseSchedule) -> torch.Tensor:
    # x_{t'} = √ᾱ_{t'} (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t + √(1−ᾱ_{t'}) ε̂   (DDIM eq. 12, σ = 0, read from t up to t' > t)
    """One deterministic DDIM step up the chain, from x at ``t`` to ``t_next`` > t; ``t = -1`` is x_0 (ᾱ = 1)."""
    if not -1 <= t < t_next < schedule.timesteps:
        raise ValueError(f"an inversion step goes up from t to t_next in -1..{schedule.timesteps - 1}, "
                         f"got {t} to {t_next}")
    ab_ext = torch.cat([torch.ones(1, dtype=schedule.alphas_cumprod.dtype), schedule.alphas_cumprod])
    ab, ab_next = gather(ab_ext, t + 1, x), gather(ab_ext, t_next + 1, x)
    x0 = (x - torch.sqrt(1.0 - ab) * eps) / torch.sqrt(ab)
    return torch.sqrt(ab_next) * x0 + torch.sqrt(1.0 - ab_next) * eps


def _conditioned(model: Model, label, guidance_scale: float, batch: int) -> Model:
    return model if label is None else guided(model, label, guidance_scale, batch)


@torch.no_grad()
def ddim_invert(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, steps: int, objective: str, *,
                spacing: str = "trailing", label: torch.Tensor | int | None = None, guidance_scale: float = 1.0,
                progress: Progress | None = None) -> torch.Tensor | None:
    """x_T of the images ``x0`` [B, …]: DDIM with η = 0 run up ``timestep_sequence(T, steps, spacing)``, from
    x_0 to ts[-1] and on to ts[0] (T−1 for trailing spacing), x̂_0 never clipped (see the module's docstring).

    ``iter_sample(sampler="ddim", x_T=…, steps=steps, spacing=spacing, clip_x0=False)`` decodes it back.
    ``label`` (a class, or one per image) inverts through a class-conditional model guided at
    ``guidance_scale`` (core/guidance.py), as decoding with the same label does; S = 1, the conditional model
    itself, is the natural choice (a large S makes the ODE stiff and inversion poor). ``progress(done, steps)``
    is called after each model call; once it returns True the inversion stops and None is returned."""
    ts = timestep_sequence(schedule.timesteps, steps, spacing)
    up = [-1, *reversed(ts)]  # x_0, then the timesteps decoding visits, ascending
    net = _conditioned(model, label, guidance_scale, x0.shape[0])
    x = x0
    for i, (t, t_next) in enumerate(zip(up, up[1:])):
        t_model = torch.full((x.shape[0],), t_next, dtype=torch.long, device=x.device)
        # ε̂(x_{t_next}, t_next) ≈ ε̂(x_t, t_next): the model told the upper timestep, on the sample at t
        _, eps = predict_x0_eps(net(x, t_model), x, t_next, schedule, objective, clip_x0=False)
        x = ddim_inverse_step(eps, x, t, t_next, schedule)
        if progress is not None and progress(i + 1, len(ts)):
            return None
    return x


@torch.no_grad()
def ddim_decode(model: Model, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, objective: str, *,
                spacing: str = "trailing", clip_x0: bool = False, label: torch.Tensor | int | None = None,
                guidance_scale: float = 1.0, progress: Progress | None = None) -> torch.Tensor | None:
    """x_0 decoded from ``x_T`` by ``iter_sample`` (DDIM, η = 0, the same steps and spacing as
    :func:`ddim_invert`); ``progress`` as there."""
    x = None
    for st in iter_sample(model, x_T.shape, schedule, sampler="ddim", steps=steps, eta=0.0, spacing=spacing,
                          objective=objective, clip_x0=clip_x0, x_T=x_T, label=label, guidance_scale=guidance_scale):
        x = st.x_prev
        if progress is not None and progress(st.index + 1, steps):
            return None
    return x


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """``progress`` for one part of a longer computation: its calls counted from ``done`` out of ``total``."""
    return None if progress is None else (lambda i, _n: progress(done + i, total))


def reconstruct(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, steps: int, objective: str, *,
                spacing: str = "trailing", label: torch.Tensor | int | None = None, guidance_scale: float = 1.0,
                progress: Progress | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x_T, the reconstruction): ``x0`` inverted with ``steps`` steps and decoded with the same steps, unclipped;
    ``progress(done, 2·steps)`` as in :func:`ddim_invert` (None once stopped)."""
    kw = dict(spacing=spacing, label=label, guidance_scale=guidance_scale)
    x_T = ddim_invert(model, x0, schedule, steps, objective, progress=_offset(progress, 0, 2 * steps), **kw)
    if x_T is None:
        return None
    back = ddim_decode(model, x_T, schedule, steps, objective, progress=_offset(progress, steps, 2 * steps), **kw)
    return None if back is None else (x_T, back)


def rms_grey_levels(a: torch.Tensor, b: torch.Tensor) -> float:
    # RMS = 127.5 · √(mean (a − b)²): images in [−1, 1] on the 0–255 scale, 1.0 = one grey level
    """The root-mean-square difference of two image batches in grey levels, on their unrounded, unclipped values."""
    return GREY_LEVELS * float(torch.sqrt(torch.mean((a.double() - b.double()) ** 2)))


@dataclass
class ReconstructionSweep:
    steps: np.ndarray  # the step counts, ascending
    rms: np.ndarray  # the RMS reconstruction error at each, in grey levels (rms_grey_levels)
    x_T: list[torch.Tensor]  # the inverted x_T at each, CPU
    reconstructions: list[torch.Tensor]  # the decoded x_0 at each, CPU


def check_step_counts(counts: Sequence[int], T: int) -> list[int]:
    """The step counts ascending without repeats; a ValueError unless each is a whole number in 1..T."""
    out = sorted({int(k) for k in counts})
    if not out or out[0] < 1 or out[-1] > T or any(int(k) != k for k in counts):
        raise ValueError(f"step counts must be whole numbers in 1..{T} (the schedule's T), got {list(counts)}")
    return out


def reconstruction_error_by_steps(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, step_counts: Sequence[int],
                                  objective: str, *, spacing: str = "trailing",
                                  label: torch.Tensor | int | None = None, guidance_scale: float = 1.0,
                                  progress: Progress | None = None) -> ReconstructionSweep | None:
    """:func:`reconstruct` at each step count, and its RMS error against ``x0`` in grey levels.

    ``progress(done, total)`` counts model calls over the whole sweep (2·k for each count k); None once it
    returned True."""
    counts = check_step_counts(step_counts, schedule.timesteps)
    total, done = 2 * sum(counts), 0
    rms, x_Ts, backs = [], [], []
    for k in counts:
        res = reconstruct(model, x0, schedule, k, objective, spacing=spacing, label=label,
                          guidance_scale=guidance_scale, progress=_offset(progress, done, total))
        if res is None:
            return None
        done += 2 * k
        rms.append(rms_grey_levels(res[1], x0))
        x_Ts.append(res[0].detach().cpu())
        backs.append(res[1].detach().cpu())
    return ReconstructionSweep(np.asarray(counts), np.asarray(rms), x_Ts, backs)


# ----------------------------------------------------------------------------- interpolation
def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    # slerp(a, b; w) = sin((1−w)θ)/sin θ · a + sin(wθ)/sin θ · b,  cos θ = a·b/(|a||b|)   (Shoemake 1985)
    """Spherical interpolation between ``a`` and ``b`` (each taken whole, as one vector) at weight w ∈ [0, 1]:
    exactly a at w = 0 and b at w = 1. For nearly parallel (or antiparallel) vectors, |cos θ| > 0.9995,
    where sin θ is too small to divide by, it is the straight line (1 − w) a + w b. Computed in float64."""
    if a.shape != b.shape:
        raise ValueError(f"slerp needs two tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a64, b64 = a.double(), b.double()
    na, nb = torch.linalg.vector_norm(a64), torch.linalg.vector_norm(b64)
    if float(na) == 0.0 or float(nb) == 0.0:
        return torch.lerp(a64, b64, float(w)).to(a.dtype)
    dot = float((a64 * b64).sum() / (na * nb))
    if abs(dot) > PARALLEL_DOT:
        return torch.lerp(a64, b64, float(w)).to(a.dtype)
    theta = math.acos(dot)
    s = math.sin(theta)
    return (math.sin((1.0 - w) * theta) / s * a64 + math.sin(w * theta) / s * b64).to(a.dtype)


def interpolation_weights(frames: int) -> np.ndarray:
    """w_i = i/(frames − 1) for i = 0 … frames − 1: both ends included."""
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {frames!r}")
    return np.arange(frames) / (frames - 1)


@dataclass
class Interpolation:
    weights: np.ndarray  # w of each frame, 0 … 1
    x_T_a: torch.Tensor  # [1, …]
    x_T_b: torch.Tensor
    x_T: torch.Tensor  # [frames, …]: slerp(x_T_a, x_T_b, w) for each w
    frames: torch.Tensor  # [frames, …]: each decoded, CPU


def interpolate(model: Model, a: torch.Tensor, b: torch.Tensor, frames: int, schedule: NoiseSchedule, *,
                objective: str, steps: int, invert: bool = False, spacing: str = "trailing", clip_x0: bool = False,
                label: torch.Tensor | int | None = None, guidance_scale: float = 1.0,
                progress: Progress | None = None) -> Interpolation | None:
    """``frames`` decodings of slerp(x_T^a, x_T^b, w), w from 0 to 1: x_T lies near the sphere of radius √d
    (d the dimension), and the straight line between two such points passes inside it, where x_T are rare.

    ``a`` and ``b`` are x_T^a and x_T^b themselves [1, …] (from two seeds), or with ``invert`` two images x_0
    that :func:`ddim_invert` takes to them first (both in one batch). Every frame is decoded with DDIM, η = 0,
    ``steps`` steps, in one batch, so the first frame is the decoding of x_T^a and the last that of x_T^b.
    ``clip_x0`` is for decoding only: False (the default) makes inverted ends reconstruct their images; the
    handle's clip makes seeded ends the samples of those seeds. ``label`` and ``guidance_scale`` condition both
    the inversion and the decoding, so a class-conditional model interpolates within that class.
    ``progress(done, total)`` counts model calls (steps to invert, if asked, then steps to decode)."""
    if a.shape != b.shape or a.shape[0] != 1:
        raise ValueError(f"interpolate takes two single samples [1, …] of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    weights = interpolation_weights(frames)
    total = steps * (2 if invert else 1)
    if invert:
        x_T = ddim_invert(model, torch.cat([a, b]), schedule, steps, objective, spacing=spacing, label=label,
                          guidance_scale=guidance_scale, progress=_offset(progress, 0, total))
        if x_T is None:
            return None
        a, b = x_T[:1], x_T[1:]
    path = torch.cat([slerp(a, b, float(w)) for w in weights])
    out = ddim_decode(model, path, schedule, steps, objective, spacing=spacing, clip_x0=clip_x0, label=label,
                      guidance_scale=guidance_scale, progress=_offset(progress, total - steps, total))
    if out is None:
        return None
    return Interpolation(weights, a.cpu(), b.cpu(), path.cpu(), out.detach().cpu())


__all__ = ["GREY_LEVELS", "Interpolation", "ReconstructionSweep", "check_step_counts", "ddim_decode", "ddim_invert",
           "ddim_inverse_step", "interpolate", "interpolation_weights", "reconstruct", "reconstruction_error_by_steps",
           "rms_grey_levels", "slerp"]
