"""Heun (Karras et al. 2022, Alg. 1–2), DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) and DDIM as solvers of the
probability-flow ODE, measured against its exact solution for Gaussian data.

For x_0 ~ N(μ, s²) the scaled sample y = x_t/√ᾱ_t = x_0 + σ_t ε is N(μ, s² + σ²), and the ODE dy/dσ = ε̂ keeps
c = (y − μ)/√(s² + σ²) fixed (= (x_t − √ᾱ μ)/√(ᾱ s² + 1 − ᾱ), which holds at ᾱ = 0 too). Every sampler here ends
with the ideal x̂_0 at its last timestep (0 for linspace and karras spacing, where σ_0 = σ_min), so the exact
map it approximates is x_T ↦ μ + c s²/√(s² + σ_min²): the ODE from σ_max to σ_min, then x̂_0 there.
"""

import math

import numpy as np
import pytest
import torch

from diffview.core.ode import heun_corrects, karras_sigmas, karras_timesteps, sigmas
from diffview.core.sampling import (
    ODE_SAMPLERS,
    SAMPLERS,
    default_steps,
    iter_sample,
    nfe,
    sample,
    steps_for_nfe,
    timestep_sequence,
)
from diffview.core.schedule import SCHEDULES, make_schedule
from tests.helpers import gaussian_oracle

MU, S = 0.3, 0.5
ORDER = {"ddim": 1, "heun": 2, "dpmpp-2m": 2}
OBJECTIVES = ("eps", "x0", "v")


def exact_map(x, schedule, t_start=None):
    """Where the ODE from x at t_start (T−1 if None) to σ_min, then the ideal x̂_0 there, takes x."""
    ab = float(schedule.alphas_cumprod[-1 if t_start is None else t_start])
    c = (x - math.sqrt(ab) * MU) / math.sqrt(ab * S**2 + 1 - ab)
    s_min = float(sigmas(schedule)[0])
    return MU + c * S**2 / math.sqrt(S**2 + s_min**2)


def x_T(n=64, d=4):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def errors(schedule, sampler, spacing, objective, counts, t_start=None):
    x = x_T()
    target = exact_map(x, schedule, t_start)
    model = gaussian_oracle(schedule, MU, S, objective)
    return [float((sample(model, x.shape, schedule, sampler=sampler, steps=n, spacing=spacing, x_T=x.clone(),
                          objective=objective, clip_x0=False, t_start=t_start) - target).abs().max())
            for n in counts]


SCHEDULE_CASES = [(name, {}) for name in SCHEDULES] + [("linear", {"zero_terminal_snr": True})]


def assert_order(errs, order, what):
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(b < a for a, b in zip(errs, errs[1:])), (what, errs)
    assert min(orders) > order - 0.25, (what, errs, orders)
    assert max(orders) < order + 1.0, (what, errs, orders)  # its own order, not a higher one by luck


COUNTS = [32, 64, 128]  # well below T = 1000, where the schedule's own timesteps stop the grid refining


@pytest.mark.parametrize("sampler", ODE_SAMPLERS)
@pytest.mark.parametrize("name, options", SCHEDULE_CASES)
def test_each_ode_sampler_converges_to_the_exact_map_at_its_order(sampler, name, options):
    # Karras spacing halves every step in σ as the steps double, over the whole chain from t = T−1, σ's leap
    # at the top of the cosine and sigmoid schedules (σ_{T−1}/σ_{T−2} ≈ 32) and zero terminal SNR included.
    torch.set_num_threads(1)
    schedule = make_schedule(name, 1000, **options)
    for objective in ["v", "x0"] if options else OBJECTIVES:  # at ᾱ_{T−1} = 0, ε says nothing about x_0
        assert_order(errors(schedule, sampler, "karras", objective, COUNTS), ORDER[sampler], objective)


