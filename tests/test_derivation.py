"""The derivation's numbers (core/analysis/derivation.py): closed forms against integrals, and the pixel terms
against the core's normal_kl and vlb_terms."""

import math

import numpy as np
import pytest
import torch

from diffview.core.analysis.derivation import (
    bernoulli_entropy,
    gaussian_cross_entropy,
    gaussian_entropy,
    gaussian_kl,
    integrate_gaussians,
    pixel_terms,
)
from diffview.core.losses import normal_kl, vlb_terms
from diffview.core.models.unet import build_unet
from diffview.core.schedule import make_schedule

T = 20


def schedule_of(name: str):
    """A T-step schedule; the linear one with its ends given (its defaults scale by 1000/T, past 1 at T = 20)."""
    return make_schedule(name, T, beta_start=1e-3, beta_end=0.2) if name == "linear" else make_schedule(name, T)


def random_gaussians(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield (float(rng.uniform(-3, 3)), float(rng.uniform(0.1, 3.0)) ** 2,
               float(rng.uniform(-3, 3)), float(rng.uniform(0.1, 3.0)) ** 2)


# ----------------------------------------------------------------------------- entropy, cross-entropy, KL
def test_closed_forms_equal_numerical_integration_for_random_gaussians():
    worst = 0.0
    for mu_p, var_p, mu_q, var_q in random_gaussians(200):
        grid = integrate_gaussians(mu_p, var_p, mu_q, var_q)
        closed = (gaussian_entropy(var_p), gaussian_cross_entropy(mu_p, var_p, mu_q, var_q),
                  gaussian_kl(mu_p, var_p, mu_q, var_q))
        for c, n in zip(closed, (grid.entropy, grid.cross_entropy, grid.kl)):
            assert c == pytest.approx(n, abs=1e-4)
            worst = max(worst, abs(c - n))
        # KL = H(p, q) − H(p), both ways: the closed forms, and the integrals
        assert closed[2] == pytest.approx(closed[1] - closed[0], abs=1e-9)
        assert grid.kl == pytest.approx(grid.cross_entropy - grid.entropy, abs=1e-9)
        assert np.trapezoid(grid.p, grid.x) == pytest.approx(1.0, abs=1e-9)
    assert worst < 1e-4


def test_the_entropy_of_a_gaussian_is_half_log_2_pi_e_sigma_squared():
    assert gaussian_entropy(1.0) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))
    # a Gaussian's cross-entropy with itself is its entropy
    assert gaussian_cross_entropy(0.3, 2.0, 0.3, 2.0) == pytest.approx(gaussian_entropy(2.0))


def test_kl_is_never_negative_and_zero_only_where_p_equals_q():
    for mu_p, var_p, mu_q, var_q in random_gaussians(200, seed=1):
        assert gaussian_kl(mu_p, var_p, mu_q, var_q) > 0
        assert gaussian_kl(mu_p, var_p, mu_p, var_p) == 0.0
        for dm, dv in ((1e-3, 0.0), (0.0, 1e-3), (1e-3, 1e-3)):  # a little off in either parameter: KL > 0
            assert gaussian_kl(mu_p, var_p, mu_p + dm, var_p * (1 + dv)) > 0


def test_kl_is_not_symmetric():
    assert gaussian_kl(0.0, 1.0, 1.0, 2.25) != pytest.approx(gaussian_kl(1.0, 2.25, 0.0, 1.0), abs=1e-3)


def test_bernoulli_entropy_is_log_2_at_a_half_zero_at_the_ends_and_symmetric():
    assert bernoulli_entropy(0.5) == pytest.approx(math.log(2.0), abs=1e-15)
    assert bernoulli_entropy(0.0) == 0.0 and bernoulli_entropy(1.0) == 0.0
    ps = np.linspace(0, 1, 1001)
    h = bernoulli_entropy(ps)
    np.testing.assert_allclose(h, h[::-1], atol=1e-15)
    assert ps[int(np.argmax(h))] == 0.5 and (h >= 0).all()
    assert bernoulli_entropy(0.25) == pytest.approx(-0.25 * math.log(0.25) - 0.75 * math.log(0.75))


# ----------------------------------------------------------------------------- the pixel terms
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_unet("tiny", 1, 8).eval()


@pytest.fixture(scope="module")
def x0():
    g = torch.Generator().manual_seed(5)
    return torch.rand(1, 1, 8, 8, generator=g) * 2 - 1


