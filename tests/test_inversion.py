"""DDIM inversion, reconstruction by steps, slerp and interpolation (core/analysis/inversion.py), against a
closed-form model: for data x_0 ~ N(μ, s²) per coordinate the ideal ε̂ is E[ε | x_t] in closed form."""

import math

import numpy as np
import pytest
import torch
from helpers import ToyConditional

from diffview.core.analysis.inversion import (
    GREY_LEVELS,
    check_step_counts,
    ddim_decode,
    ddim_inverse_step,
    ddim_invert,
    interpolate,
    interpolation_weights,
    reconstruct,
    reconstruction_error_by_steps,
    rms_grey_levels,
    slerp,
)
from diffview.core.diffusion import OBJECTIVES, ddim_step, gather
from diffview.core.guidance import cfg_combine
from diffview.core.sampling import iter_sample, timestep_sequence
from diffview.core.schedule import make_schedule

T = 100
MU, S = 0.3, 0.5
SCHEDULES = ("linear", "cosine")


class GaussianOracle(torch.nn.Module):
    """The ideal denoiser of x_0 ~ N(μ, s²): ε̂ = E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ), given as the
    objective's output (x̂_0 = E[x_0 | x_t], v = √ᾱ ε̂ − √(1−ᾱ) x̂_0)."""

    def __init__(self, schedule, objective="eps", mu=MU, s=S):
        super().__init__()
        self.schedule, self.objective, self.mu, self.s = schedule, objective, mu, s
        self.calls = []

    def forward(self, x, t):
        self.calls.append((x.clone(), t.clone()))
        ab = gather(self.schedule.alphas_cumprod, t, x)
        eps = torch.sqrt(1 - ab) * (x - torch.sqrt(ab) * self.mu) / (ab * self.s**2 + 1 - ab)
        x0 = (x - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)
        return {"eps": eps, "x0": x0, "v": torch.sqrt(ab) * eps - torch.sqrt(1 - ab) * x0}[self.objective]


