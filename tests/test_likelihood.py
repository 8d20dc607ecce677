"""The probability-flow ODE's likelihood against the closed form of Gaussian data.

For x_0 ~ N(μ, Σ) the scaled sample y_σ = x_0 + σ ε is N(μ, Σ + σ² I) and the ideal prediction is
E[ε | y_σ] = σ (Σ + σ² I)⁻¹ (y − μ), i.e. E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ) per dimension for
Σ = s² I. With that oracle dy/dσ = ε̂ is linear, y_σ − μ = A(σ)(y_σmin − μ) with
A(σ) = (Σ + σ²)^½ (Σ + σ_min²)^−½ (the matrices commute), so the ODE's density at σ_min, the prior
N(0, (1 + σ_max²) I) pulled back through the flow, is exactly

    log p(y) = log N(μ + A(y − μ); 0, (1 + σ_max²) I) + log det A,   A = A(σ_max).

When μ = 0 and Σ = I the prior is the data's own marginal at σ_max, and this is log N(y; 0, (1 + σ_min²) I).
The oracle is called at fractional t: its σ is the module's σ(t) (log σ linear in t), so it is the exact
prediction wherever the solver evaluates it.
"""

import math

import numpy as np
import pytest
import torch

from diffview.core.analysis.likelihood import (
    BIN,
    bits_per_dim,
    eps_at_sigma,
    ode_log_likelihood,
    prior_log_prob,
    sigma_of_t,
    t_of_sigma,
)
from diffview.core.diffusion import predict_x0_eps
from diffview.core.ode import sigmas
from diffview.core.schedule import make_schedule, rescale_zero_terminal_snr, schedule_from_betas

SCHEDULES = ("linear", "cosine")
OBJECTIVES = ("eps", "x0", "v")
T = 100
MU, S = 0.3, 0.5
TIGHT = dict(rtol=1e-7, atol=1e-7)


def oracle(schedule, objective, mu, cov):
    """The exact output of ``objective`` for x_0 ~ N(mu, cov) (cov [D, D]; data [B, D] or [B, C, H, W] flat)."""
    sig = sigmas(schedule)
    lam, q = torch.linalg.eigh(cov)

    def model(x, t):
        s = sigma_of_t(t, sig).to(x.dtype)
        ab = (1.0 / (1.0 + s * s)).reshape(-1, *[1] * (x.ndim - 1))
        y = (x / ab.sqrt()).flatten(1)  # y = x_t/√ᾱ
        eps = ((y - mu) @ q) * (s[:, None] / (lam + s[:, None] ** 2))  # σ (Σ + σ² I)⁻¹ (y − μ), in Σ's eigenbasis
        eps = (eps @ q.T).reshape(x.shape)
        x0 = (x - torch.sqrt(1 - ab) * eps) / ab.sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - torch.sqrt(1 - ab) * x0}[objective]

    return model


def closed_form(y, schedule, mu, cov):
    """log p(y) at σ_min of the prior pulled back through the exact linear flow (the module docstring)."""
    sig = sigmas(schedule)
    lo, hi = float(sig[0]), float(sig[-1])
    lam, q = torch.linalg.eigh(cov)
    a = torch.sqrt((lam + hi**2) / (lam + lo**2))
    A = q @ torch.diag(a) @ q.T
    y = y.flatten(1)
    return prior_log_prob(mu + (y - mu) @ A.T, hi) + torch.log(a).sum()


def gaussian(n, dims, mu=MU, s=S, seed=0, shape=None):
    g = torch.Generator().manual_seed(seed)
    x = mu + s * torch.randn(n, dims, generator=g, dtype=torch.float64)
    return x if shape is None else x.reshape(n, *shape)


