import math

import pytest
import torch

from diffview.core import (
    ddim_step,
    ddpm_step,
    iter_sample,
    langevin_step,
    make_schedule,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_posterior,
    q_sample,
    timestep_sequence,
    v_target,
)
from diffview.core.diffusion import predict_x0_eps

F64 = torch.float64


def test_q_sample_moments_within_standard_error():
    s = make_schedule("linear", 1000)
    n = 200_000
    x0 = torch.full((n, 1), 0.7, dtype=F64)
    for t in (0, 100, 500, 999):
        xt = q_sample(x0, t, s, torch.randn(n, 1, dtype=F64))
        mean, std = s.sqrt_alphas_cumprod[t].item() * 0.7, s.sqrt_one_minus_alphas_cumprod[t].item()
        se_mean, se_std = std / math.sqrt(n), std / math.sqrt(2 * n)
        assert abs(xt.mean().item() - mean) < 5 * se_mean
        assert abs(xt.std().item() - std) < 5 * se_std


def test_q_sample_accepts_int_and_per_sample_timesteps():
    s = make_schedule("cosine", 100)
    x0, eps = torch.randn(4, 3, 8, 8, dtype=F64), torch.randn(4, 3, 8, 8, dtype=F64)
    t = torch.tensor([0, 5, 50, 99])
    per_sample = q_sample(x0, t, s, eps)
    for i in range(4):
        torch.testing.assert_close(per_sample[i], q_sample(x0[i : i + 1], int(t[i]), s, eps[i : i + 1])[0])
    # float32 input gives float32 output, coefficients cast to it
    assert q_sample(x0.float(), t, s, eps.float()).dtype == torch.float32


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_round_trips_x0_eps_v_are_exact_in_float64(name):
    s = make_schedule(name, 1000)
    x0, eps = torch.randn(16, 2, 4, 4, dtype=F64), torch.randn(16, 2, 4, 4, dtype=F64)
    t = torch.randint(0, 980, (16,))  # cosine/sigmoid have ᾱ≈0 at the very end, where x0 from ε is ill-posed
    xt = q_sample(x0, t, s, eps)
    torch.testing.assert_close(predict_x0_from_eps(xt, t, eps, s), x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(predict_eps_from_x0(xt, t, x0, s), eps, rtol=0, atol=1e-9)
    v = v_target(x0, eps, t, s)
    torch.testing.assert_close(predict_x0_from_v(xt, t, v, s), x0, rtol=0, atol=1e-12)
    _, eps_from_v = predict_x0_eps(v, xt, t, s, "v", clip_x0=False)
    torch.testing.assert_close(eps_from_v, eps, rtol=0, atol=1e-9)


def test_q_posterior_equals_conditioned_joint_gaussian():
    """Derive q(x_{t−1} | x_t, x_0) independently: given x_0, (x_{t−1}, x_t) is jointly Gaussian with
    x_{t−1} = √ᾱ_{t−1} x0 + √(1−ᾱ_{t−1}) e1 and x_t = √α_t x_{t−1} + √β_t e2; condition on x_t."""
    s = make_schedule("linear", 1000)
    x0, xt = torch.randn(8, 5, dtype=F64), torch.randn(8, 5, dtype=F64)
    for t in (1, 2, 10, 500, 999):
        ab_prev, a, b = s.alphas_cumprod[t - 1].item(), s.alphas[t].item(), s.betas[t].item()
        mu1, var1 = math.sqrt(ab_prev) * x0, 1 - ab_prev  # x_{t−1} | x0
        mu2, var2 = math.sqrt(a) * mu1, a * var1 + b  # x_t | x0
        cov12 = math.sqrt(a) * var1
        cond_mean = mu1 + cov12 / var2 * (xt - mu2)
        cond_var = var1 - cov12**2 / var2
        mean, var, log_var = q_posterior(x0, xt, t, s)
        torch.testing.assert_close(mean, cond_mean, rtol=1e-12, atol=1e-12)
        assert var.item() == pytest.approx(cond_var, rel=1e-10)
        assert log_var.item() == pytest.approx(math.log(cond_var), rel=1e-10)


def test_timestep_sequences():
    assert timestep_sequence(1000, 10, "trailing") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert timestep_sequence(1000, 10, "leading") == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert timestep_sequence(1000, 4, "linspace") == [999, 666, 333, 0]
    for spacing in ("trailing", "leading", "linspace"):
        assert timestep_sequence(50, 50, spacing) == list(range(49, -1, -1))
        ts = timestep_sequence(1000, 37, spacing)
        assert len(set(ts)) == 37 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError, match="steps must be an integer in 1..100"):
        timestep_sequence(100, 101)
    with pytest.raises(ValueError, match="unknown spacing 'odd'"):
        timestep_sequence(100, 10, "odd")


