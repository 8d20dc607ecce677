"""Sampling with the exact ε-predictor of Gaussian data.

For x_0 ~ N(μ, σ²), x_t | x_0 ~ N(√ᾱ x_0, 1−ᾱ), so E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ) / s², s² = ᾱσ² + 1 − ᾱ.
With that oracle every sampler step is an affine map x' = A x + B + C z, so the exact law of
the discrete chain's output is Gaussian and is derived here independently of diffview's code.

The T-step samplers reproduce μ and σ. Coarse samplers reproduce μ exactly but shrink σ: for
DDIM the per-step gain ⟨(√ᾱ'σ, √(1−ᾱ')), (√ᾱσ, √(1−ᾱ))⟩ / s² ≤ s'/s (Cauchy–Schwarz), and
fixed-variance ancestral steps likewise under-disperse. That is a property of the discretisation,
so coarse samplers are checked against their chain's exact law and for convergence to σ.
"""

import math

import pytest
import torch

from diffview.core import iter_sample, make_schedule, sample, timestep_sequence

MU, SIGMA = 0.3, 0.5
N = 20_000
SE_MEAN, SE_STD = SIGMA / math.sqrt(N), SIGMA / math.sqrt(2 * N)


def oracle(schedule):
    ab = schedule.alphas_cumprod

    def eps(x, t):
        a = ab[t].reshape(-1, 1)
        return torch.sqrt(1 - a) * (x - torch.sqrt(a) * MU) / (a * SIGMA**2 + 1 - a)

    return eps


def chain_law(schedule, sampler, steps, eta=0.0):
    """(mean, std) of the sampler's output when x_T ~ N(0, 1), by propagating the affine steps."""
    ab = schedule.alphas_cumprod.tolist()
    ts = timestep_sequence(schedule.timesteps, steps)
    m, v = 0.0, 1.0
    for i, t in enumerate(ts):
        a, ap = ab[t], (ab[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        s2 = a * SIGMA**2 + 1 - a
        k, e = math.sqrt(a) * SIGMA**2 / s2, math.sqrt(1 - a) / s2  # x̂0 = μ + k d, ε̂ = e d, d = x − √a μ
        if sampler == "ddpm":  # posterior mean with the respaced β = 1 − a/ap, variance β̃ (none at the end)
            beta = 1 - a / ap
            c1, c2 = math.sqrt(ap) * beta / (1 - a), math.sqrt(a / ap) * (1 - ap) / (1 - a)
            A, B = c1 * k + c2, c1 * (MU - k * math.sqrt(a) * MU)
            C2 = beta * (1 - ap) / (1 - a) if i + 1 < len(ts) else 0.0
        else:  # DDIM eq. 12 with σ_η² from eq. 16
            C2 = eta**2 * (1 - ap) / (1 - a) * (1 - a / ap)
            d = math.sqrt(max(1 - ap - C2, 0.0))
            A = math.sqrt(ap) * k + d * e
            B = math.sqrt(ap) * (MU - k * math.sqrt(a) * MU) - d * e * math.sqrt(a) * MU
        m, v = A * m + B, A * A * v + C2
    return m, math.sqrt(v)


CASES = [("ddpm", 1000, 0.0), ("ddpm", 100, 0.0), ("ddim", 50, 0.0), ("ddim", 50, 1.0)]


def draw(s, sampler, steps, eta):
    g = torch.Generator().manual_seed(1234)
    return sample(oracle(s), (N, 1), s, sampler=sampler, steps=steps, eta=eta, clip_x0=False,
                  generator=g, dtype=torch.float64)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("sampler, steps, eta", CASES)
def test_oracle_samples_follow_the_exact_chain_law_and_keep_the_mean(schedule_name, sampler, steps, eta):
    s = make_schedule(schedule_name, 1000)
    x0 = draw(s, sampler, steps, eta)
    law_mean, law_std = chain_law(s, sampler, steps, eta)
    assert abs(x0.mean().item() - law_mean) < 4 * SE_MEAN
    assert abs(x0.std().item() - law_std) < 4 * SE_STD
    assert abs(x0.mean().item() - MU) < 4 * SE_MEAN  # every sampler reproduces μ


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_t_step_samplers_reproduce_mu_and_sigma(schedule_name, sampler):
    s = make_schedule(schedule_name, 1000)
    x0 = draw(s, sampler, 1000, 0.0)
    assert abs(x0.mean().item() - MU) < 4 * SE_MEAN, x0.mean().item()
    assert abs(x0.std().item() - SIGMA) < 4 * SE_STD, x0.std().item()


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("sampler, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_coarse_samplers_converge_to_sigma_as_steps_grow(schedule_name, sampler, eta):
    s = make_schedule(schedule_name, 1000)
    errors = [abs(chain_law(s, sampler, k, eta)[1] - SIGMA) for k in (10, 50, 200, 1000)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 4 * SE_STD


def test_ddim_eta0_is_deterministic_given_x_T():
    s = make_schedule("cosine", 1000)
    xT = torch.randn(64, 1, dtype=torch.float64)
    runs = [sample(oracle(s), xT.shape, s, sampler="ddim", steps=50, x_T=xT, clip_x0=False,
                   generator=torch.Generator().manual_seed(k)) for k in range(2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    noisy = sample(oracle(s), xT.shape, s, sampler="ddim", steps=50, eta=1.0, x_T=xT, clip_x0=False)
    assert not torch.allclose(noisy, runs[0])


def test_ddpm_respaced_visits_requested_timesteps():
    s = make_schedule("linear", 1000)
    ts = [st.t for st in iter_sample(oracle(s), (4, 1), s, sampler="ddpm", steps=100, dtype=torch.float64)]
    assert ts == list(range(999, 0, -10))
