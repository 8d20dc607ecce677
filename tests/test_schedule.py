import math

import pytest
import torch

from diffview.core.schedule import SCHEDULES, make_schedule, respace, schedule_from_betas

SHAPE_CASES = [(n, T) for n in ("cosine", "sigmoid") for T in (1, 10, 1000)] + [
    (n, T) for n in ("linear", "quadratic", "sigmoid-beta") for T in (51, 100, 1000, 4000)
]


def test_every_schedule_is_covered():
    assert {n for n, _ in SHAPE_CASES} == set(SCHEDULES)


@pytest.mark.parametrize("name, T", SHAPE_CASES)
def test_shapes_ranges_and_monotone_alpha_bar(name, T):
    s = make_schedule(name, T)
    for field in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                  "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                  "posterior_mean_coef1", "posterior_mean_coef2", "snr"):
        v = getattr(s, field)
        assert v.shape == (T,), field
        assert v.dtype == torch.float64, field
        assert torch.isfinite(v).all(), field
    assert s.timesteps == T and s.name == name
    assert ((s.betas > 0) & (s.betas < 1)).all()
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    assert ((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1)).all()
    assert s.alphas_cumprod_prev[0] == 1.0
    torch.testing.assert_close(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1], rtol=0, atol=0)


def test_linear_end_points_and_scaling():
    s = make_schedule("linear", 1000)
    assert s.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    s = make_schedule("linear", 250)  # both ends scale by 1000/T
    assert s.betas[0].item() == pytest.approx(4e-4, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.08, abs=1e-15)
    s = make_schedule("linear", 100, beta_start=1e-3, beta_end=0.05)
    assert s.betas[0].item() == pytest.approx(1e-3) and s.betas[-1].item() == pytest.approx(0.05)
    d = torch.diff(s.betas)
    torch.testing.assert_close(d, torch.full_like(d, d[0].item()), rtol=0, atol=1e-15)
    assert s.options == {"beta_start": 1e-3, "beta_end": 0.05}


def test_cosine_equals_closed_form():
    T, s_ = 1000, 0.008
    s = make_schedule("cosine", T)
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 1, 10, 250, 500, 900, 990):
        # ᾱ at 0-based index t is ᾱ(t+1) = f(t+1)/f(0) (Nichol & Dhariwal eq. 17)
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-12)
    assert s.betas.max().item() <= 0.999
    assert s.betas[-1].item() == pytest.approx(0.999)  # the last step is clipped


def test_quadratic_by_hand():
    s = make_schedule("quadratic", 3, beta_start=0.01, beta_end=0.09)
    # √β = 0.1, 0.2, 0.3
    torch.testing.assert_close(s.betas, torch.tensor([0.01, 0.04, 0.09], dtype=torch.float64), rtol=1e-14, atol=0)


def test_sigmoid_beta_by_hand():
    s = make_schedule("sigmoid-beta", 3, beta_start=0.001, beta_end=0.02)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = [sig(z) * (0.02 - 0.001) + 0.001 for z in (-6.0, 0.0, 6.0)]
    torch.testing.assert_close(s.betas, torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0)


def test_sigmoid_on_alpha_bar_by_hand():
    T = 4
    s = make_schedule("sigmoid", T)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    ab = lambda u: (sig(3) - sig(6 * u - 3)) / (sig(3) - sig(-3))  # noqa: E731  start −3, end 3, tau 1
    expected = [min(1 - ab((i + 1) / T) / ab(i / T), 0.999) for i in range(T)]
    torch.testing.assert_close(s.betas, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    # the two sigmoids are different schedules
    assert not torch.allclose(make_schedule("sigmoid", 100).betas, make_schedule("sigmoid-beta", 100).betas)


@pytest.mark.parametrize("name", ["linear", "cosine", "quadratic"])
def test_zero_terminal_snr(name):
    base = make_schedule(name, 1000)
    z = make_schedule(name, 1000, zero_terminal_snr=True)
    assert z.alphas_cumprod[-1].item() == 0.0
    assert z.snr[-1].item() == 0.0
    assert z.alphas_cumprod[0].item() == pytest.approx(base.alphas_cumprod[0].item(), rel=1e-12)
    assert (z.alphas_cumprod[1:] < z.alphas_cumprod[:-1]).all()
    assert z.options["zero_terminal_snr"] is True


def test_posterior_variance_formula():
    s = make_schedule("linear", 50)
    for t in range(1, 50):
        expected = s.betas[t] * (1 - s.alphas_cumprod[t - 1]) / (1 - s.alphas_cumprod[t])
        assert s.posterior_variance[t].item() == pytest.approx(expected.item(), rel=1e-13)
    assert s.posterior_variance[0].item() == 0.0
    assert s.posterior_log_variance_clipped[0].item() == pytest.approx(math.log(s.posterior_variance[1].item()))
    torch.testing.assert_close(s.snr, s.alphas_cumprod / (1 - s.alphas_cumprod))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="nope"), "unknown schedule 'nope'.*linear, cosine"),
        (dict(name="linear", timesteps=0), "timesteps must be an integer >= 1, got 0"),
        (dict(name="linear", timesteps=2.5), "timesteps must be an integer"),
        (dict(name="linear", beta_end=1.5), r"beta_end must lie in \(0, 1\), got 1.5"),
        (dict(name="linear", beta_start=0.0), r"beta_start must lie in \(0, 1\), got 0.0"),
        (dict(name="linear", timesteps=20), r"beta_end must lie in \(0, 1\), got 1.0 .*T=20.*pass beta_end"),
        (dict(name="cosine", beta_end=0.1), "unknown option.*beta_end.*allowed: max_beta, s"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(**kwargs)


def test_schedule_from_betas_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"beta\[1\] = 1 is outside \(0, 1\)"):
        schedule_from_betas([0.1, 1.0, 0.2])


def test_respace_keeps_alpha_bar():
    s = make_schedule("linear", 1000)
    keep = list(range(9, 1000, 10))
    r = respace(s, keep)
    assert r.timesteps == 100
    torch.testing.assert_close(r.alphas_cumprod, s.alphas_cumprod[keep], rtol=1e-12, atol=0)
    assert r.model_timesteps().tolist() == keep
    assert r.betas[0].item() == pytest.approx(1 - s.alphas_cumprod[9].item())
