"""Images out: grids, PNGs with their provenance in text chunks, GIFs and strips of the reverse process."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from diffview.core.io.files import atomic_write_bytes


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [−1, 1] ([N, C, H, W] tensor) to uint8 [N, C, H, W], clipped and rounded."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images [N, C, H, W] into one uint8 image [rows·(H+p)+p, cols·(W+p)+p, C]."""
    images = np.asarray(images)
    n, c, h, w = images.shape
    ncol = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / ncol)
    grid = np.full((rows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i].transpose(1, 2, 0)
    return grid


def to_pil(array_hwc: np.ndarray, scale: int = 1) -> Image.Image:
    """A uint8 [H, W, C] array (C = 1 or 3) as a PIL image, optionally enlarged by nearest neighbour."""
    arr = array_hwc[..., 0] if array_hwc.shape[-1] == 1 else array_hwc
    img = Image.fromarray(np.ascontiguousarray(arr), mode="L" if arr.ndim == 2 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_png(img: Image.Image, path: str | os.PathLike, metadata: Mapping[str, object] | None = None) -> Path:
    """Save a PNG atomically with ``metadata`` as tEXt chunks (seed, step, schedule, sampler, …)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(str(key), str(value))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_grid(images: np.ndarray, path: str | os.PathLike, *, nrow: int | None = None, scale: int = 1,
              metadata: Mapping[str, object] | None = None, padding: int = 2) -> Path:
    """Save uint8 images [N, C, H, W] as one grid PNG."""
    return save_png(to_pil(make_grid(images, nrow, padding), scale), path, metadata)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, *, duration_ms: int = 60,
             hold_last_ms: int = 1500, scale: int = 1,
             progress: Callable[[int, int], None] | None = None) -> Path:
    """Save grids (uint8 [H, W, C] each) as a looping GIF that rests on the last frame.

    ``progress(done, total)`` is called after each frame is converted (the slow part)."""
    if not frames:
        raise ValueError("no frames to write")
    pil = []
    for i, f in enumerate(frames):
        p = to_pil(f, scale)
        pil.append(p.convert("P", palette=Image.ADAPTIVE) if p.mode == "RGB" else p)
        if progress is not None:
            progress(i + 1, len(frames))
    durations = [duration_ms] * (len(pil) - 1) + [hold_last_ms]
    buf = io.BytesIO()
    pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:], duration=durations, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_strip(frames: Sequence[np.ndarray], path: str | os.PathLike, *, scale: int = 1,
               metadata: Mapping[str, object] | None = None) -> Path:
    """Save chosen steps (uint8 [N, C, H, W] each) side by side: one column per step."""
    columns = [make_grid(f, nrow=1) for f in frames]
    strip = np.concatenate(columns, axis=1)
    return save_png(to_pil(strip, scale), path, metadata)