@pytest.mark.parametrize("sampler", ["ddim", "heun"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_ddim_and_heun_keep_their_order_on_evenly_spaced_timesteps(sampler, name):
    # linspace halves each step in t, so in σ too. (DPM-Solver++ steps in λ = −log σ, where steps near t = 0
    # shrink only like log(1 + T/steps): its observed order there is between 1.5 and 2 at these counts.)
    schedule = make_schedule(name, 1000)
    assert_order(errors(schedule, sampler, "linspace", "eps", COUNTS, t_start=900), ORDER[sampler], name)


@pytest.mark.parametrize("sampler", ODE_SAMPLERS)
def test_a_chain_started_at_t_start_converges_to_the_map_from_there(sampler):
    schedule = make_schedule("cosine", 1000)
    assert_order(errors(schedule, sampler, "karras", "v", COUNTS, t_start=600), ORDER[sampler], sampler)


@pytest.mark.parametrize("spacing", ["linspace", "karras"])
def test_on_the_cosine_schedule_heun_never_blows_up_and_the_second_order_solvers_win_at_equal_nfe(spacing):
    # σ_{T−1} ≈ 2·10⁴ here: a Heun step out of σ_max by the trapezoid alone was 120 S off at 6 evaluations.
    schedule = make_schedule("cosine", 1000)
    assert float(sigmas(schedule)[-1]) > 1e4
    x = x_T()
    target = exact_map(x, schedule)
    for budget in (6, 10, 20, 40):
        err = {}
        for sampler in ODE_SAMPLERS:
            steps = steps_for_nfe(sampler, budget, schedule, spacing)
            assert budget - 1 <= nfe(sampler, steps, schedule, spacing) <= budget  # Heun's may fall one short
            out = sample(gaussian_oracle(schedule, MU, S), x.shape, schedule, sampler=sampler, steps=steps,
                         spacing=spacing, x_T=x.clone(), clip_x0=False)
            err[sampler] = float((out - target).abs().max())
        assert err["heun"] < 2 * err["ddim"], (budget, err)
        if spacing == "linspace" and budget >= 40:  # DPM-Solver++'s steps near t = 0 are long in λ here
            assert err["heun"] < err["ddim"] / 3 and err["dpmpp-2m"] < err["ddim"], (budget, err)
        if spacing == "karras" and budget >= 10:  # Karras spends its first steps where σ leaps, Heun's Euler
            assert err["dpmpp-2m"] < err["ddim"] / 2, (budget, err)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "linspace", "karras"])
def test_nfe_is_what_the_sampler_spends(sampler, name, spacing):
    schedule = make_schedule(name, 100)
    oracle = gaussian_oracle(schedule, MU, S)
    for steps in (1, 2, 3, 7, 20, 100):
        calls = []

        def model(x, t):
            calls.append(int(t[0]))
            return oracle(x, t)

        seen = list(iter_sample(model, (4, 2), schedule, sampler=sampler, steps=steps, spacing=spacing))
        assert len(calls) == nfe(sampler, steps, schedule, spacing) == sum(s.nfe for s in seen)
        assert len(seen) == steps
        if sampler == "heun" and steps > 1:
            assert steps <= len(calls) <= 2 * steps - 1  # a second evaluation where it corrects, never into σ = 0
            calls.clear()
            seen = list(iter_sample(model, (4, 2), schedule, sampler=sampler, steps=steps, spacing=spacing,
                                    s_churn=5.0))  # churn moves each step's start, and so where it corrects
            assert len(calls) == sum(s.nfe for s in seen)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("spacing", ["trailing", "karras"])
def test_steps_for_nfe_is_the_most_steps_within_the_budget(sampler, spacing):
    schedule = make_schedule("cosine", 200)
    for budget in range(1, 60):
        k = steps_for_nfe(sampler, budget, schedule, spacing)
        assert nfe(sampler, k, schedule, spacing) <= budget or k == 1
        assert nfe(sampler, k + 1, schedule, spacing) > budget


def test_default_steps_fit_within_fifty_evaluations():
    for name in SCHEDULES:
        schedule = make_schedule(name, 1000)
        for sampler in ("ddim", "heun", "dpmpp-2m"):
            assert nfe(sampler, default_steps(sampler, 1000), schedule) <= 50
    assert default_steps("ddpm", 1000) == 1000 and default_steps("heun", 10) == 10


@pytest.mark.parametrize("q", [1.5, 2.0, 3.0, 5.0, 20.0])
def test_far_above_the_data_the_trapezoid_errs_q_minus_1_over_2_times_euler(q):
    # For Gaussian data y(σ) = μ + c√(s² + σ²), slope ε̂ = cσ/√(s² + σ²); one step σ0 = qσ1 → σ1 with σ1 ≫ s.
    s, c, s1 = 0.5, 1.0, 200.0
    s0 = q * s1
    slope = lambda sig: c * sig / math.sqrt(s**2 + sig**2)  # noqa: E731
    exact = c * (math.sqrt(s**2 + s1**2) - math.sqrt(s**2 + s0**2))
    euler, heun = (s1 - s0) * slope(s0), (s1 - s0) * 0.5 * (slope(s0) + slope(s1))
    assert abs(heun - exact) / abs(euler - exact) == pytest.approx((q - 1) / 2, rel=1e-3)
    assert heun_corrects(s0, s1) == ((q - 1) / 2 < 1)
    assert heun_corrects(0.5, 0.5 / q)  # below σ_data the slope is ∝ σ, where the trapezoid is nearly exact
    assert heun_corrects(s0, 0.0) is False and heun_corrects(math.inf, s1) is False


