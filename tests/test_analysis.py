"""The analysis core: score, annealed Langevin, the VLB by timestep, samplers, memorisation, SDEdit."""

import math

import pytest
import torch

from diffview.core.analysis.bound import vlb_by_timestep
from diffview.core.analysis.memorise import nearest_training_images
from diffview.core.analysis.samplers import compare_samplers, default_sampler_specs
from diffview.core.analysis.score import iter_annealed_langevin, score_from_model
from diffview.core.analysis.sdedit import iter_sdedit, sdedit
from diffview.core.data.toy2d import gaussians8_log_density, gaussians8_score, make_toy
from diffview.core.diffusion import gather, q_sample
from diffview.core.losses import _LN2, prior_bpd, vlb_terms
from diffview.core.sampling import sample
from diffview.core.schedule import make_schedule
from tests.helpers import counting


def gaussian_oracle(schedule, mu: float, sigma: float):
    """The exact ε-predictor for data x_0 ~ N(mu, sigma²) in every coordinate."""
    def model(x_t, t):
        ab = gather(schedule.alphas_cumprod, t, x_t)
        var = ab * sigma**2 + 1 - ab
        # E[ε | x_t] = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱσ² + 1 − ᾱ)
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / var
    return model


def test_score_of_the_oracle_is_the_true_score_of_the_noised_gaussian():
    schedule = make_schedule("linear", 1000)
    model = gaussian_oracle(schedule, 0.3, 0.5)
    x = torch.randn(64, 2, dtype=torch.float64)
    for t in (0, 200, 999):
        ab = float(schedule.alphas_cumprod[t])
        true = -(x - math.sqrt(ab) * 0.3) / (ab * 0.25 + 1 - ab)
        torch.testing.assert_close(score_from_model(model, x, t, schedule, "eps"), true, rtol=1e-9, atol=1e-9)


def test_gaussians8_score_is_the_gradient_of_its_density():
    x = make_toy("gaussians8", 16, seed=3).double()
    for ab in (1.0, 0.5, 0.01):
        h = 1e-6
        num = torch.stack([(gaussians8_log_density(x + h * e, ab) - gaussians8_log_density(x - h * e, ab)) / (2 * h)
                           for e in torch.eye(2, dtype=torch.float64)], 1)
        torch.testing.assert_close(gaussians8_score(x, ab), num, rtol=1e-5, atol=1e-6)
    # at ᾱ → 0 the noised data is N(0, I): log density of the standard normal
    z = torch.randn(8, 2, dtype=torch.float64)
    torch.testing.assert_close(gaussians8_log_density(z, 0.0), -0.5 * (z**2).sum(1) - math.log(2 * math.pi))