def test_ddpm_step_matches_algorithm_2_and_adds_no_noise_at_zero():
    s = make_schedule("linear", 100)
    xt, eps, z = (torch.randn(4, 3, dtype=F64) for _ in range(3))
    t = 40
    res = ddpm_step(eps, xt, t, s, clip_x0=False, noise=z)
    # DDPM Algorithm 2, line 4: x_{t−1} = 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε) + σ_t z with σ²_t = β̃_t
    a, ab, b = s.alphas[t].item(), s.alphas_cumprod[t].item(), s.betas[t].item()
    expected = (xt - b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + math.sqrt(s.posterior_variance[t].item()) * z
    torch.testing.assert_close(res.prev, expected, rtol=1e-12, atol=1e-12)
    large = ddpm_step(eps, xt, t, s, clip_x0=False, noise=z, variance="fixed_large")
    torch.testing.assert_close(large.prev - res.prev, (math.sqrt(b) - math.sqrt(s.posterior_variance[t].item())) * z)
    at0 = ddpm_step(eps, xt, 0, s, clip_x0=False, noise=z)
    at0_other_noise = ddpm_step(eps, xt, 0, s, clip_x0=False, noise=-z)
    torch.testing.assert_close(at0.prev, at0_other_noise.prev, rtol=0, atol=0)
    torch.testing.assert_close(at0.prev, at0.x0_pred, rtol=1e-12, atol=1e-12)  # μ̃_0 = x̂_0 since ᾱ_{−1} = 1
    # per-sample timesteps: the t = 0 sample gets no noise, the others do
    tt = torch.tensor([0, 40, 40, 0])
    mixed = ddpm_step(eps, xt, tt, s, clip_x0=False, noise=z)
    torch.testing.assert_close(mixed.prev[1], res.prev[1])
    torch.testing.assert_close(mixed.prev[0], at0.prev[0])


def test_ddim_step_matches_eq_12():
    s = make_schedule("cosine", 1000)
    xt, eps, z = (torch.randn(4, 3, dtype=F64) for _ in range(3))
    t, tp, eta = 600, 400, 0.7
    ab, abp = s.alphas_cumprod[t].item(), s.alphas_cumprod[tp].item()
    x0 = (xt - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - abp) / (1 - ab)) * math.sqrt(1 - ab / abp)
    expected = math.sqrt(abp) * x0 + math.sqrt(1 - abp - sigma**2) * eps + sigma * z
    res = ddim_step(eps, xt, t, tp, s, eta=eta, clip_x0=False, noise=z)
    torch.testing.assert_close(res.prev, expected, rtol=1e-10, atol=1e-10)
    final = ddim_step(eps, xt, t, -1, s, eta=1.0, clip_x0=False, noise=z)  # ᾱ_prev = 1: x_prev = x̂_0
    torch.testing.assert_close(final.prev, x0, rtol=1e-10, atol=1e-10)


def test_clip_x0_clips_and_keeps_eps_consistent():
    s = make_schedule("linear", 100)
    xt = 5 * torch.randn(6, 4, dtype=F64)
    x0, eps = predict_x0_eps(torch.randn(6, 4, dtype=F64), xt, 90, s, "eps", clip_x0=True)
    assert x0.abs().max() <= 1.0
    torch.testing.assert_close(predict_x0_from_eps(xt, 90, eps, s), x0)


def test_iter_sample_yields_every_step_and_ddim_eta0_is_deterministic():
    s = make_schedule("linear", 100)
    model = lambda x, t: 0.1 * x  # noqa: E731
    steps = list(iter_sample(model, (3, 1, 4, 4), s, sampler="ddpm", generator=torch.Generator().manual_seed(0)))
    assert [st.t for st in steps] == list(range(99, -1, -1))
    assert steps[-1].t_prev == -1 and steps[0].index == 0
    for a, b in zip(steps, steps[1:]):
        assert b.x_t is a.x_prev
    xT = torch.randn(3, 1, 4, 4)
    run = lambda g: list(iter_sample(model, xT.shape, s, sampler="ddim", steps=10, x_T=xT, generator=g))  # noqa: E731
    a, b = run(torch.Generator().manual_seed(1)), run(torch.Generator().manual_seed(2))
    assert len(a) == 10 and [st.t for st in a] == timestep_sequence(100, 10)
    torch.testing.assert_close(a[-1].x_prev, b[-1].x_prev, rtol=0, atol=0)


def test_langevin_step():
    x, score, z = torch.randn(5, dtype=F64), torch.randn(5, dtype=F64), torch.randn(5, dtype=F64)
    torch.testing.assert_close(langevin_step(score, x, 0.04, z), x + 0.02 * score + 0.2 * z)
    torch.testing.assert_close(langevin_step(lambda y: -y, x, 0.04, z), x - 0.02 * x + 0.2 * z)