def gaussian_images(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MU + S * torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module", params=SCHEDULES)
def schedule(request):
    return make_schedule(request.param, T)


# ----------------------------------------------------------------------------- the step and the first step
@pytest.mark.parametrize("name", SCHEDULES)
def test_the_inverse_step_undoes_the_decoding_step_with_the_same_eps(name):
    sch = make_schedule(name, T)
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    for hi, lo in [(99, 80), (50, 49), (10, 0), (0, -1), (99, -1)]:
        x_hi = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
        x_lo = ddim_step(eps, x_hi, hi, lo, sch, objective="eps", clip_x0=False).prev
        torch.testing.assert_close(ddim_inverse_step(eps, x_lo, lo, hi, sch), x_hi, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="goes up"):
        ddim_inverse_step(eps, x_hi, 50, 50, sch)


class ConstantEps(torch.nn.Module):
    """ε̂ that depends on t only: ε̂(x_lo, t) = ε̂(x_hi, t), so the inversion's one approximation is exact."""

    def __init__(self):
        super().__init__()
        self.table = torch.randn(T, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def forward(self, x, t):
        return self.table[t]


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_a_model_blind_to_x_is_inverted_exactly_so_the_model_is_told_the_upper_timestep(schedule, spacing):
    x0 = gaussian_images(4)
    for steps in (1, 3, 10, T):
        x_T, back = reconstruct(ConstantEps(), x0, schedule, steps, "eps", spacing=spacing)
        torch.testing.assert_close(back, x0, rtol=0, atol=1e-9)


def test_the_first_step_treats_x0_as_the_sample_at_the_last_decoding_timestep(schedule):
    x0 = gaussian_images(2)
    m = GaussianOracle(schedule)
    ddim_invert(m, x0, schedule, 10, "eps")
    ts = timestep_sequence(T, 10, "trailing")
    assert [int(t[0]) for _, t in m.calls] == ts[::-1]  # told ts[-1] first, then up to ts[0] = T−1
    assert torch.equal(m.calls[0][0], x0)


# ----------------------------------------------------------------------------- the oracle's reconstruction
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_oracle_reconstructs_with_error_falling_as_steps_grow(schedule, objective):
    x0 = gaussian_images(64)
    sweep = reconstruction_error_by_steps(GaussianOracle(schedule, objective), x0, schedule, [100, 2, 5, 10, 20, 50],
                                          objective)
    np.testing.assert_array_equal(sweep.steps, [2, 5, 10, 20, 50, 100])
    assert (np.diff(sweep.rms) < 0).all(), sweep.rms
    assert sweep.rms[-1] < 0.05 * sweep.rms[0] and sweep.rms[-1] < 3.0  # grey levels, at 100 steps
    for k, x_T, back, rms in zip(sweep.steps, sweep.x_T, sweep.reconstructions, sweep.rms):
        assert rms == pytest.approx(rms_grey_levels(back, x0), rel=1e-12)
        x_T2, back2 = reconstruct(GaussianOracle(schedule, objective), x0, schedule, int(k), objective)
        torch.testing.assert_close(back, back2, rtol=0, atol=0)


def test_every_objective_inverts_to_the_same_x_T(schedule):
    x0 = gaussian_images(8)
    ends = [ddim_invert(GaussianOracle(schedule, o), x0, schedule, 20, o) for o in OBJECTIVES]
    for other in ends[1:]:
        torch.testing.assert_close(other, ends[0], rtol=1e-9, atol=1e-9)


def test_the_inverted_x_T_follows_the_exact_ode_and_is_standard_normal(schedule):
    # for Gaussian data the probability-flow ODE is affine: x_t = √ᾱ μ + √(ᾱ s² + 1 − ᾱ) (x_0 − μ)/s
    x0 = gaussian_images()
    ab = float(schedule.alphas_cumprod[-1])
    exact = math.sqrt(ab) * MU + math.sqrt(ab * S**2 + 1 - ab) * (x0 - MU) / S
    dist = [float((ddim_invert(GaussianOracle(schedule), x0, schedule, k, "eps") - exact).pow(2).mean().sqrt())
            for k in (5, 20, 100)]
    assert dist[0] > dist[1] > dist[2] and dist[2] < 0.03, dist
    x_T = ddim_invert(GaussianOracle(schedule), x0, schedule, T, "eps")
    n = x_T.numel()
    assert abs(float(x_T.mean())) < 4 / math.sqrt(n)  # 4 standard errors of a N(0, 1) sample's mean
    assert abs(float(x_T.var()) - 1) < 4 * math.sqrt(2 / n)  # and of its variance


def test_inversion_never_clips_x0_and_decoding_for_a_reconstruction_neither(schedule):
    x0 = 3.0 + gaussian_images(4)  # far outside [−1, 1]: a clip anywhere would break the exact inverse
    _, back = reconstruct(ConstantEps(), x0, schedule, 10, "eps")
    torch.testing.assert_close(back, x0, rtol=0, atol=1e-9)


def test_rms_is_in_grey_levels():
    a = torch.zeros(2, 1, 4, 4)
    assert rms_grey_levels(a + 2 / 255, a) == pytest.approx(1.0)  # one grey level: 2/255 in [−1, 1]
    assert GREY_LEVELS == 127.5


def test_step_counts_are_checked():
    assert check_step_counts([10, 5, 10], T) == [5, 10]
    for bad in ([], [0], [T + 1], [2.5]):
        with pytest.raises(ValueError, match="step counts"):
            check_step_counts(bad, T)


# ----------------------------------------------------------------------------- progress and stop
def test_progress_counts_model_calls_and_stop_ends_before_the_next():
    sch = make_schedule("cosine", T)
    x0 = gaussian_images(2)
    seen = []
    m = GaussianOracle(sch)
    sweep = reconstruction_error_by_steps(m, x0, sch, [3, 5], "eps", progress=lambda i, n: seen.append((i, n)))
    assert sweep is not None and seen == [(i, 16) for i in range(1, 17)] and len(m.calls) == 16
    for stop_at in (1, 2, 3, 4, 11):
        m = GaussianOracle(sch)
        assert reconstruction_error_by_steps(m, x0, sch, [3, 5], "eps", progress=lambda i, n: i >= stop_at) is None
        assert len(m.calls) == stop_at
    m = GaussianOracle(sch)
    a, b = x0[:1], x0[1:]
    seen = []
    res = interpolate(m, a, b, 4, sch, objective="eps", steps=5, invert=True, progress=lambda i, n: seen.append(i))
    assert res is not None and seen == list(range(1, 11)) and len(m.calls) == 10
    m = GaussianOracle(sch)
    assert interpolate(m, a, b, 4, sch, objective="eps", steps=5, invert=True, progress=lambda i, n: i >= 7) is None
    assert len(m.calls) == 7


# ----------------------------------------------------------------------------- slerp
def test_slerp_ends_are_exact_and_the_angle_moves_evenly():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    a, b = a.double(), b.double()
    b = b * a.norm() / b.norm()  # equal norms, at an angle θ
    theta = math.acos(float((a * b).sum() / (a.norm() * b.norm())))
    for w in np.linspace(0, 1, 9):
        p = slerp(a, b, float(w))
        assert float(p.norm()) == pytest.approx(float(a.norm()), rel=1e-12)
        assert math.acos(min(1.0, float((p * a).sum() / (p.norm() * a.norm())))) == pytest.approx(w * theta, abs=1e-7)


def test_slerp_keeps_the_norm_of_orthogonal_equal_norm_vectors():
    a = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64)
    for w in np.linspace(0, 1, 11):
        p = slerp(a, b, float(w))
        torch.testing.assert_close(p, 3.0 * torch.tensor([math.cos(w * math.pi / 2), math.sin(w * math.pi / 2), 0.0],
                                                         dtype=torch.float64), rtol=0, atol=1e-14)
    mid = slerp(a, b, 0.5)
    assert float(mid.norm()) == pytest.approx(3.0) and float(torch.lerp(a, b, 0.5).norm()) < 2.2  # lerp sinks


def test_slerp_falls_back_to_the_straight_line_for_parallel_vectors():
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for b in (2 * a, -a, a + torch.tensor([1e-3, 0, 0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)):
        for w in (0.0, 0.25, 0.5, 1.0):
            p = slerp(a, b, w)
            assert torch.isfinite(p).all()
            torch.testing.assert_close(p, (1 - w) * a + w * b, rtol=0, atol=1e-15)
    b = torch.tensor([1.0, 2.0, 3.3], dtype=torch.float64)  # cos θ ≈ 0.9994: still the arc, not the line
    assert not torch.allclose(slerp(a, b, 0.5), (a + b) / 2, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        slerp(a, torch.zeros(4), 0.5)


# ----------------------------------------------------------------------------- interpolation
def test_the_weights_include_both_ends():
    np.testing.assert_array_equal(interpolation_weights(5), [0, 0.25, 0.5, 0.75, 1])
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="at least 2 frames"):
            interpolation_weights(bad)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_interpolation_ends_are_the_decodings_of_x_T_a_and_x_T_b(schedule, objective):
    m = GaussianOracle(schedule, objective)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(1, 1, 8, 8, generator=g,
                                                                                 dtype=torch.float64)
    res = interpolate(m, a, b, 12, schedule, objective=objective, steps=10, clip_x0=True)
    assert res.frames.shape == (12, 1, 8, 8) and res.x_T.shape == (12, 1, 8, 8)
    for end, x_T in ((res.frames[:1], a), (res.frames[-1:], b)):
        alone = ddim_decode(m, x_T, schedule, 10, objective, clip_x0=True)
        torch.testing.assert_close(end, alone, rtol=0, atol=1e-12)
    for w, x in zip(res.weights, res.x_T):
        torch.testing.assert_close(x[None], slerp(a, b, float(w)), rtol=0, atol=0)

    x0 = gaussian_images(2, seed=4)
    res = interpolate(m, x0[:1], x0[1:], 8, schedule, objective=objective, steps=20, invert=True)
    for i, image in ((0, x0[:1]), (-1, x0[1:])):
        x_T, back = reconstruct(m, image, schedule, 20, objective)
        torch.testing.assert_close(res.x_T[i][None], x_T, rtol=0, atol=1e-12)
        torch.testing.assert_close(res.frames[i][None], back, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="single samples"):
        interpolate(m, x0, x0, 8, schedule, objective=objective, steps=5)


def as_class(model, k):
    return lambda x, t: model(x, t, torch.full((len(x),), k, dtype=torch.long))


def test_a_conditional_model_inverts_and_interpolates_within_the_class():
    sch = make_schedule("cosine", T)
    model = ToyConditional(num_classes=3)
    x0 = gaussian_images(2).float()
    for k in range(3):
        want = interpolate(as_class(model, k), x0[:1], x0[1:], 5, sch, objective="eps", steps=10, invert=True)
        got = interpolate(model, x0[:1], x0[1:], 5, sch, objective="eps", steps=10, invert=True, label=k)
        torch.testing.assert_close(got.frames, want.frames, rtol=0, atol=0)
        torch.testing.assert_close(got.x_T_a, want.x_T_a, rtol=0, atol=0)
        other = interpolate(model, x0[:1], x0[1:], 5, sch, objective="eps", steps=10, invert=True, label=(k + 1) % 3)
        assert (other.frames - got.frames).abs().max() > 1e-2

    def guided_by_hand(x, t):  # ε_u + S (ε_c − ε_u), S = 2.5
        return cfg_combine(model(x, t, None), as_class(model, 1)(x, t), 2.5)

    want = ddim_invert(guided_by_hand, x0, sch, 10, "eps")
    got = ddim_invert(model, x0, sch, 10, "eps", label=1, guidance_scale=2.5)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    back = ddim_decode(model, got, sch, 10, "eps", label=1, guidance_scale=2.5)
    final = None
    for st in iter_sample(guided_by_hand, got.shape, sch, sampler="ddim", steps=10, clip_x0=False, x_T=got):
        final = st.x_prev
    torch.testing.assert_close(back, final, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not class-conditional"):
        ddim_invert(GaussianOracle(sch), x0.double(), sch, 5, "eps", label=0)