def test_annealed_langevin_with_the_exact_score_reproduces_a_gaussian():
    m = torch.tensor([0.5, -0.3], dtype=torch.float64)
    C = torch.tensor([[0.6, 0.25], [0.25, 0.4]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    schedule = make_schedule("cosine", 1000)

    def score(x, t):  # ∇ log N(x; √ᾱ m, ᾱC + (1−ᾱ)I)
        ab = float(schedule.alphas_cumprod[t])
        prec = torch.linalg.inv(ab * C + (1 - ab) * eye)
        return -(x - math.sqrt(ab) * m) @ prec

    n = 20_000
    g = torch.Generator().manual_seed(0)
    levels = list(iter_annealed_langevin(score, torch.randn(n, 2, generator=g, dtype=torch.float64), schedule,
                                         levels=100, steps_per_level=50, step_size=1.0, generator=g))
    assert [lv.index for lv in levels] == list(range(100)) and levels[-1].t == 0
    x = levels[-1].x
    se_mean = (torch.diag(C) / n).sqrt()
    assert ((x.mean(0) - m).abs() < 4 * se_mean).all(), (x.mean(0), m)
    cov = torch.cov(x.T)
    se_cov = ((torch.diag(C)[:, None] * torch.diag(C)[None] + C**2) / n).sqrt()
    assert ((cov - C).abs() < 4 * se_cov).all(), (cov, C)


def test_langevin_arguments_are_checked():
    with pytest.raises(ValueError, match="step size"):
        next(iter_annealed_langevin(lambda x, t: x, torch.zeros(2, 2), make_schedule("linear", 100), step_size=0))


def test_vlb_terms_of_the_gaussian_oracle_match_their_closed_form():
    schedule = make_schedule("linear", 200)
    mu, sigma = 0.0, 0.2
    model = gaussian_oracle(schedule, mu, sigma)
    x0 = (mu + sigma * torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))).double()
    result = vlb_by_timestep(model, x0, schedule, objective="eps", timesteps=20)
    assert result.subsampled and result.timesteps[0] == 0 and len(result.timesteps) == 20
    ac, acp, b = schedule.alphas_cumprod, schedule.alphas_cumprod_prev, schedule.betas
    for t, term in zip(result.timesteps[1:], result.terms[1:]):
        # KL = c₀² Var(x_0 | x_t) / (2 β̃_t), c₀ = √ᾱ_{t−1} β_t / (1 − ᾱ_t)   (equal variances: only the means differ)
        c0 = float(acp[t].sqrt() * b[t] / (1 - ac[t]))
        var_post = sigma**2 * float(1 - ac[t]) / float(ac[t] * sigma**2 + 1 - ac[t])
        closed = c0**2 * var_post / (2 * float(schedule.posterior_variance[t])) / _LN2
        assert abs(term - closed) < 0.03 * closed, (t, term, closed)
    kl = result.terms[1:]
    expected_total = result.prior + result.terms[0] + kl.sum() * 199 / len(kl)
    assert math.isclose(result.total, expected_total, rel_tol=1e-12)
    assert math.isclose(result.prior, float(prior_bpd(x0, schedule).mean()), rel_tol=1e-12)


def test_vlb_progress_cancels_between_model_calls():
    schedule = make_schedule("linear", 50)
    model, calls = counting(gaussian_oracle(schedule, 0, 0.5))
    seen = []
    out = vlb_by_timestep(model, torch.zeros(2, 1, 4, 4), schedule, objective="eps",
                          progress=lambda done, total: seen.append((done, total)) or done >= 10)
    assert out is None and seen == [(i, 50) for i in range(1, 11)] and calls == list(range(10))


@pytest.mark.parametrize("k", [None, 7])
def test_vlb_by_timestep_is_one_vlb_terms_call_on_the_same_noise(k):
    schedule = make_schedule("cosine", 40)
    model = gaussian_oracle(schedule, 0.2, 0.4)
    x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    r = vlb_by_timestep(model, x0, schedule, objective="eps", timesteps=k, seed=4)
    ts = r.timesteps.tolist()
    assert ts == (list(range(40)) if k is None else sorted(set(ts))) and len(ts) == (k or 40)
    whole = vlb_terms(model, x0, schedule, objective="eps", generator=torch.Generator().manual_seed(4), timesteps=ts)
    torch.testing.assert_close(torch.from_numpy(r.terms), whole[:, ts].mean(0), rtol=1e-12, atol=0)
    assert r.variance == "fixed_small" and r.subsampled == (k is not None)


def test_compare_samplers_stops_between_model_calls():
    schedule = make_schedule("linear", 100)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4))
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    out = list(compare_samplers(model, x_T, schedule, default_sampler_specs(schedule), objective="eps",
                                stop=lambda: len(calls) >= 7))
    assert out == [] and len(calls) == 7  # DDPM with 100 steps was cut after its 7th model call


def test_every_sampler_starts_from_the_same_x_T():
    schedule = make_schedule("linear", 100)
    seen = []
    oracle = gaussian_oracle(schedule, 0.1, 0.4)

    def model(x, t):
        if int(t[0]) == 99:  # the first step of every sampler is at T − 1 (trailing spacing)
            seen.append(x.clone())
        return oracle(x, t)

    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    specs = default_sampler_specs(schedule)
    results = list(compare_samplers(model, x_T, schedule, specs, objective="eps"))
    assert [r.spec for r in results] == specs and len(seen) == len(specs)
    assert all(torch.equal(s, x_T) for s in seen)
    ddim = next(r for r in results if r.spec.sampler == "ddim" and r.spec.eta == 0 and r.spec.steps == 50)
    torch.testing.assert_close(ddim.samples, sample(oracle, x_T.shape, schedule, sampler="ddim", steps=50, x_T=x_T))
    assert all(r.seconds > 0 for r in results)


