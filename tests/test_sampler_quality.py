"""Quality against NFE (core/analysis/samplers.py): every sampler at equal NFE from one x_T, against the ODE's
reference for images and against the data for 2D points."""

import pytest
import torch

from diffview.core.analysis.samplers import (
    SamplerSpec,
    compare_samplers,
    default_sampler_specs,
    nfe_budgets,
    quality_by_nfe,
    rms_grey_levels,
    sampler_spec,
)
from diffview.core.data.points import PointDataset, distance_to_data
from diffview.core.data.toy2d import make_toy
from diffview.core.sampling import ODE_SAMPLERS, SAMPLERS, SPACINGS, iter_sample, nfe, sample, steps_for_nfe
from diffview.core.schedule import SCHEDULES, make_schedule
from tests.helpers import counting, gaussian_oracle

OBJECTIVES = ("eps", "x0", "v")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(n=4, seed=1):
    return torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- the image metric
def test_rms_is_in_grey_levels_of_the_images_as_shown():
    ref = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.6 - 0.8
    assert rms_grey_levels(ref + 2 / 127.5, ref) == pytest.approx(2.0, rel=1e-12)
    d = torch.zeros_like(ref)
    d[0, 0, 0, 0] = 0.2  # one pixel of 75 is 0.2 (25.5 grey levels) off, within [−1, 1]
    assert rms_grey_levels(ref + d, ref) == pytest.approx(25.5 / 75**0.5, rel=1e-12)
    assert rms_grey_levels(torch.full_like(ref, 3.0), torch.full_like(ref, 1.0)) == 0.0  # both white once clamped
    assert rms_grey_levels(torch.full_like(ref, -1.0), torch.full_like(ref, 1.0)) == 255.0


# ----------------------------------------------------------------------------- the ODE samplers converge
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_ode_sampler_approaches_the_reference_as_its_nfe_grows(name, objective):
    schedule = make_schedule(name, 300)
    model = gaussian_oracle(schedule, 0.1, 0.4, objective)
    x_T = images()
    out = quality_by_nfe(model, x_T, schedule, ODE_SAMPLERS, (2, 5, 10, 20, 50, 100), objective=objective,
                         clip_x0=False)
    want = sample(model, x_T.shape, schedule, sampler="dpmpp-2m", steps=250, objective=objective, clip_x0=False,
                  x_T=x_T)
    assert torch.equal(out.reference, want.float()) and out.reference_nfe == 250 and not out.cancelled
    for s in ODE_SAMPLERS:
        nfes, dist = out.curve(s)
        assert nfes == sorted(nfes) and len(nfes) >= 5
        # Every added evaluation brings it closer, until it is within one grey level: there Heun's error on
        # sigmoid-beta changes sign (0.19 at NFE 19, 0.56 at 49, 0.37 at 99 against the exact ODE map).
        assert all(b < a or max(a, b) < 1.0 for a, b in zip(dist, dist[1:])), (s, dist)
        assert dist[-1] < 0.2 * dist[0]
    for p in out.points:
        assert p.distance == rms_grey_levels(p.samples, out.reference) and p.floor is None and p.seconds > 0


@pytest.mark.parametrize("name", SCHEDULES)
def test_the_reference_is_within_a_quarter_of_a_grey_level_of_the_exact_ode_map(name):
    schedule = make_schedule(name, 300)
    mu, sd = 0.1, 0.4
    x_T = images()
    out = quality_by_nfe(gaussian_oracle(schedule, mu, sd), x_T, schedule, ["ddim"], (5,), objective="eps",
                         clip_x0=False)
    ab = schedule.alphas_cumprod[-1].double()
    sigma_T = ((1 - ab) / ab).sqrt()
    # For N(μ, s²) data the probability-flow ODE keeps (y − μ)/√(s² + σ²) fixed, y = x_t/√ᾱ_t (Song et al. 2021, eq. 13)
    exact = mu + sd / (sd**2 + sigma_T**2).sqrt() * (x_T / ab.sqrt() - mu)
    assert rms_grey_levels(out.reference, exact) < 0.25  # the distances above it are the samplers' own
    assert rms_grey_levels(out.points[0].samples, exact) > 1.0  # DDIM with 5 steps is not