# ----------------------------------------------------------------------------- Karras spacing
def test_karras_sigmas_are_eq_5():
    got = karras_sigmas(0.002, 80.0, 5, rho=7.0)
    expected = [(80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(5)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14)
    assert got[0] == pytest.approx(80.0) and got[-1] == pytest.approx(0.002)


@pytest.mark.parametrize("name, options", SCHEDULE_CASES)
def test_karras_timesteps_are_distinct_descending_and_nearest_where_they_can_be(name, options):
    schedule = make_schedule(name, 1000, **options)
    log_s = torch.log(sigmas(schedule))
    finite = log_s[torch.isfinite(log_s)]
    for steps in range(1, 1001):  # every step count
        ts = timestep_sequence(1000, steps, "karras", schedule)
        assert len(ts) == steps and ts[0] == 999 and all(b < a for a, b in zip(ts, ts[1:]))
        if steps > 1:
            assert ts[-1] == 0
        targets = torch.log(karras_sigmas(math.exp(float(finite[0])), math.exp(float(finite[-1])), steps))
        nearest = torch.argmin((log_s[None, :] - targets[:, None]).abs(), dim=1).tolist()  # brute force over all t
        nearest[0] = 999
        if all(v < u for u, v in zip(nearest, nearest[1:])):  # no collisions: each is the nearest in log σ
            assert ts == nearest, steps
        else:  # moved apart where they collide: never further than the number of steps
            assert max(abs(a - b) for a, b in zip(ts, nearest)) <= steps, steps


def test_karras_timesteps_with_few_steps_are_each_the_nearest():
    schedule = make_schedule("linear", 1000)
    log_s = torch.log(sigmas(schedule))
    targets = torch.log(karras_sigmas(float(sigmas(schedule)[0]), float(sigmas(schedule)[-1]), 10))
    assert karras_timesteps(schedule, 10) == [int(torch.argmin((log_s - v).abs())) for v in targets.tolist()]


def test_karras_spacing_starts_sdedit_at_t_start():
    schedule = make_schedule("linear", 100)
    steps = list(iter_sample(gaussian_oracle(schedule, MU, S), (2, 2), schedule, sampler="dpmpp-2m", steps=8,
                             spacing="karras", t_start=40))
    assert steps[0].t == 40 and steps[-1].t == 0 and len(steps) == 8


def test_karras_spacing_needs_the_schedule():
    with pytest.raises(ValueError, match="schedule"):
        timestep_sequence(100, 10, "karras")


# ----------------------------------------------------------------------------- against diffusers, and stochastic
@pytest.mark.parametrize("beta_schedule, prediction_type", [("linear", "epsilon"), ("squaredcos_cap_v2", "epsilon"),
                                                            ("scaled_linear", "v_prediction")])
def test_dpm_solver_pp_2m_is_diffusers_step_for_step(beta_schedule, prediction_type):
    diffusers = pytest.importorskip("diffusers")
    from diffview.core.schedule import schedule_from_betas

    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule,
                                                  algorithm_type="dpmsolver++", solver_order=2,
                                                  prediction_type=prediction_type, final_sigmas_type="zero",
                                                  lower_order_final=True)
    ours = schedule_from_betas(sched.betas.double(), alphas_cumprod=sched.alphas_cumprod.double())
    # From a cosine schedule's σ_999 ≈ 2·10⁴, float32's x̂_0 = (x − √(1−ᾱ) ε̂)/√ᾱ is only good to σ·2⁻²⁴ ≈ 1e-3
    # on either side; from σ_990 ≈ 71 it is good to 4e-6.
    ts = [990 if beta_schedule == "squaredcos_cap_v2" else 999, 850, 700, 500, 300, 120, 40, 0]
    sched.set_timesteps(timesteps=ts)
    assert sched.timesteps.tolist() == ts
    model = gaussian_oracle(ours, MU, S, {"epsilon": "eps", "v_prediction": "v"}[prediction_type])
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    theirs = x.clone()
    for step in iter_sample(model, x.shape, ours, sampler="dpmpp-2m", timesteps=ts, x_T=x.clone(),
                            objective={"epsilon": "eps", "v_prediction": "v"}[prediction_type], clip_x0=False):
        t = torch.full((x.shape[0],), step.t, dtype=torch.long)
        theirs = sched.step(model(theirs, t), step.t, theirs).prev_sample
        torch.testing.assert_close(step.x_prev, theirs, rtol=1e-5, atol=1e-5)  # float32 on both sides
        theirs = step.x_prev.clone()  # each step from the same x_t: the comparison is one step at a time
    assert step.t_prev == -1


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_heun_with_churn_reproduces_the_data_mean_and_spread(name):
    torch.set_num_threads(1)
    schedule = make_schedule(name, 1000)
    n = 20_000
    x = torch.randn(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = sample(gaussian_oracle(schedule, MU, S), x.shape, schedule, sampler="heun", steps=200, x_T=x,
                 s_churn=80.0, generator=torch.Generator().manual_seed(4), clip_x0=False, spacing="linspace")
    se_mean, se_std = S / math.sqrt(n), S / math.sqrt(2 * n)
    assert abs(float(out.mean()) - MU) < 4 * se_mean
    assert abs(float(out.std()) - S) < 4 * se_std
    # and the churn did something: the map from x_T is no longer the deterministic one
    det = sample(gaussian_oracle(schedule, MU, S), x.shape, schedule, sampler="heun", steps=200, x_T=x,
                 clip_x0=False, spacing="linspace")
    assert float((out - det).abs().mean()) > 0.05