def test_a_copied_training_image_is_found_at_distance_zero_and_flagged():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 1, 8, 8, generator=g) * 2 - 1
    samples = torch.rand(5, 1, 8, 8, generator=g) * 2 - 1
    samples[2] = train[123]
    nn = nearest_training_images(samples, train, chunk=64)
    assert nn.index[2] == 123 and nn.distance[2] == 0 and nn.rms[2] == 0
    assert nn.near_copy.tolist() == [False, False, True, False, False]
    brute = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
    torch.testing.assert_close(torch.from_numpy(nn.distance), brute.min(1).values)
    assert (torch.from_numpy(nn.index) == brute.argmin(1)).all()


def test_sdedit_untouched_at_minus_one_and_at_index_t_it_starts_from_q_sample():
    schedule = make_schedule("linear", 100)
    model = gaussian_oracle(schedule, 0.0, 0.5)
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1
    assert torch.equal(sdedit(model, x0, -1, schedule, objective="eps"), x0)
    steps = list(iter_sdedit(model, x0, 39, schedule, objective="eps", sampler="ddim", steps=10,
                             generator=torch.Generator().manual_seed(5)))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    assert steps[0].t == 39 and steps[-1].t_prev == -1 and len(steps) == 10
    torch.testing.assert_close(steps[0].x_t, q_sample(x0, 39, schedule, noise))
    assert list(iter_sdedit(model, x0, 0, schedule, objective="eps", steps=10))[0].t == 0  # one step, from x_0's index
    for bad in (-2, 100):
        with pytest.raises(ValueError, match=r"-1\.\.99"):
            sdedit(model, x0, bad, schedule, objective="eps")


class CountingDataset:
    """A dataset seen only through ``images_uint8``, recording how many images each read asked for."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []

    def __len__(self):
        return len(self.inner)

    def images_uint8(self, indices):
        self.reads.append(len(indices))
        return self.inner.images_uint8(indices)


def test_nearest_search_of_a_streamed_folder_reads_a_chunk_at_a_time(tmp_path):
    from helpers import write_image_folder

    from diffview.core.data.images import ImageDataset, StreamingImageDataset

    folder = write_image_folder(tmp_path / "imgs", n=45, size=8)
    streamed = StreamingImageDataset(sorted(folder.glob("*.png")), channels=1, image_size=8)
    train = ImageDataset.to_float(streamed.images_uint8(torch.arange(45)))
    g = torch.Generator().manual_seed(3)
    samples = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    samples[4] = train[31]
    samples[1] = (train[7] + 0.01 * torch.randn(1, 8, 8, generator=g)).clamp(-1, 1)
    for chunk in (1, 8, 16, 45, 100):
        data = CountingDataset(streamed)
        nn = nearest_training_images(samples, data, k=5, chunk=chunk)
        assert max(data.reads) <= chunk and sum(data.reads) == 45  # each image read once, a chunk at a time
        brute = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
        assert (torch.from_numpy(nn.index) == brute.argmin(1)).all() and nn.index[4] == 31 and nn.index[1] == 7
        torch.testing.assert_close(torch.from_numpy(nn.distance), brute.min(1).values, rtol=1e-12, atol=0)
        mean5 = brute.topk(5, dim=1, largest=False).values.mean(1)
        assert nn.near_copy.tolist() == (brute.min(1).values < mean5 / 3).tolist()
        assert nn.near_copy[4] and nn.near_copy[1]
    data = CountingDataset(streamed)
    assert nearest_training_images(samples, data, chunk=10, stop=lambda: len(data.reads) >= 2) is None
    assert data.reads == [10, 10]
