"""The Fréchet distance against closed forms, and on samples drawn from known Gaussians."""

import math

import pytest
import torch

from diffview.core.analysis.frechet import frechet_distance, frechet_distance_from_stats, gaussian_stats


def _random_cov(d, g):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_diagonal_covariances_have_the_closed_form():
    # for commuting (diagonal) covariances FD = ‖μ_a − μ_b‖² + Σ_i (√a_i − √b_i)²
    g = torch.Generator().manual_seed(0)
    for d in (1, 3, 16):
        a = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
        b = torch.rand(d, generator=g, dtype=torch.float64) * 4
        mu_a, mu_b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
        expected = float((mu_a - mu_b).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
        got = frechet_distance_from_stats(mu_a, torch.diag(a), mu_b, torch.diag(b))
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_general_covariances_match_the_matrix_square_root():
    # Tr (Σ_a Σ_b)^{1/2} from the eigenvalues of Σ_a Σ_b (real, non-negative for PSD Σ_a, Σ_b)
    g = torch.Generator().manual_seed(1)
    for d in (2, 5, 12):
        ca, cb = _random_cov(d, g), _random_cov(d, g)
        mu_a, mu_b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
        eig = torch.linalg.eigvals(ca @ cb).real.clamp(min=0).sqrt().sum()
        expected = float((mu_a - mu_b).pow(2).sum() + ca.trace() + cb.trace() - 2 * eig)
        assert frechet_distance_from_stats(mu_a, ca, mu_b, cb) == pytest.approx(expected, rel=1e-9)
        assert frechet_distance_from_stats(mu_a, ca, mu_a, ca) == pytest.approx(0.0, abs=1e-9)
        # symmetric in its arguments
        assert frechet_distance_from_stats(mu_b, cb, mu_a, ca) == pytest.approx(expected, rel=1e-9)


def test_scalar_case_is_the_wasserstein_2_distance():
    # in 1D, FD(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)²
    got = frechet_distance_from_stats(torch.tensor([1.0]), torch.tensor([[4.0]]),
                                      torch.tensor([-2.0]), torch.tensor([[9.0]]))
    assert got == pytest.approx(9.0 + 1.0)


def test_sample_estimates_approach_the_population_value():
    g = torch.Generator().manual_seed(2)
    d, n = 4, 200_000
    shift = torch.tensor([1.0, 0.0, -0.5, 2.0], dtype=torch.float64)
    xa = torch.randn(n, d, generator=g, dtype=torch.float64)
    xb = torch.randn(n, d, generator=g, dtype=torch.float64) * 2 + shift  # N(shift, 4I)
    expected = float(shift.pow(2).sum()) + d * (2 - 1) ** 2
    assert frechet_distance(xa, xb) == pytest.approx(expected, rel=0.01)
    mu, cov = gaussian_stats(xb)
    assert torch.allclose(mu, shift, atol=0.02)
    assert torch.allclose(cov, 4 * torch.eye(d, dtype=torch.float64), atol=0.05)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(torch.zeros(1, 3))
    assert math.isfinite(frechet_distance(torch.randn(10, 3), torch.randn(10, 3)))
