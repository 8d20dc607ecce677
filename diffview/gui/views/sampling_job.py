"""The Sampling tab's work off the GUI thread: the reverse process as frames for the view to draw
(:func:`sample_frames`), and the trajectory written as a PNG grid, a GIF or a PNG strip. The view runs each
on a :class:`~diffview.gui.workers.jobs.Job`; nothing here touches Qt."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from diffview.core.io.export import make_grid, save_gif, save_grid, save_strip, to_uint8
from diffview.core.runs.handle import ModelHandle, PendingModel

EMIT_SECONDS = 0.03
MAX_FRAMES = 250
PARTS_IMAGES = 16  # the images of a frame whose float x_t is kept for the ε_c / ε_u panel


def sample_frames(handle: ModelHandle, s: dict, emit, cancelled) -> None:
    """The sampling job: ("model", handle) once a pending model is taken, then ("frames", [(index, t, x_t uint8,
    x0_pred uint8, seconds, x_t float [≤ PARTS_IMAGES] or None)]) at most every EMIT_SECONDS; stops between model
    calls once ``cancelled()``. A class-conditional model samples ``s["label"]`` guided at ``s["guidance_scale"]``
    and keeps each kept frame's x_t as floats for the ε_c / ε_u panel."""
    if isinstance(handle.model, PendingModel):  # e.g. a snapshot under the trainer's lock
        handle = handle.resolved()
        emit(("model", handle))
    total = s["steps"]
    keep = max(1, total // MAX_FRAMES)
    guided = s["label"] is not None
    pending, last, t0 = [], time.monotonic(), time.perf_counter()
    for st in handle.iter_sample(s["n"], sampler=s["sampler"], steps=s["steps"], eta=s["eta"], seed=s["seed"],
                                 spacing=s.get("spacing", "trailing"), s_churn=s.get("s_churn", 0.0),
                                 label=s["label"], guidance_scale=s["guidance_scale"]):
        if cancelled():
            break
        final = st.t_prev < 0
        if st.index % keep == 0 or final:
            x_t = st.x_t[:PARTS_IMAGES].detach().float().cpu().clone() if guided else None
            pending.append((st.index, st.t, to_uint8(st.x_t), to_uint8(st.x0_pred), time.perf_counter() - t0, x_t))
        if final:
            pending.append((st.index + 1, -1, to_uint8(st.x_prev), to_uint8(st.x_prev), time.perf_counter() - t0,
                            None))
        if pending and (time.monotonic() - last >= EMIT_SECONDS or final):
            emit(("frames", pending))
            pending, last = [], time.monotonic()
    if pending:
        emit(("frames", pending))


def write_png(trajectory, meta: dict, path: str, progress=None) -> Path:
    return save_grid(trajectory[-1][2], path, scale=2, metadata=meta)


def write_gif(trajectory, meta: dict, path: str, progress=None) -> Path:
    frames = [np.concatenate([make_grid(xt), make_grid(x0)], axis=1) for _, _, xt, x0, _ in trajectory]
    return save_gif(frames, path, scale=2, progress=progress)


def write_strip(trajectory, meta: dict, path: str, columns: int = 10, progress=None) -> Path:
    picks = np.linspace(0, len(trajectory) - 1, min(columns, len(trajectory))).round().astype(int)
    return save_strip([trajectory[i][2][:8] for i in picks], path, scale=2, metadata=meta)


__all__ = ["EMIT_SECONDS", "MAX_FRAMES", "PARTS_IMAGES", "sample_frames", "write_gif", "write_png", "write_strip"]
