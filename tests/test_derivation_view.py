"""The "Loss from the bound" tab, offscreen with a tiny UNet: its numbers are the core's."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from diffview.core.analysis.derivation import gaussian_kl, pixel_terms  # noqa: E402
from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.losses import normal_kl, vlb_terms  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.derivation import DerivationView  # noqa: E402
from diffview.gui.views.job_view import float_images  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_unet("tiny", 1, 8).eval()


@pytest.fixture(scope="module")
def dataset():
    g = torch.Generator().manual_seed(1)
    return ImageDataset(torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8))


@pytest.fixture
def view(qtbot, model, dataset):
    handle = ModelHandle(model, make_schedule("cosine", T), "v", ImageShape(1, 8), FromTraining(1), "a tiny model")
    v = DerivationView()
    v.model_source = lambda ema=True: handle
    v.data_source = lambda: (dataset, None)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    v.pages.setCurrentIndex(1)
    qtbot.waitUntil(lambda: v.terms is not None and not v.busy, timeout=60_000)
    return v


def recompute(qtbot, view, change) -> None:
    before = view.terms
    change()
    qtbot.waitUntil(lambda: view.terms is not before and not view.busy and not view.debounce.isActive(),
                    timeout=60_000)


def test_the_pixel_panel_equals_normal_kl_and_vlb_terms(qtbot, view, model, dataset):
    recompute(qtbot, view, lambda: (view.image.setValue(3), view.timestep.setValue(17), view.seed.setValue(5)))
    terms, schedule = view.terms, view.computed_with["schedule"]
    assert terms.t == 17 and view.computed_with["image"] == 3
    x0 = float_images(dataset.images_uint8(torch.tensor([3])))
    # the image's L_t, summed over its pixels, is vlb_terms' column t with the same ε (one draw from the seed)
    core = vlb_terms(model, x0, schedule, objective="v", generator=torch.Generator().manual_seed(5), timesteps=[17])
    assert terms.bpd.sum() == pytest.approx(float(core[0, 17]), rel=1e-6)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    direct = pixel_terms(model, x0, 17, schedule, noise, objective="v")
    np.testing.assert_array_equal(terms.kl, direct.kl)
    # the pixel shown: its KL is normal_kl on the means and log-variances it draws
    view.select_pixel(4, 5)
    at = (0, 4, 5)
    assert view.pixel.pixel == at
    kl = float(normal_kl(torch.tensor(terms.q_mean[at]), terms.q_logvar, torch.tensor(terms.p_mean[at]),
                         float(terms.p_logvar[at])))
    assert float(terms.kl[at]) == pytest.approx(kl, rel=1e-5)
    assert gaussian_kl(terms.q_mean[at], math.exp(terms.q_logvar), terms.p_mean[at],
                       math.exp(terms.p_logvar[at])) == pytest.approx(kl, rel=1e-5)
    text = view.pixel.steps["kl"].text()
    assert f"KL = {float(terms.kl[at]):.6g} nats" in text and f"{terms.bpd.sum():.6f} bits/dim" in text
    assert "row 4, column 5" in view.pixel.gaussians.text()
    # the two Gaussians drawn are q = N(μ̃, β̃) and p_θ = N(μ_θ, σ²) at that pixel
    xs, ys = view.pixel.q_curve.getData()
    peak = xs[int(np.argmax(ys))]
    assert abs(peak - terms.q_mean[at]) < (xs[1] - xs[0])
    assert ys.max() == pytest.approx(1 / math.sqrt(2 * math.pi * math.exp(terms.q_logvar)), rel=1e-3)
    xs, ys = view.pixel.p_curve.getData()
    assert abs(xs[int(np.argmax(ys))] - terms.p_mean[at]) < (xs[1] - xs[0])


def test_scrubbing_t_moves_both_gaussians_and_the_readouts(qtbot, view):
    recompute(qtbot, view, lambda: view.timestep.setValue(5))
    first, text = view.terms, view.pixel.steps["kl"].text()
    q_first = view.pixel.q_curve.getData()[0].copy()
    recompute(qtbot, view, lambda: view.timestep.setValue(40))
    assert view.terms.t == 40 and first.t == 5
    assert view.pixel.steps["kl"].text() != text
    assert not np.array_equal(view.pixel.q_curve.getData()[0], q_first)
    assert "t = 40" in view.pixel.gaussians.text()
    assert view.timestep.slider.minimum() == 1  # index 0 is the decoder, not a KL


def test_equal_variances_say_eq_8_is_the_whole_kl_and_unequal_ones_say_why_not(qtbot, view):
    recompute(qtbot, view, lambda: view.variance.setCurrentText("fixed_small"))
    assert view.terms.equal_variances and "C = 0" in view.pixel.steps["eq8"].text()
    recompute(qtbot, view, lambda: view.variance.setCurrentText("fixed_large"))
    assert view.terms.variance == "fixed_large" and not view.terms.equal_variances
    assert "σ²<sub>t</sub> ≠ β̃<sub>t</sub>" in view.pixel.steps["eq8"].text()
    at = view.pixel.pixel
    np.testing.assert_allclose(view.terms.eq8[at] + view.terms.variance_part[at], view.terms.kl[at], rtol=1e-4)


def test_unclipped_eq_12_agrees_with_eq_8_at_the_pixel(qtbot, view):
    recompute(qtbot, view, lambda: view.clip.setChecked(False))
    terms = view.terms
    assert not terms.clip_x0 and not terms.clipped.any()
    at = view.pixel.pixel
    assert terms.eq12[at] == pytest.approx(terms.eq8[at], rel=2e-3, abs=1e-6)
    assert "the model predicts v" in view.pixel.steps["eq12"].text()


def test_the_first_pixel_shown_is_where_the_kl_is_largest(view):
    assert view.terms.kl[view.pixel.pixel] == view.terms.kl.max()
    assert "largest KL" in view.status.text()


def test_no_model_says_so(qtbot, dataset):
    v = DerivationView()
    qtbot.addWidget(v)
    v.data_source = lambda: (dataset, None)
    v.model_source = lambda ema=True: None
    assert not v.start() and "No model yet" in v.status.text()


def test_the_gaussians_panel_checks_each_closed_form_against_its_integral(qtbot):
    v = DerivationView()
    qtbot.addWidget(v)
    g = v.gaussians
    for mu_p, sd_p, mu_q, sd_q in ((0.0, 1.0, 1.0, 1.5), (-2.0, 0.3, 2.5, 2.9), (1.0, 0.7, 1.0, 0.7)):
        for box, value in ((g.mu_p, mu_p), (g.sd_p, sd_p), (g.mu_q, mu_q), (g.sd_q, sd_q)):
            box.setValue(value)
        np.testing.assert_allclose(g.closed, g.numeric, atol=1e-4)
        assert g.closed[2] == pytest.approx(gaussian_kl(mu_p, sd_p**2, mu_q, sd_q**2))
    assert g.closed[2] == pytest.approx(0.0, abs=1e-15)  # p = q
    g.mu_q.setValue(1.0)
    g.sd_q.setValue(1.5)
    forward = g.closed[2]
    g.reverse.setChecked(True)
    assert g.closed[2] == pytest.approx(gaussian_kl(1.0, 2.25, 1.0, 0.49)) and g.closed[2] != forward
    assert "KL(q ‖ p) = H(q, p) − H(q)" in g.values.text()
    g.handles["q"].setValue(-0.5)  # dragging μ_q's handle moves μ_q
    assert g.mu_q.value() == -0.5 and g.handles["p"].value() == g.mu_p.value()
    g.reverse.setChecked(False)
    assert g.closed[2] == pytest.approx(gaussian_kl(1.0, 0.49, -0.5, 2.25))
    v.entropy.slider.setValue(500)
    assert "0.6931 nats = 1.0000 bits" in v.entropy.values.text()
    assert v.entropy.marker.getData()[1][0] == pytest.approx(math.log(2))