def terms_over_t(model, x0, schedule, seed, **kwargs):
    """pixel_terms at every t ≥ 1 with the noise vlb_terms would draw from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in range(schedule.timesteps):
        noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        if t > 0:
            out[t] = pixel_terms(model, x0, t, schedule, noise, **kwargs)
    return out


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_pixel_kl_sums_to_vlb_terms_over_pixels_and_t(model, x0, name, objective, variance):
    schedule = schedule_of(name)
    core = vlb_terms(model, x0, schedule, objective=objective, variance=variance,
                     generator=torch.Generator().manual_seed(3))[0]
    terms = terms_over_t(model, x0, schedule, 3, objective=objective, variance=variance)
    per_t = np.array([terms[t].bpd.sum() for t in range(1, T)])
    np.testing.assert_allclose(per_t, core[1:].numpy(), rtol=1e-5, atol=1e-9)
    assert per_t.sum() == pytest.approx(float(core[1:].sum()), rel=1e-6)
    for t, p in terms.items():
        # the KL at each pixel is normal_kl on the same means and log-variances
        kl = normal_kl(torch.from_numpy(p.q_mean), torch.tensor(p.q_logvar, dtype=torch.float64),
                       torch.from_numpy(p.p_mean), torch.from_numpy(p.p_logvar))
        np.testing.assert_allclose(p.kl, kl.numpy(), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(p.bpd, p.kl / (p.dims * math.log(2)), rtol=1e-6)
        # KL = the means' part (eq. 8) + C, C = 0 exactly when σ²_t = β̃_t
        np.testing.assert_allclose(p.eq8 + p.variance_part, p.kl, rtol=1e-4, atol=1e-7)
        assert p.equal_variances == (variance == "fixed_small")
        if variance == "fixed_large" and t > 1:
            assert (p.variance_part > 0).all()


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_eq_12_is_eq_8_in_eps_exactly_without_clipping(model, x0, objective, variance):
    schedule = make_schedule("cosine", T)
    for t, p in terms_over_t(model, x0, schedule, 4, objective=objective, variance=variance, clip_x0=False).items():
        assert not p.clipped.any()
        np.testing.assert_allclose(p.eq12, p.eq8, rtol=2e-3, atol=1e-6)  # float32 model output, rewritten
        beta, alpha, abar = (float(c[t]) for c in (schedule.betas, schedule.alphas, schedule.alphas_cumprod))
        np.testing.assert_allclose(p.weight, beta**2 / (2 * np.exp(p.p_logvar) * alpha * (1 - abar)), rtol=1e-12)
        np.testing.assert_allclose(p.simple, (p.eps - p.eps_pred) ** 2, rtol=1e-12)
        if objective == "eps":  # ε_θ is the network's own output
            out = model(torch.from_numpy(p.x_t).float()[None], torch.full((1,), t)).detach().double().numpy()[0]
            np.testing.assert_allclose(p.eps_pred, out, rtol=1e-4, atol=1e-5)


def test_with_clipping_eq_12_differs_from_the_bound_only_where_x0_was_clipped(model, x0):
    schedule = make_schedule("cosine", T)
    clipped_somewhere = False
    for t, p in terms_over_t(model, x0, schedule, 6, objective="eps", clip_x0=True).items():
        keep = ~p.clipped
        np.testing.assert_allclose(p.eq12[keep], p.eq8[keep], rtol=2e-3, atol=1e-6)
        np.testing.assert_array_equal(p.p_mean[keep], p.p_mean_raw[keep])
        if p.clipped.any():
            clipped_somewhere = True
            assert not np.allclose(p.p_mean[p.clipped], p.p_mean_raw[p.clipped])
            assert (np.abs(p.x0_pred[p.clipped]) == 1.0).all()
    assert clipped_somewhere  # x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t leaves [−1, 1] at large t


def test_pixel_terms_refuse_t_0_and_a_batch(model, x0):
    schedule = make_schedule("cosine", T)
    with pytest.raises(ValueError, match="decoder L_0"):
        pixel_terms(model, x0, 0, schedule, torch.zeros_like(x0))
    with pytest.raises(ValueError, match="one image"):
        pixel_terms(model, x0.repeat(2, 1, 1, 1), 1, schedule, torch.zeros(2, 1, 8, 8))
