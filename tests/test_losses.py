import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from diffview.core import (
    discretized_gaussian_log_likelihood,
    make_schedule,
    nll_bpd,
    normal_kl,
    prior_bpd,
    q_sample,
    training_loss,
    v_target,
    vlb_terms,
)
from diffview.core.losses import min_snr_weight

F64 = torch.float64


def test_normal_kl_matches_torch_distributions():
    m1, m2 = torch.randn(100, dtype=F64), torch.randn(100, dtype=F64)
    lv1, lv2 = torch.randn(100, dtype=F64), torch.randn(100, dtype=F64)
    expected = kl_divergence(Normal(m1, torch.exp(0.5 * lv1)), Normal(m2, torch.exp(0.5 * lv2)))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-12, atol=1e-12)
    assert normal_kl(m1, lv1, m1, lv1).abs().max() == 0


def test_discretized_likelihood_sums_to_one_over_the_256_bins():
    bins = torch.linspace(-1, 1, 256, dtype=F64)
    mean, log_scale = torch.full_like(bins, 0.2), torch.full_like(bins, math.log(0.3))
    logp = discretized_gaussian_log_likelihood(bins, mean, log_scale)
    # improved-diffusion's tanh approximation of Φ is within 3e-4, so the bins sum to 1 within that.
    assert torch.exp(logp).sum().item() == pytest.approx(1.0, abs=3e-4)
    assert (logp <= 0).all()


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_training_loss_targets(objective):
    s = make_schedule("linear", 100)
    x0, noise = torch.randn(6, 1, 4, 4, dtype=F64), torch.randn(6, 1, 4, 4, dtype=F64)
    t = torch.tensor([0, 1, 20, 50, 98, 99])
    seen = {}

    def model(x_t, tt):
        seen["x_t"], seen["t"] = x_t, tt
        return torch.zeros_like(x_t)

    loss, t_out = training_loss(model, x0, s, objective=objective, t=t, noise=noise)
    torch.testing.assert_close(seen["x_t"], q_sample(x0, t, s, noise))
    assert torch.equal(t_out, t) and torch.equal(seen["t"], t)
    target = {"eps": noise, "x0": x0, "v": v_target(x0, noise, t, s)}[objective]
    torch.testing.assert_close(loss.double(), target.pow(2).flatten(1).mean(1), rtol=1e-6, atol=1e-6)
    assert loss.shape == (6,)


def test_training_loss_draws_uniform_timesteps_reproducibly():
    s = make_schedule("cosine", 50)
    x0 = torch.randn(4000, 1, 2, 2)
    model = lambda x, t: x  # noqa: E731
    _, t1 = training_loss(model, x0, s, generator=torch.Generator().manual_seed(5))
    _, t2 = training_loss(model, x0, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(t1, t2)
    counts = torch.bincount(t1, minlength=50).double()
    assert counts.min() > 0 and t1.max() == 49
    # χ² goodness of fit to uniform, 49 dof: the 99.9% quantile is about 85
    chi2 = ((counts - 80) ** 2 / 80).sum().item()
    assert chi2 < 85


def test_min_snr_weighting():
    s = make_schedule("linear", 1000)
    t = torch.tensor([0, 100, 500, 999])
    snr = s.snr[t]
    torch.testing.assert_close(min_snr_weight(t, s, "eps"), torch.clamp(snr, max=5.0) / snr)
    torch.testing.assert_close(min_snr_weight(t, s, "x0"), torch.clamp(snr, max=5.0))
    torch.testing.assert_close(min_snr_weight(t, s, "v"), torch.clamp(snr, max=5.0) / (snr + 1))
    x0 = torch.randn(4, 1, 2, 2, dtype=F64)
    zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731
    plain, _ = training_loss(zero, x0, s, t=t, noise=x0)
    weighted, _ = training_loss(zero, x0, s, t=t, noise=x0, weighting="min_snr")
    torch.testing.assert_close(weighted, plain * min_snr_weight(t, s, "eps").float(), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="unknown loss weighting 'p2'"):
        training_loss(zero, x0, s, weighting="p2")


def test_prior_bpd_is_negligible_for_linear_T1000():
    s = make_schedule("linear", 1000)
    x0 = torch.rand(8, 3, 8, 8, dtype=F64) * 2 - 1
    bpd = prior_bpd(x0, s)
    assert bpd.shape == (8,)
    assert (bpd < 1e-4).all() and (bpd >= 0).all()
    # with few steps the prior term is large: the test can fail
    assert (prior_bpd(x0, make_schedule("linear", 1000, beta_end=1e-3)) > 1e-2).all()


def test_vlb_terms_nonnegative_and_prior_plus_terms_make_nll():
    s = make_schedule("linear", 60)
    x0 = (torch.randint(0, 256, (3, 1, 4, 4)).double() / 127.5) - 1
    model = lambda x, t: 0.5 * x  # noqa: E731  an imperfect ε-predictor
    g = torch.Generator().manual_seed(0)
    terms = vlb_terms(model, x0, s, generator=g)
    assert terms.shape == (3, 60)
    assert (terms >= 0).all()
    assert (terms[:, 1:] > 0).all()  # an imperfect model pays at every step
    nll = nll_bpd(model, x0, s, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(nll, terms.sum(1) + prior_bpd(x0, s))


def test_vlb_kl_term_is_zero_for_the_perfect_x0_predictor():
    s = make_schedule("linear", 30)
    x0 = (torch.randint(0, 256, (2, 1, 3, 3)).double() / 127.5) - 1
    oracle_x0 = lambda x, t: x0  # noqa: E731
    terms = vlb_terms(oracle_x0, x0, s, objective="x0", clip_x0=False)
    torch.testing.assert_close(terms[:, 1:], torch.zeros_like(terms[:, 1:]), rtol=0, atol=1e-12)
    assert (terms[:, 0] > 0).all()  # the decoder term is a discretised likelihood, never free
