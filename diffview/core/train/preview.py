"""The preview a run draws as it trains: samples of the EMA model from one fixed x_T, saved as a grid.

Images make a grid; 2D points a scatter plot with the sliced Wasserstein distance to the data. A
class-conditional run draws one row per class, guided at the run's ``guidance_scale``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from diffview.core.data.points import PLOT_LIMIT, distance_to_data, scatter_image
from diffview.core.io.checkpoint import RunDir
from diffview.core.io.export import save_grid, to_uint8
from diffview.core.sampling import default_churn, final_sample, iter_sample, noise_from_seed
from diffview.core.schedule import NoiseSchedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.events import PreviewEvent


def preview_layout(cfg: TrainConfig) -> tuple[int, torch.Tensor | None, int | None]:
    """(how many samples, their labels or None, images per grid row). A conditional run: one row per class,
    as many per row as ``preview_n`` spread over the classes allows (at least 4)."""
    if not cfg.conditional or not cfg.class_names:
        return cfg.preview_n, None, None
    classes = len(cfg.class_names)
    per_class = max(4, math.ceil(cfg.preview_n / classes))
    return classes * per_class, torch.arange(classes).repeat_interleave(per_class), per_class


def preview_noise(cfg: TrainConfig, data) -> torch.Tensor:
    """The fixed x_T every preview of the run starts from (seed + 1)."""
    n, _, _ = preview_layout(cfg)
    return noise_from_seed(data.sample_shape(n), cfg.seed + 1)[0]


@torch.no_grad()
def draw_preview(model, schedule: NoiseSchedule, cfg: TrainConfig, data, x_T: torch.Tensor, step: int,
                 device: torch.device, run_dir: RunDir | None) -> PreviewEvent:
    """Sample ``model`` (the EMA weights) from ``x_T`` and save the grid in the run folder."""
    t0 = time.perf_counter()
    points = data.kind == "points"
    steps = min(cfg.preview_steps, cfg.timesteps)
    _, labels, nrow = preview_layout(cfg)
    guide = {} if labels is None else {"label": labels.to(device), "guidance_scale": cfg.guidance_scale}
    churn = default_churn(cfg.preview_sampler)
    final = final_sample(iter_sample(model, x_T.shape, schedule, sampler=cfg.preview_sampler, steps=steps,
                                     s_churn=churn, objective=cfg.objective, x_T=x_T.to(device), clip_x0=not points,
                                     generator=torch.Generator().manual_seed(cfg.seed + 2), **guide)).float().cpu()
    distance = None
    if points:  # a scatter plot stands in for the grid; the distance to the data says how close it is
        distance = distance_to_data(final, data)[0]
        arr = scatter_image(final, limit=PLOT_LIMIT)[None]
    else:
        arr = to_uint8(final)
    seconds = time.perf_counter() - t0
    path = None
    if run_dir is not None:
        meta = {"step": step, "seed": cfg.seed + 1, "schedule": cfg.schedule, "timesteps": cfg.timesteps,
                "sampler": cfg.preview_sampler, "sampler_steps": steps, "objective": cfg.objective}
        if churn:
            meta["s_churn"] = churn
        if labels is not None:
            meta.update(rows=", ".join(cfg.class_names), guidance_scale=cfg.guidance_scale)
        if distance is not None:
            meta["sliced_wasserstein"] = round(distance, 5)
        path = str(save_grid(arr, run_dir.sample_path(step), nrow=None if points else nrow, scale=1 if points else 2,
                             metadata=meta))
    return PreviewEvent(step, arr, cfg.preview_sampler, steps, seconds, path,
                        points=final.numpy() if points else None, distance=distance, nrow=nrow,
                        labels=None if labels is None else labels.numpy().astype(np.int64),
                        guidance_scale=None if labels is None else cfg.guidance_scale)


__all__ = ["draw_preview", "preview_layout", "preview_noise"]
