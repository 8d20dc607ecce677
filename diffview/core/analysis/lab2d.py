"""What the 2D diffusion view computes, without Qt: the score field on a grid (and a class's guided score
beside it), reverse trajectories, guided samples of every class, and annealed Langevin beside ancestral
DDPM at the same noise levels, from the same x_T.

Each takes an optional ``check()`` that raises to cancel between steps, so a worker thread can
be stopped when the window closes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from diffview.core.analysis.samplers import compare_samplers, default_sampler_specs
from diffview.core.analysis.score import guided_score_from_model, iter_annealed_langevin, score_from_model
from diffview.core.data.points import PLOT_LIMIT, PointDataset, distance_to_data
from diffview.core.data.toy2d import gaussians8_log_density, gaussians8_score
from diffview.core.guidance import is_conditional
from diffview.core.sampling import iter_sample, timestep_sequence
from diffview.core.schedule import NoiseSchedule

Check = Callable[[], None]


def _no_check() -> None:
    return None


def score_grid(n: int = 20, limit: float = PLOT_LIMIT, margin: float = 0.15) -> torch.Tensor:
    """An n×n grid of points over [−limit + margin, limit − margin]², float32 [n², 2]."""
    lin = np.linspace(-limit + margin, limit - margin, n)
    gx, gy = np.meshgrid(lin, lin, indexing="ij")
    return torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))


def score_field(model, schedule: NoiseSchedule, objective: str, t: int, grid: torch.Tensor,
                true_gaussians8: bool = False, density_points: int = 121, limit: float = PLOT_LIMIT,
                label: int | None = None, guidance_scale: float = 1.0) -> dict:
    """The learned score s_θ(x, t) at ``grid`` (None without a model); for a class-conditional model and a
    ``label``, the guided score towards that class at S = ``guidance_scale`` ("guided", else None); and for
    gaussians8 the true score and the true log-density of x_t on a ``density_points``² grid (for level sets)."""
    out = {"t": t, "grid": grid.numpy(), "score": None, "guided": None, "label": label, "scale": guidance_scale,
           "true": None, "logp": None, "axis": None}
    if model is not None:
        t = min(t, schedule.timesteps - 1)
        out["score"] = score_from_model(model, grid, t, schedule, objective).numpy()
        if label is not None and is_conditional(model):
            out["guided"] = guided_score_from_model(model, grid, t, schedule, objective, label,
                                                    guidance_scale).numpy()
    if true_gaussians8:
        alpha_bar = float(schedule.alphas_cumprod[t])
        out["true"] = gaussians8_score(grid, alpha_bar).numpy()
        axis = np.linspace(-limit, limit, density_points)
        fx, fy = np.meshgrid(axis, axis, indexing="ij")
        out["logp"] = gaussians8_log_density(torch.from_numpy(np.stack([fx, fy], -1)), alpha_bar).numpy()
        out["axis"] = axis
    return out


@torch.no_grad()
def reverse_trajectories(model, schedule: NoiseSchedule, objective: str, n: int = 300, steps: int = 100,
                         seed: int = 1, check: Check = _no_check) -> tuple[np.ndarray, list[int]]:
    """DDPM (respaced to ``steps``) from n points of x_T: every position [steps + 1, n, 2] and the t reached."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    frames, ts = [x_T], []
    for st in iter_sample(model, x_T.shape, schedule, sampler="ddpm", steps=min(steps, schedule.timesteps),
                          objective=objective, x_T=x_T, clip_x0=False,
                          generator=torch.Generator().manual_seed(seed + 1)):
        check()
        frames.append(st.x_prev)
        ts.append(st.t_prev)
    return torch.stack(frames).numpy(), ts


