"""2D point datasets for diffusion on points, and the sliced Wasserstein distance to judge samples.

Every dataset is generated from a seed, centred and scaled to unit standard deviation per axis, as
float32 [N, 2]. Where a dataset has a closed-form density (``gaussians8``) it is given, so a view
can draw its level sets. ``moons``, ``gaussians8`` and ``circles`` have classes (:func:`make_toy_labelled`):
which moon, which mode, which circle each point was drawn from.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TOY_DATASETS = ("swissroll", "moons", "gaussians8", "checkerboard", "circles")
GAUSSIANS8_RADIUS = 2.0
GAUSSIANS8_STD = 0.2
TOY_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "moons": ("upper", "lower"),
    "gaussians8": tuple(str(k) for k in range(8)),  # mode k's centre lies at angle k·π/4
    "circles": ("outer", "inner"),
}  # the 2D sets with classes; swissroll and checkerboard have none


def make_toy(name: str, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """``n`` points of the named 2D dataset, standardised: float32 [n, 2]."""
    return make_toy_labelled(name, n, seed)[0]


def make_toy_labelled(
    name: str, n: int = 10_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[str, ...]]:
    """The points of :func:`make_toy` with their classes: (float32 [n, 2], int64 labels [n] or None, class names).

    The labels are read off the draws that place the points (which moon, mode or circle), so the
    points are the same as :func:`make_toy`'s; a set without classes gives (points, None, ()).
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown 2D dataset {name!r}; choose one of {', '.join(TOY_DATASETS)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, 2])
    labels = None
    if name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * rng.random(n))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(0, 0.5, (n, 2))
    elif name == "moons":
        upper = rng.random(n) < 0.5
        a = math.pi * rng.random(n)
        x = np.where(upper, np.cos(a), 1 - np.cos(a))
        y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
        pts = np.stack([x, y], 1) + rng.normal(0, 0.08, (n, 2))
        labels = np.where(upper, 0, 1)
    elif name == "gaussians8":
        pts, k = _gaussians8_raw(rng, n)
        return _standardise_gaussians8(pts), torch.from_numpy(k.astype(np.int64)), TOY_CLASS_NAMES[name]
    elif name == "checkerboard":
        x = rng.uniform(-2, 2, n)
        y = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2 - 2  # y in [−2, −1) ∪ [0, 1)
        y = y + (np.floor(x) % 2)  # shift every other column so the squares alternate
        pts = np.stack([x, y], 1)
    else:  # circles
        outer = rng.random(n) < 0.5
        a = 2 * math.pi * rng.random(n)
        r = np.where(outer, 1.0, 0.5)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1) + rng.normal(0, 0.04, (n, 2))
        labels = np.where(outer, 0, 1)
    pts = (pts - pts.mean(0)) / pts.std(0)
    points = torch.from_numpy(pts.astype(np.float32))
    if labels is None:
        return points, None, ()
    return points, torch.from_numpy(labels.astype(np.int64)), TOY_CLASS_NAMES[name]


def _gaussians8_raw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(points [n, 2], the mode k [n] each was drawn from, its centre at angle k·π/4)."""
    k = rng.integers(0, 8, n)
    centres = GAUSSIANS8_RADIUS * np.stack([np.cos(k * math.pi / 4), np.sin(k * math.pi / 4)], 1)
    return centres + rng.normal(0, GAUSSIANS8_STD, (n, 2)), k


def _gaussians8_scale() -> float:
    # Per-axis std of the mixture: centres at radius R contribute R²/2 per axis, plus the component variance.
    return math.sqrt(GAUSSIANS8_RADIUS**2 / 2 + GAUSSIANS8_STD**2)


def _standardise_gaussians8(pts: np.ndarray) -> torch.Tensor:
    # Scaled by the mixture's exact std (not the sample's) so that gaussians8_log_density is exact.
    return torch.from_numpy((pts / _gaussians8_scale()).astype(np.float32))


def gaussians8_log_density(x: torch.Tensor, alpha_bar: float = 1.0) -> torch.Tensor:
    # log p_t(x) = log (1/8) Σ_k N(x; √ᾱ μ_k, (ᾱ s² + 1 − ᾱ) I): q(x_t | x_0) convolved with the mixture
    """The exact log-density of the standardised ``gaussians8`` data at points x [..., 2], or with
    ``alpha_bar`` < 1 of the noised data x_t = √ᾱ x_0 + √(1−ᾱ) ε at that ᾱ."""
    scale = _gaussians8_scale()
    k = torch.arange(8, dtype=x.dtype, device=x.device)
    mu = GAUSSIANS8_RADIUS / scale * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    mu = math.sqrt(alpha_bar) * mu
    s2 = alpha_bar * (GAUSSIANS8_STD / scale) ** 2 + (1.0 - alpha_bar)
    d2 = ((x[..., None, :] - mu) ** 2).sum(-1)
    return torch.logsumexp(-d2 / (2 * s2), dim=-1) - math.log(8) - math.log(2 * math.pi * s2)


def gaussians8_score(x: torch.Tensor, alpha_bar: float = 1.0) -> torch.Tensor:
    # ∇_x log p_t(x), by automatic differentiation of the closed-form density above
    """The exact score of the (noised) ``gaussians8`` data at points x [N, 2]."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(gaussians8_log_density(x, alpha_bar).sum(), x)
    return grad


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    # SW₂(a, b)² = E_θ W₂²(θᵀa, θᵀb), each 1-D W₂ from sorted projections (Rabin et al. 2011)
    """The sliced 2-Wasserstein distance between two point sets of equal size [N, D]."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"point sets must have the same shape [N, D], got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa = torch.sort(a.double() @ theta, dim=0).values
    pb = torch.sort(b.double() @ theta, dim=0).values
    return float(((pa - pb) ** 2).mean().sqrt())
