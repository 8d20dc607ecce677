"""Every step count of every spacing gives exactly ``steps`` strictly descending timesteps in [0, T),
and the samplers never visit (or call the model at) a timestep outside it."""

from fractions import Fraction

import pytest
import torch

from diffview.core import iter_sample, make_schedule, sampling, timestep_sequence
from diffview.core.sampling import SPACINGS, check_timesteps
from diffview.core.schedule import respace

TS = (1000, 999, 500, 100, 10)


def expected(T: int, steps: int, spacing: str) -> list[int]:
    """The documented formulas in exact rational arithmetic (Python's round of a Fraction ties to even)."""
    if spacing == "trailing":  # round(T − i·T/steps) − 1   (Lin et al. 2024, table 2)
        return [round(T - Fraction(i * T, steps)) - 1 for i in range(steps)]
    if spacing == "leading":  # i·(T // steps), descending   (DDIM's original spacing)
        return [i * (T // steps) for i in reversed(range(steps))]
    if steps == 1:  # linspace: round(linspace(0, T − 1, steps)), descending; one step at T − 1
        return [T - 1]
    return [round(Fraction(i * (T - 1), steps - 1)) for i in reversed(range(steps))]


@pytest.mark.parametrize("spacing", [s for s in SPACINGS if s != "karras"])  # karras: tests/test_ode_samplers.py
@pytest.mark.parametrize("T", TS)
def test_every_step_count_gives_exactly_steps_descending_timesteps_in_range(T, spacing):
    for steps in range(1, T + 1):
        ts = timestep_sequence(T, steps, spacing)
        assert len(ts) == steps, (T, steps, spacing, len(ts))
        assert all(type(t) is int and 0 <= t < T for t in ts), (T, steps, spacing, min(ts))
        assert all(b < a for a, b in zip(ts, ts[1:])), (T, steps, spacing)
        assert ts == expected(T, steps, spacing), (T, steps, spacing)
        if spacing == "trailing":
            assert ts[0] == T - 1 and ts[-1] == round(Fraction(T, steps)) - 1
        elif spacing == "leading":
            assert ts[0] == (steps - 1) * (T // steps) and ts[-1] == 0
        else:
            assert ts[0] == T - 1 and ts[-1] == (0 if steps > 1 else T - 1)
        check_timesteps(ts, T)
    assert timestep_sequence(T, T, spacing) == list(range(T - 1, -1, -1))


def test_the_step_counts_the_float_arange_got_wrong():
    # np.arange(1000, 0, -1000/61) has 62 entries, the last rounding to −1
    ts = timestep_sequence(1000, 61, "trailing")
    assert len(ts) == 61 and ts[0] == 999 and ts[-1] == 15
    for steps in (61, 103, 121, 122, 201, 206):
        assert len(timestep_sequence(1000, steps, "trailing")) == steps
    # exact ties round half to even: 1000 − 3·1000/48 = 937.5 → 938, minus 1
    assert timestep_sequence(1000, 48, "trailing")[3] == 937


@pytest.mark.parametrize("T", (1000, 100))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_respace_accepts_every_sequence(T, spacing):
    s = make_schedule("linear", T)
    for steps in range(1, T + 1, 1 if T <= 100 else 7):
        ts = timestep_sequence(T, steps, spacing, s)
        r = respace(s, ts)
        assert r.timesteps == steps and r.original_timesteps.tolist() == ts[::-1]
        assert torch.equal(r.alphas_cumprod, s.alphas_cumprod[ts[::-1]])  # the same ᾱ at each kept step, exactly


@pytest.mark.parametrize("sampler", ("ddim", "ddpm"))
def test_sampling_with_61_steps_at_T_1000_calls_the_model_only_inside_0_T(sampler):
    s = make_schedule("linear", 1000)
    seen = []

    def model(x, t):
        seen.append(t.tolist())
        return 0.1 * x

    steps = list(iter_sample(model, (2, 1, 2, 2), s, sampler=sampler, steps=61,
                             generator=torch.Generator().manual_seed(0)))
    assert len(steps) == 61 and len(seen) == 61
    assert all(0 <= t < 1000 for ts in seen for t in ts)
    assert [st.t for st in steps] == timestep_sequence(1000, 61) and steps[-1].t_prev == -1
    assert torch.isfinite(steps[-1].x_prev).all()


@pytest.mark.parametrize("bad", ([999, 500, -1], [999, 1000, 0], [500, 500, 0], [10, 20], []))
@pytest.mark.parametrize("sampler", sampling.SAMPLERS)
def test_iter_sample_refuses_timesteps_outside_range_or_not_descending(monkeypatch, sampler, bad):
    monkeypatch.setattr(sampling, "timestep_sequence", lambda T, steps, spacing="trailing", schedule=None: list(bad))
    s = make_schedule("linear", 1000)
    calls = []
    with pytest.raises(ValueError, match="outside 0..999|strictly descending|no timesteps"):
        list(iter_sample(lambda x, t: calls.append(t) or x, (1, 1), s, sampler=sampler, steps=3))
    assert calls == []  # refused before the model ever runs


@pytest.mark.parametrize("sampler", ("ddim", "ddpm"))
def test_t_start_path_every_start_and_step_count(sampler):
    """SDEdit: from x_{t_start} the chain's first model call is at t_start, for every t_start and step count."""
    T = 40
    s = make_schedule("linear", T)
    x = torch.zeros(1, 1)
    for spacing in ("trailing", "linspace"):
        for t_start in range(T):
            for steps in range(1, t_start + 3):  # more steps than t_start + 1 are capped at t_start + 1
                seen = []
                run = list(iter_sample(lambda x, t: seen.append(int(t[0])) or x, (1, 1), s, sampler=sampler,
                                       steps=steps, spacing=spacing, x_T=x, t_start=t_start))
                assert len(run) == min(steps, t_start + 1) == len(seen)
                assert seen == [st.t for st in run] and seen[0] == t_start
                assert all(b < a for a, b in zip(seen, seen[1:])) and 0 <= seen[-1]
    # leading spacing does not start at t_start in general: refused rather than told the wrong t
    with pytest.raises(ValueError, match="starts at t = 36, not at t_start = 39"):
        list(iter_sample(lambda x, t: x, (1, 1), s, sampler=sampler, steps=10, spacing="leading", x_T=x, t_start=39))
    assert len(list(iter_sample(lambda x, t: x, (1, 1), s, sampler=sampler, steps=10, spacing="leading",
                                x_T=x, t_start=9))) == 10  # 9, 8, …, 0: starts at t_start, accepted


def test_bad_steps_get_a_clear_message():
    s = make_schedule("linear", 100)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be an integer"):
            list(iter_sample(lambda x, t: x, (1, 1), s, sampler="ddim", steps=steps))
    with pytest.raises(ValueError, match=r"steps must be an integer in 1..100"):
        timestep_sequence(100, 101)