# ----------------------------------------------------------------------------- σ ↔ t and the objectives
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_eps_at_sigma_is_the_cores_conversion_at_each_timestep(name, objective):
    schedule = make_schedule(name, T)
    sig = sigmas(schedule)
    g = torch.Generator().manual_seed(1)
    x_t, out = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)
    for t in range(T):
        assert t_of_sigma(float(sig[t]), sig) == pytest.approx(t, abs=1e-9)
        want = predict_x0_eps(out, x_t, t, schedule, objective, clip_x0=False)[1]
        torch.testing.assert_close(eps_at_sigma(out, x_t, float(sig[t]), objective), want, rtol=1e-9, atol=1e-9)
    t = torch.linspace(0, T - 1, 37, dtype=torch.float64)
    back = torch.tensor([t_of_sigma(float(s), sig) for s in sigma_of_t(t, sig)], dtype=torch.float64)
    torch.testing.assert_close(back, t, rtol=0, atol=1e-9)  # σ(t) and t(σ) are each other's inverse between steps


def test_bits_per_dim_of_the_uniform_density_is_log2_255():
    # the uniform density on [−1, 1] has log p = −D log 2: 255 bins of width 2/255 are equally likely
    assert bits_per_dim(-5 * math.log(2.0), 5) == pytest.approx(math.log2(255.0), rel=1e-12)
    assert BIN == 2 / 255


