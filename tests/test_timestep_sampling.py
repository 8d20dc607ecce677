"""How training draws t: uniform (DDPM) or log-normal in σ (EDM), for every schedule and T."""

import math

import pytest
import torch

from diffview.core import make_schedule, training_loss
from diffview.core.losses import LOGNORMAL_MEAN, LOGNORMAL_STD, nearest_timestep, sample_timesteps
from diffview.core.schedule import SCHEDULES
from diffview.core.train.config import TrainConfig


def _log_sigmas(s):
    ab = s.alphas_cumprod.double()
    return 0.5 * (torch.log1p(-ab) - torch.log(ab))


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [2, 7, 60, 1000])
def test_nearest_timestep_is_the_brute_force_nearest_in_log_sigma(name, T):
    # the β-defined schedules scale their default β_end by 1000/T, so small T passes its own range
    betas = {} if T > 50 or name in ("cosine", "sigmoid") else {"beta_start": 1e-3, "beta_end": 0.5}
    s = make_schedule(name, T, **betas)
    grid = _log_sigmas(s)
    z = torch.cat([torch.linspace(float(grid[0]) - 3, float(grid[-1]) + 3, 2001, dtype=torch.float64), grid])
    got = nearest_timestep(s, z)
    brute = (z[:, None] - grid[None, :]).abs().argmin(dim=1)
    # ties (a point exactly halfway) may go either way; none fall on this grid, so the two must agree
    assert torch.equal(got, brute)
    assert got.dtype == torch.int64 and got.min() >= 0 and got.max() <= T - 1


@pytest.mark.parametrize("name", SCHEDULES)
def test_lognormal_timesteps_follow_edm_noise_distribution(name):
    # P(t) = P(ln σ falls nearest σ_t), ln σ ~ N(P_mean, P_std²): compare the histogram with that probability
    T, n = 1000, 200_000
    s = make_schedule(name, T)
    t = sample_timesteps(s, n, t_sampling="lognormal", generator=torch.Generator().manual_seed(0))
    grid = _log_sigmas(s)
    mids = torch.cat([torch.tensor([-math.inf], dtype=torch.float64), (grid[1:] + grid[:-1]) / 2,
                      torch.tensor([math.inf], dtype=torch.float64)])
    cdf = torch.distributions.Normal(LOGNORMAL_MEAN, LOGNORMAL_STD).cdf(mids)
    expected = (cdf[1:] - cdf[:-1]) * n
    observed = torch.bincount(t, minlength=T).double()
    # pool into 20 bins of equal expected mass and run a χ² test (19 dof: the 99.9% quantile is 43.8)
    edges = torch.searchsorted(torch.cumsum(expected, 0) / n, torch.linspace(0, 1, 21, dtype=torch.float64)[1:-1])
    e_bins = torch.tensor([b.sum() for b in torch.tensor_split(expected, edges)])
    o_bins = torch.tensor([b.sum() for b in torch.tensor_split(observed, edges)])
    keep = e_bins > 0
    chi2 = ((o_bins[keep] - e_bins[keep]) ** 2 / e_bins[keep]).sum().item()
    assert chi2 < 43.8
    # and the draws concentrate where EDM puts them: the median σ is e^{P_mean} to within the grid's spacing
    median_log_sigma = grid[t].median().item()
    assert abs(median_log_sigma - LOGNORMAL_MEAN) < 0.05


def test_uniform_draws_are_unchanged_and_both_are_reproducible():
    s = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(sample_timesteps(s, 64, generator=torch.Generator().manual_seed(3)),
                       torch.randint(0, 100, (64,), generator=g))
    a = sample_timesteps(s, 64, t_sampling="lognormal", generator=torch.Generator().manual_seed(4))
    b = sample_timesteps(s, 64, t_sampling="lognormal", generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, sample_timesteps(s, 64, generator=torch.Generator().manual_seed(4)))


def test_training_loss_uses_the_sampling_it_is_given():
    s = make_schedule("cosine", 1000)
    x0 = torch.zeros(5000, 1, 2, 2)
    _, t = training_loss(lambda x, t: x, x0, s, objective="v", t_sampling="lognormal",
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, sample_timesteps(s, 5000, t_sampling="lognormal", generator=torch.Generator().manual_seed(0)))
    assert t.float().median() < 300  # uniform would put it near 500
    with pytest.raises(ValueError, match="t_sampling"):
        training_loss(lambda x, t: x, x0, s, t_sampling="beta")


def test_config_checks_t_sampling():
    assert TrainConfig(t_sampling="lognormal").validate().t_sampling == "lognormal"
    with pytest.raises(ValueError, match="t_sampling"):
        TrainConfig(t_sampling="logistic").validate()
