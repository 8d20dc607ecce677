"""Classifier-free guidance, looked at: the two predictions guidance combines at one step, and a sweep of
the guidance scale S over classes.

ε̃ = ε_u + S (ε_c − ε_u) (core/guidance.py): :func:`eps_parts` gives ε_c and ε_u at one x_t, as ε whatever
the model's objective (so ε_c − ε_u is what S amplifies). :func:`guidance_sweep` draws ``per_cell`` samples
for every (class, S): row r (a class) starts from the same x_T in every column, the noise
``noise_from_seed`` draws from ``seed + r``, and every column's sampler from a generator seeded ``seed``, so
with DDIM η = 0 a column differs from the next only by S.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from diffview.core.diffusion import predict_x0_eps
from diffview.core.guidance import Guided
from diffview.core.io.export import to_uint8
from diffview.core.runs.handle import ModelHandle
from diffview.core.sampling import default_steps, final_sample, noise_from_seed

SWEEP_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)


@torch.no_grad()
def eps_parts(handle: ModelHandle, x_t: torch.Tensor, t: int,
              label: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε_c, ε_u) at (x_t, t) for the class ``label``, from one doubled batch (``Guided.parts``), each
    converted to ε from the model's objective without clipping x̂_0 (``predict_x0_eps``)."""
    model = handle.model
    g = Guided(model, label, batch=x_t.shape[0])
    tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long)
    out_c, out_u = g.parts(x_t, tt)
    _, eps_c = predict_x0_eps(out_c, x_t, tt, handle.schedule, handle.objective, clip_x0=False)
    _, eps_u = predict_x0_eps(out_u, x_t, tt, handle.schedule, handle.objective, clip_x0=False)
    return eps_c, eps_u


@dataclass(frozen=True, eq=False)
class SweepCell:
    """The samples of one (class, S) cell of a guidance sweep."""

    row: int  # index into the sweep's classes
    column: int  # index into its scales
    label: int  # the class index sampled
    scale: float  # S
    x_T: torch.Tensor  # the row's noise, [per_cell, *shape] (the same in every column)
    x0: torch.Tensor  # the samples, float32 CPU
    images: np.ndarray  # uint8 [per_cell, C, H, W] (images; points: empty)


def sweep_noise(handle: ModelHandle, rows: int, per_cell: int, seed: int) -> torch.Tensor:
    """x_T for every row of a sweep, rows stacked: row r is ``noise_from_seed`` of ``seed + r``."""
    return torch.cat([noise_from_seed(handle.sample_shape(per_cell), seed + r)[0] for r in range(rows)])


def guidance_sweep(handle: ModelHandle, classes: Sequence[int], scales: Sequence[float] = SWEEP_SCALES,
                   per_cell: int = 4, seed: int = 0, sampler: str = "ddim", steps: int = 25, eta: float = 0.0,
                   stop: Callable[[], bool] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Iterator[SweepCell]:
    """Sample every (class, S): one sampler run per S over all the classes at once, yielding that column's
    cells in class order; ``progress(calls done, calls in all)`` after each step. Ends early once ``stop()``,
    asked after every step (before the next model call), is True."""
    handle = handle.resolved()
    classes = [handle.class_index(c) for c in classes]
    if not classes or not scales:
        raise ValueError("a sweep needs at least one class and one guidance scale")
    if per_cell < 1:
        raise ValueError(f"per_cell must be at least 1, got {per_cell}")
    x_T = sweep_noise(handle, len(classes), per_cell, seed)
    y = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_cell)
    T = handle.schedule.timesteps
    done, total = 0, len(scales) * min(int(default_steps(sampler, T) if steps is None else steps), T)
    for column, scale in enumerate(scales):
        def counted(it):
            nonlocal done
            for st in it:
                done += 1
                if progress is not None:
                    progress(done, total)
                yield st

        x0 = final_sample(counted(handle.iter_sample(len(y), sampler=sampler, steps=steps, eta=eta, seed=seed,
                                                     x_T=x_T.clone(), label=y, guidance_scale=float(scale))), stop)
        if x0 is None:
            return
        x0 = x0.float().cpu()
        images = to_uint8(x0) if x0.ndim == 4 else np.zeros((0,), np.uint8)
        for row, c in enumerate(classes):
            part = slice(row * per_cell, (row + 1) * per_cell)
            yield SweepCell(row, column, c, float(scale), x_T[part], x0[part], images[part])


__all__ = ["SWEEP_SCALES", "SweepCell", "eps_parts", "guidance_sweep", "sweep_noise"]