# ----------------------------------------------------------------------------- the closed form
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_ode_nll_of_gaussian_images_is_the_closed_form(name, objective):
    schedule = make_schedule(name, T)
    x = gaussian(5, 12, shape=(3, 2, 2))
    cov = S**2 * torch.eye(12, dtype=torch.float64)
    r = ode_log_likelihood(oracle(schedule, objective, MU, cov), x, schedule, objective=objective,
                           dequantise=False, **TIGHT)  # Rademacher: vᵀ(cI)v = c D, exact for a diagonal Jacobian
    want = closed_form(x, schedule, MU, cov).numpy()
    np.testing.assert_allclose(r.log_p[:, 0], want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(r.bpd, bits_per_dim(want, 12), rtol=0, atol=1e-5)
    assert r.probes == 1 and r.probe_stderr is None and r.stderr > 0 and r.nfe > 20


@pytest.mark.parametrize("name", SCHEDULES)
def test_standard_normal_data_has_its_own_marginal_at_sigma_min(name):
    # μ = 0, Σ = I: the prior N(0, (1 + σ_max²) I) is the data's marginal, so log p = log N(y; 0, 1 + σ_min²)
    schedule = make_schedule(name, T)
    lo = float(sigmas(schedule)[0])
    x = gaussian(6, 4, mu=0.0, s=1.0)
    r = ode_log_likelihood(oracle(schedule, "eps", torch.zeros(4, dtype=torch.float64), torch.eye(4,
                           dtype=torch.float64)), x, schedule, objective="eps", dequantise=False, **TIGHT)
    var = 1 + lo**2
    want = (-0.5 * (x.pow(2).sum(1) / var + 4 * math.log(2 * math.pi * var))).numpy()
    np.testing.assert_allclose(r.log_p[:, 0], want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", SCHEDULES)
def test_the_tolerance_sets_the_error(name):
    schedule = make_schedule(name, T)
    x = gaussian(4, 6)
    cov = S**2 * torch.eye(6, dtype=torch.float64)
    want = closed_form(x, schedule, MU, cov).numpy()
    errors, nfes = [], []
    for tol in (1e-3, 1e-5, 1e-7):
        r = ode_log_likelihood(oracle(schedule, "eps", MU, cov), x, schedule, objective="eps", dequantise=False,
                               rtol=tol, atol=tol)
        errors.append(np.abs(r.log_p[:, 0] - want).max())
        nfes.append(r.nfe)
    assert errors[0] > errors[1] > errors[2] and nfes[0] < nfes[1] < nfes[2]
    assert errors[2] < 1e-5 < errors[0]


# ----------------------------------------------------------------------------- the trace estimators
FULL = torch.tensor([[0.30, 0.18], [0.18, 0.20]], dtype=torch.float64)
FULL_MU = torch.tensor([0.2, -0.4], dtype=torch.float64)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_exact_trace_with_correlated_data_is_the_closed_form(name, objective):
    schedule = make_schedule(name, T)
    x = FULL_MU + gaussian(5, 2, mu=0.0, s=1.0) @ torch.linalg.cholesky(FULL).T
    r = ode_log_likelihood(oracle(schedule, objective, FULL_MU, FULL), x, schedule, objective=objective,
                           trace="exact", dequantise=False, **TIGHT)
    np.testing.assert_allclose(r.log_p[:, 0], closed_form(x, schedule, FULL_MU, FULL).numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("trace", ["rademacher", "gaussian"])
def test_hutchinson_with_correlated_data_is_unbiased_within_its_error(trace):
    # off-diagonal Jacobian: even Rademacher probes vary; the mean over probes is the exact trace's value
    schedule = make_schedule("linear", T)
    x = FULL_MU + gaussian(3, 2, mu=0.0, s=1.0, seed=3) @ torch.linalg.cholesky(FULL).T
    probes = 400
    r = ode_log_likelihood(oracle(schedule, "eps", FULL_MU, FULL), x, schedule, objective="eps", trace=trace,
                           probes=probes, dequantise=False, rtol=1e-6, atol=1e-6, seed=5)
    want = closed_form(x, schedule, FULL_MU, FULL).numpy()
    se = r.log_p.std(axis=1, ddof=1) / math.sqrt(probes)
    assert (se > 1e-3).all()  # the estimator does vary ...
    assert (np.abs(r.log_p.mean(axis=1) - want) < 4 * se).all()  # ... around the exact value
    assert r.probe_stderr == pytest.approx(math.sqrt((r.log_p.var(axis=1, ddof=1) / probes).sum()) / 3
                                           / (2 * math.log(2.0)), rel=1e-9)  # in bits/dim, D = 2


@pytest.mark.parametrize("name", SCHEDULES)
def test_gaussian_probes_have_the_predicted_error(name):
    # Σ = s² I: vᵀ(cI)v = c Σ v_k², so ℓ = log A · Σ v_k² with Var = 2 D (log A)² per image
    schedule = make_schedule(name, T)
    sig = sigmas(schedule)
    dims, probes, n = 8, 40, 6
    x = gaussian(n, dims, seed=2)
    cov = S**2 * torch.eye(dims, dtype=torch.float64)
    r = ode_log_likelihood(oracle(schedule, "eps", MU, cov), x, schedule, objective="eps", trace="gaussian",
                           probes=probes, dequantise=False, rtol=1e-6, atol=1e-6, seed=4)
    log_a = 0.5 * math.log((S**2 + float(sig[-1]) ** 2) / (S**2 + float(sig[0]) ** 2))
    se_nats = math.sqrt(2 * dims) * log_a / math.sqrt(probes)  # per image, of the mean over probes
    want = closed_form(x, schedule, MU, cov).numpy()
    z = (r.log_p.mean(axis=1) - want).sum() / (math.sqrt(n) * se_nats)
    assert abs(z) < 4
    predicted = se_nats * math.sqrt(n) / n / (dims * math.log(2.0))  # the s.e. of the mean bits/dim
    assert r.probe_stderr == pytest.approx(predicted, rel=0.25)  # B (P − 1) = 234 dof: ±9% is one s.d.


def test_dequantisation_is_uniform_over_one_bin():
    # exact trace, so only u varies: log p(x + u) ≈ log p(x) + g·u, Var = |g|² Δ²/12 over probes
    schedule = make_schedule("linear", T)
    s = 0.05
    cov = s**2 * torch.eye(2, dtype=torch.float64)
    x = MU + torch.tensor([[0.04, -0.03], [0.0, 0.06]], dtype=torch.float64)
    probes = 400
    r = ode_log_likelihood(oracle(schedule, "eps", MU, cov), x, schedule, objective="eps", trace="exact",
                           probes=probes, rtol=1e-6, atol=1e-6, seed=7)
    assert r.dequantised
    xr = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(closed_form(xr, schedule, MU, cov).sum(), xr)[0]
    want_var = grad.pow(2).sum(1).numpy() * BIN**2 / 12
    ratio = r.log_p.var(axis=1, ddof=1) / want_var
    assert np.all(np.abs(ratio - 1) < 0.25)  # 399 dof: ±7% is one s.d.
    sig = sigmas(schedule)
    lo, hi = float(sig[0]), float(sig[-1])
    curvature = (s**2 + hi**2) / (s**2 + lo**2) / (1 + hi**2)  # −∂² log p/∂y_k² = A²/(1 + σ_max²)
    mean_want = closed_form(x, schedule, MU, cov).numpy() - 0.5 * 2 * curvature * BIN**2 / 12  # E_u of a quadratic
    assert np.all(np.abs(r.log_p.mean(axis=1) - mean_want) < 4 * np.sqrt(want_var / probes))


# ----------------------------------------------------------------------------- the class, progress and input
class Conditional(torch.nn.Module):
    num_classes = 3

    def __init__(self, inner):
        super().__init__()
        self.inner, self.labels = inner, []

    def forward(self, x, t, y=None):
        self.labels.append(None if y is None else y.tolist())
        return self.inner(x, t)


def test_a_class_label_reaches_the_model_and_none_is_the_null_class():
    schedule = make_schedule("cosine", 20)
    cov = torch.eye(2, dtype=torch.float64)
    model = Conditional(oracle(schedule, "eps", torch.zeros(2, dtype=torch.float64), cov))
    x = gaussian(2, 2)
    ode_log_likelihood(model, x, schedule, objective="eps")
    assert set(map(str, model.labels)) == {"None"}
    model.labels.clear()
    ode_log_likelihood(model, x, schedule, objective="eps", label=2)
    assert model.labels and all(v == [2, 2] for v in model.labels)
    with pytest.raises(ValueError, match="outside"):
        ode_log_likelihood(model, x, schedule, objective="eps", label=5)


def test_progress_counts_each_batch_and_stops_when_asked():
    schedule = make_schedule("cosine", T)
    cov = S**2 * torch.eye(3, dtype=torch.float64)
    model = oracle(schedule, "eps", MU, cov)
    x = gaussian(5, 3)
    calls = []
    r = ode_log_likelihood(model, x, schedule, objective="eps", probes=2, batch_size=4, dequantise=False,
                           progress=lambda d, n: calls.append((d, n)), **TIGHT)
    assert {n for _, n in calls} == {3000}  # 10 replicas in batches of 4: 3 solves
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 3000 and 1000 in done and 2000 in done
    np.testing.assert_allclose(r.log_p, np.repeat(closed_form(x, schedule, MU, cov).numpy()[:, None], 2, 1),
                               rtol=0, atol=1e-5)  # the batches are solved alike
    stops = []
    stop = lambda d, n: stops.append(d) or True  # noqa: E731
    assert ode_log_likelihood(model, x, schedule, objective="eps", progress=stop) is None
    assert len(stops) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(objective="score"), "unknown objective"),
    (dict(objective="eps", trace="skilling"), "unknown trace"),
    (dict(objective="eps", probes=0), "probes must be"),
    (dict(objective="eps", rtol=0.0), "rtol and atol"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    schedule = make_schedule("cosine", 20)
    with pytest.raises(ValueError, match=message):
        ode_log_likelihood(lambda x, t: x, torch.zeros(2, 2), schedule, **kwargs)


def test_bad_data_and_schedules_say_what_is_wrong():
    schedule = make_schedule("cosine", 20)
    model = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="float batch"):
        ode_log_likelihood(model, torch.zeros(4), schedule, objective="eps")
    with pytest.raises(ValueError, match="non-finite"):
        ode_log_likelihood(model, torch.full((1, 2), float("nan")), schedule, objective="eps")
    with pytest.raises(ValueError, match="exact trace needs D = 2048"):
        ode_log_likelihood(model, torch.zeros(1, 2048), schedule, objective="eps", trace="exact")
    zero_snr = schedule_from_betas(rescale_zero_terminal_snr(schedule.betas), allow_terminal_one=True)
    with pytest.raises(ValueError, match="zero-terminal-SNR"):
        ode_log_likelihood(model, torch.zeros(1, 2), zero_snr, objective="eps")
    with pytest.raises(ValueError, match="not finite|fell to"):
        ode_log_likelihood(lambda x, t: x * 1e300, torch.ones(1, 2, dtype=torch.float64), schedule, objective="eps")
