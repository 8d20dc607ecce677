"""The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian.

FD = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})   (Heusel et al. 2017, eq. 6; the distance behind FID)

The trace of the matrix square root is computed from the symmetric product Σ_a^{1/2} Σ_b Σ_a^{1/2}, whose
eigenvalues are those of Σ_a Σ_b, so only symmetric eigendecompositions are needed (exact for PSD
matrices, no complex parts to discard). Covariances are unbiased (N − 1), in float64.
"""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], covariance [D, D]) of features [N, D], N ≥ 2, in float64."""
    f = torch.as_tensor(features).to(torch.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {tuple(f.shape)}")
    return f.mean(dim=0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    # ‖μ_a − μ_b‖² + Tr Σ_a + Tr Σ_b − 2 Tr (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}   (Heusel et al. 2017, eq. 6)
    """The Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b)."""
    mu_a, cov_a, mu_b, cov_b = (torch.as_tensor(a).to(torch.float64) for a in (mu_a, cov_a, mu_b, cov_b))
    root_a = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return max(float(value), 0.0)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance between the Gaussians fitted to two feature sets [N_a, D] and [N_b, D]."""
    fa, fb = torch.as_tensor(features_a), torch.as_tensor(features_b)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D, got {tuple(fa.shape)} and {tuple(fb.shape)}")
    return frechet_distance_from_stats(*gaussian_stats(fa), *gaussian_stats(fb))