@torch.no_grad()
def class_samples(model, schedule: NoiseSchedule, objective: str, *, n_per_class: int = 500, scale: float = 3.0,
                  steps: int = 100, seed: int = 7, check: Check = _no_check) -> dict:
    """``n_per_class`` DDPM samples (respaced to ``steps``) of every class of a class-conditional model,
    guided at S = ``scale``, and as many unconditional ones from the same x_T and noise: "guided" [K·n, 2]
    with its "labels" [K·n] (class k's rows k·n … (k+1)·n − 1), "uncond" [K·n, 2]."""
    if not is_conditional(model):
        raise ValueError("the model is not class-conditional: tick Conditional and train again")
    classes = int(model.num_classes)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    x_T = torch.randn(len(labels), 2, generator=torch.Generator().manual_seed(seed))
    out = {"labels": labels.numpy(), "scale": float(scale), "n": n_per_class, "classes": classes}
    for key, guide in (("guided", {"label": labels, "guidance_scale": scale}), ("uncond", {})):
        x = x_T
        for st in iter_sample(model, x_T.shape, schedule, sampler="ddpm", steps=min(steps, schedule.timesteps),
                              objective=objective, x_T=x_T.clone(), clip_x0=False,
                              generator=torch.Generator().manual_seed(seed + 1), **guide):
            check()
            x = st.x_prev
        out[key] = x.numpy()
    return out


def langevin_vs_ddpm(model, schedule: NoiseSchedule, objective: str, dataset: PointDataset, *, n: int = 2000,
                     levels: int = 50, steps_per_level: int = 10, step_size: float = 0.5, frames: bool = True,
                     seed: int = 3, check: Check = _no_check) -> dict:
    """Annealed Langevin with the learned score and ancestral DDPM over the same noise levels (evenly
    spaced from T−1 to 0), from the same x_T; their distances to the data and its floor."""
    levels = min(levels, schedule.timesteps)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    lang, ddpm = [x_T], [x_T]

    def score(x, t):
        check()
        return score_from_model(model, x, t, schedule, objective)

    last_lang = last_ddpm = x_T
    for lvl in iter_annealed_langevin(score, x_T, schedule, levels=levels, steps_per_level=steps_per_level,
                                      step_size=step_size, generator=torch.Generator().manual_seed(seed + 1)):
        last_lang = lvl.x
        if frames:
            lang.append(lvl.x)
    with torch.no_grad():
        for st in iter_sample(model, x_T.shape, schedule, sampler="ddpm", steps=levels, spacing="linspace",
                              objective=objective, x_T=x_T.clone(), clip_x0=False,
                              generator=torch.Generator().manual_seed(seed + 1)):
            check()
            last_ddpm = st.x_prev
            if frames:
                ddpm.append(st.x_prev)
    d_lang, floor, used = distance_to_data(last_lang, dataset)
    out = {"ts": timestep_sequence(schedule.timesteps, levels, "linspace"), "lang_d": d_lang,
           "ddpm_d": distance_to_data(last_ddpm, dataset)[0], "floor": floor, "n": used, "levels": levels,
           "per": steps_per_level, "step": step_size}
    if frames:
        out["lang"], out["ddpm"] = torch.stack(lang).numpy(), torch.stack(ddpm).numpy()
    return out


def sampler_distances(model, schedule: NoiseSchedule, objective: str, dataset: PointDataset, *, n: int = 10_000,
                      seed: int = 5, check: Check = _no_check) -> dict:
    """Every sampler of :func:`~.analysis.default_sampler_specs` from one x_T of n points: each one's
    distance to the data and wall time, and the floor."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    rows, floor, used = [], None, n

    def stop() -> bool:
        check()
        return False

    for result in compare_samplers(model, x_T, schedule, default_sampler_specs(schedule),
                                   objective=objective, clip_x0=False, seed=seed + 1, stop=stop):
        distance, floor, used = distance_to_data(result.samples, dataset)
        rows.append((result.spec.label, distance, result.seconds))
    return {"rows": rows, "floor": floor, "n": used}


__all__ = ["class_samples", "langevin_vs_ddpm", "reverse_trajectories", "sampler_distances", "score_field",
           "score_grid"]