def test_the_reference_is_dpm_solver_with_at_most_t_steps():
    schedule = make_schedule("cosine", 40)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4))
    x_T = images()
    out = quality_by_nfe(model, x_T, schedule, ["dpmpp-2m"], (5, 40, 80), objective="eps")
    assert out.reference_nfe == 40 and calls[:40] == list(range(39, -1, -1))
    assert [p.budget for p in out.points] == [5, 40]  # 80 > T is dropped
    assert torch.equal(out.points[-1].samples, out.reference) and out.points[-1].distance == 0.0


def test_stochastic_samplers_are_refused_against_the_ode_reference():
    schedule = make_schedule("linear", 50)
    model = gaussian_oracle(schedule, 0.1, 0.4)
    for samplers, eta in ((["ddpm"], 0.0), (["ddim"], 0.5)):
        with pytest.raises(ValueError, match="stochastic"):
            quality_by_nfe(model, images(), schedule, samplers, (5,), objective="eps", eta=eta)
    with pytest.raises(ValueError, match="unknown sampler"):
        quality_by_nfe(model, images(), schedule, ["euler"], (5,), objective="eps")
    with pytest.raises(ValueError, match="needs the data"):
        quality_by_nfe(model, images(), schedule, ["ddpm"], (5,), objective="eps", metric="data")


# ----------------------------------------------------------------------------- equal NFE
@pytest.mark.parametrize("name", ("linear", "cosine"))
@pytest.mark.parametrize("spacing", [s for s in SPACINGS if s != "leading"])
def test_every_point_spends_at_most_its_budget_and_as_much_of_it_as_fits(name, spacing):
    schedule = make_schedule(name, 120)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4))
    x_T = images(2)
    budgets = (1, 3, 7, 10, 25, 60, 120)
    out = quality_by_nfe(model, x_T, schedule, ODE_SAMPLERS, budgets, objective="eps", spacing=spacing)
    calls_before = out.reference_nfe
    for s in ODE_SAMPLERS:
        pts = [p for p in out.points if p.sampler == s]
        assert len({p.spec.steps for p in pts}) == len(pts)  # a budget adding no step is measured once
        for p in pts:
            steps = steps_for_nfe(s, p.budget, schedule, spacing)
            assert p.spec.steps == steps and p.spec.spacing == spacing
            assert p.nfe == p.spec.nfe == nfe(s, steps, schedule, spacing) <= p.budget
            if steps < schedule.timesteps:
                assert nfe(s, steps + 1, schedule, spacing) > p.budget
    assert len(calls) == calls_before + sum(p.nfe for p in out.points)  # NFE as counted, not as claimed


def test_a_budget_that_adds_no_step_is_measured_once():
    schedule = make_schedule("cosine", 20)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4))
    out = quality_by_nfe(model, images(1), schedule, ["heun", "ddim"], (2, 3, 4, 5), objective="eps")
    assert [steps_for_nfe("heun", b, schedule) for b in (2, 3, 4, 5)] == [2, 2, 3, 3]
    assert [(p.sampler, p.budget, p.spec.steps) for p in out.points] == [
        ("heun", 2, 2), ("heun", 4, 3), ("ddim", 2, 2), ("ddim", 3, 3), ("ddim", 4, 4), ("ddim", 5, 5)]


def test_budgets_are_sorted_capped_by_t_and_checked():
    assert nfe_budgets((50, 5, 10, 5, 2000), 100) == [5, 10, 50]
    for bad in ((0,), (2.5,), (True,)):
        with pytest.raises(ValueError, match="whole number"):
            nfe_budgets(bad, 100)
    with pytest.raises(ValueError, match="exceeds T"):
        nfe_budgets((200,), 100)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_each_result_counts_the_evaluations_its_spec_claims(spacing):
    schedule = make_schedule("cosine", 100)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4, "v"))
    for spec in [sampler_spec(s, k, schedule, spacing=spacing) for s in SAMPLERS for k in (1, 4, 13)]:
        calls.clear()
        res = next(compare_samplers(model, images(2), schedule, [spec], objective="v"))
        assert res.nfe == spec.nfe == len(calls), spec
    calls.clear()
    churned = sampler_spec("heun", 10, schedule, spacing=spacing, s_churn=40.0)
    assert next(compare_samplers(model, images(2), schedule, [churned], objective="v")).nfe == len(calls)


def test_nfe_counts_churned_heun():  # corrections decided at the churned t̂ (it said 19 here, for 18)
    schedule = make_schedule("cosine", 100)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4, "v"))
    list(iter_sample(model, (2, 1, 4, 4), schedule, sampler="heun", steps=10, spacing="leading", s_churn=40.0))
    assert len(calls) == nfe("heun", 10, schedule, "leading", s_churn=40.0) == 18


