"""The built-in ``shapes``: 32×32 RGB filled circles, squares and triangles of random size, position,
rotation and colour on solid or gradient backgrounds, antialiased by 4×4 supersampling."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_CHUNK = 1000  # images generated per batch (bounds memory)
_SS = 4  # supersampling factor per axis


def _coverage(
    labels: np.ndarray, centre: torch.Tensor, radius: torch.Tensor, rot: torch.Tensor, s: int
) -> torch.Tensor:
    """Fraction of each pixel inside the shape, from _SS×_SS sample points per pixel: [B, s, s].

    Every test is one broadcast comparison of a [B, n, 1] column against a [B, 1, n] row, so
    no [B, n, n] float array is ever built.
    """
    n = s * _SS
    px = (np.arange(n, dtype=np.float32) + 0.5) / _SS  # sample coordinates along an axis
    cx, cy, r, rot = (v.numpy() for v in (centre[:, 0], centre[:, 1], radius, rot))
    inside = np.empty((len(labels), n, n), dtype=bool)
    for label, corners in ((0, 0), (1, 4), (2, 3)):
        m = labels == label
        if not m.any():
            continue
        x = (px[None] - cx[m, None])[:, None, :]  # [b, 1, n]
        y = (px[None] - cy[m, None])[:, :, None]  # [b, n, 1]
        rm = r[m, None, None]
        if corners == 0:  # circle: y² ≤ r² − x²
            inside[m] = y * y <= rm * rm - x * x
            continue
        # A regular polygon is the intersection of the half-planes cos(a)·x + sin(a)·y ≤ apothem.
        apothem = rm * np.float32(math.cos(math.pi / corners))
        shape = None
        for k in range(corners):
            a = (rot[m] + np.float32((2 * k + 1) * math.pi / corners))[:, None, None]
            half = np.sin(a) * y <= apothem - np.cos(a) * x
            shape = half if shape is None else np.logical_and(shape, half, out=shape)
        inside[m] = shape
    cover = torch.from_numpy(inside).view(len(labels), 1, n, n).to(torch.float32)
    return F.avg_pool2d(cover, _SS).squeeze(1)


def make_shapes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` coloured shapes: (uint8 images [n, 3, 32, 32], int64 labels [n]).

    Label 0 circle, 1 square, 2 triangle (``SHAPE_NAMES``), balanced and shuffled. Each
    shape is filled with one colour, has a random size, position and rotation, and sits on a
    solid or linear-gradient background whose colour differs clearly from the shape's.
    """
    rng = np.random.default_rng([seed, 32])
    labels = rng.permutation(np.arange(n) % 3)
    images = torch.empty((n, 3, 32, 32), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        images[start:stop] = _render_shapes(rng, labels[start:stop])
    return images, torch.from_numpy(labels.astype(np.int64))


def _render_shapes(rng: np.random.Generator, labels: np.ndarray) -> torch.Tensor:
    """One chunk of shape images as uint8 [B, 3, 32, 32] (parameters from ``rng``, pixels in torch)."""
    b, s = len(labels), 32
    # Background: a colour, and for about half the images a linear gradient to a second colour.
    c0 = rng.uniform(0, 255, (b, 3))
    c1 = np.where(rng.random((b, 1)) < 0.5, c0, rng.uniform(0, 255, (b, 3)))
    phi = rng.uniform(0, 2 * np.pi, b)
    # Shape colour: random, pushed away from the background's mean colour when too close.
    colour = rng.uniform(0, 255, (b, 3))
    mean_bg = (c0 + c1) / 2
    close = np.linalg.norm(colour - mean_bg, axis=1) < 120
    colour[close] = (mean_bg[close] + 128) % 256
    # Geometry in pixel units: circumradius, centre (shape inside the frame), rotation.
    radius = rng.uniform(5.0, 12.0, b)
    centre = radius[:, None] + rng.random((b, 2)) * (s - 2 * radius[:, None])
    rot = rng.uniform(0, 2 * np.pi, b)

    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    coord = (torch.arange(s, dtype=torch.float32) + 0.5) / s - 0.5
    ramp = (t(np.cos(phi)).view(-1, 1, 1) * coord.view(1, 1, s) + t(np.sin(phi)).view(-1, 1, 1) * coord.view(1, s, 1))
    ramp = (ramp / math.sqrt(0.5) + 0.5).clamp_(0, 1).unsqueeze(1)  # [B, 1, s, s]
    bg = t(c0).view(b, 3, 1, 1) * (1 - ramp) + t(c1).view(b, 3, 1, 1) * ramp
    cover = _coverage(labels, t(centre), t(radius), t(rot), s).unsqueeze(1)
    img = bg * (1 - cover) + t(colour).view(b, 3, 1, 1) * cover
    return img.round_().clamp_(0, 255).to(torch.uint8)
