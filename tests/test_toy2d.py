import math

import pytest
import torch

from diffview.core.data.toy2d import TOY_DATASETS, gaussians8_log_density, make_toy, sliced_wasserstein


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_datasets_are_standardised_and_deterministic(name):
    a = make_toy(name, 4000, seed=0)
    assert a.shape == (4000, 2) and a.dtype == torch.float32
    assert torch.allclose(a.mean(0), torch.zeros(2), atol=0.1)
    assert torch.allclose(a.std(0), torch.ones(2), atol=0.1)
    assert torch.equal(a, make_toy(name, 4000, seed=0))
    assert not torch.equal(a, make_toy(name, 4000, seed=1))


def test_bad_toy_arguments():
    with pytest.raises(ValueError, match="unknown 2D dataset 'spiral'.*moons"):
        make_toy("spiral")
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_toy("moons", 0)


def test_gaussians8_density_integrates_to_one_and_peaks_at_the_centres():
    xs = torch.linspace(-3, 3, 601, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1)
    mass = gaussians8_log_density(grid).exp().sum() * (xs[1] - xs[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    pts = make_toy("gaussians8", 20_000).double()
    # samples sit where the density is high: their mean log-density beats that of uniform points
    uniform = torch.rand(20_000, 2, dtype=torch.float64) * 6 - 3
    assert gaussians8_log_density(pts).mean() > gaussians8_log_density(uniform).mean() + 2


def test_sliced_wasserstein():
    a, b = make_toy("moons", 5000, seed=0), make_toy("moons", 5000, seed=1)
    assert sliced_wasserstein(a, a) == 0.0
    floor = sliced_wasserstein(a, b)
    assert 0 < floor < 0.1
    shifted = sliced_wasserstein(a, a + torch.tensor([1.0, 0.0]))
    # shifting by 1 along x moves every projection θᵀx by θ_x: SW = √E[θ_x²] = 1/√2 for unit θ in 2D
    assert shifted == pytest.approx(1 / math.sqrt(2), rel=0.1)
    assert sliced_wasserstein(a, make_toy("circles", 5000)) > 5 * floor
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(a, a[:10])