def test_compare_samplers_passes_the_spacing_and_the_churn():
    schedule = make_schedule("linear", 100)
    model = gaussian_oracle(schedule, 0.1, 0.4)
    x_T = images(3)
    spec = SamplerSpec("Heun with churn", "heun", 8, spacing="karras", s_churn=30.0)
    res = next(compare_samplers(model, x_T, schedule, [spec], objective="eps", seed=4))
    steps = list(iter_sample(model, x_T.shape, schedule, sampler="heun", steps=8, spacing="karras", s_churn=30.0,
                             x_T=x_T.clone(), generator=torch.Generator().manual_seed(4)))
    assert torch.equal(res.samples, steps[-1].x_prev.float()) and res.nfe == sum(s.nfe for s in steps)


def test_the_default_comparison_meets_at_equal_nfe():
    schedule = make_schedule("cosine", 1000)
    specs = default_sampler_specs(schedule)
    assert specs[0].nfe == 1000 and specs[0].sampler == "ddpm"
    at50 = specs[1:6]
    assert [(s.sampler, s.eta) for s in at50] == [("ddpm", 0), ("ddim", 0), ("ddim", 1), ("heun", 0),
                                                  ("dpmpp-2m", 0)]
    assert all(s.nfe <= 50 and s.label.endswith(f"NFE {s.nfe}") for s in at50)
    assert [s.sampler for s in specs[6:]] == list(ODE_SAMPLERS) and all(s.nfe <= 10 for s in specs[6:])
    assert next(s for s in at50 if s.sampler == "heun").steps < 50  # two evaluations where it corrects


# ----------------------------------------------------------------------------- progress and stop
def test_progress_follows_every_point_and_stop_ends_between_model_calls():
    schedule = make_schedule("linear", 60)
    model, calls = counting(gaussian_oracle(schedule, 0.1, 0.4))
    seen = []
    out = quality_by_nfe(model, images(2), schedule, ["ddim", "heun"], (5, 10), objective="eps",
                         progress=lambda p, i, n: seen.append((p.sampler, p.budget, i, n)))
    assert seen == [("ddim", 5, 1, 4), ("ddim", 10, 2, 4), ("heun", 5, 3, 4), ("heun", 10, 4, 4)]
    assert [(p.sampler, p.budget) for p in out.points] == [s[:2] for s in seen]
    for limit, points in ((7, 0), (60 + 5 + 3, 1)):  # in the reference; in DDIM's second point
        calls.clear()
        out = quality_by_nfe(model, images(2), schedule, ["ddim", "heun"], (5, 10), objective="eps",
                             stop=lambda: len(calls) >= limit)
        assert out.cancelled and len(calls) == limit and len(out.points) == points
        assert (out.reference is None) == (points == 0)


# ----------------------------------------------------------------------------- 2D points
def test_points_are_measured_by_their_distance_to_the_data_with_its_floor():
    schedule = make_schedule("cosine", 80)
    model = gaussian_oracle(schedule, 0.0, 0.6, "v")  # N(0, 0.6²) stands in for moons
    data = PointDataset(make_toy("moons", 800, seed=0), name="moons")
    x_T = torch.randn(400, 2, generator=torch.Generator().manual_seed(2))
    out = quality_by_nfe(model, x_T, schedule, SAMPLERS, (5, 20), objective="v", clip_x0=False, metric="data",
                         data=data, eta=1.0, seed=3)
    assert out.reference is None and out.compared == 400 and out.floor > 0
    assert [p.sampler for p in out.points] == [s for s in SAMPLERS for _ in (5, 20)]
    for p in out.points:
        again = sample(model, x_T.shape, schedule, sampler=p.sampler, steps=p.spec.steps, eta=p.spec.eta,
                       objective="v", clip_x0=False, x_T=x_T.clone(), generator=torch.Generator().manual_seed(3))
        d, floor, n = distance_to_data(again, data)
        assert (p.distance, p.floor) == (d, floor) == (d, out.floor) and p.distance > 0
    assert out.points[2].spec.eta == 1.0  # DDIM at the η asked for, the others at their own
    assert out.fewest_nfe("ddpm", float("inf")) == 5 and out.fewest_nfe("ddpm", -1.0) is None
