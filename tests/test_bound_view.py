"""The Bound tab: the variational bound by timestep and the probability-flow ODE's likelihood beside it,
offscreen with a tiny UNet."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from helpers import FOLDER, Breakable, finish, noise_images, tiny_unet, wire  # noqa: E402

from diffview.core.analysis.bound import vlb_by_timestep  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.bound import BoundView, evaluation_images  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def model():
    return tiny_unet()


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def dataset():
    return noise_images()


# ----------------------------------------------------------------------------- the bound
def test_bound_view_numbers_equal_the_core(qtbot, model, schedule, dataset):
    view = wire(BoundView(), model, schedule, dataset)
    qtbot.addWidget(view)
    view.images.setValue(16)
    view.k.setValue(10)
    assert view.start()
    finish(qtbot, view)
    r = view.result
    assert r is not None and r.subsampled and len(r.timesteps) == 10
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(view.seed))[:16]
    torch.testing.assert_close(view.x0, dataset.get_batch(idx))
    core = vlb_by_timestep(model, view.x0, schedule, objective="eps", timesteps=10, seed=view.seed)
    np.testing.assert_array_equal(r.timesteps, core.timesteps)
    np.testing.assert_allclose(r.terms, core.terms, rtol=1e-9)
    assert r.prior == pytest.approx(core.prior) and r.total == pytest.approx(core.total, rel=1e-9)
    np.testing.assert_allclose(view.curve.yData, core.terms[1:], rtol=1e-9)  # what the plot shows
    text = view.values.text()
    assert f"{core.total:.4f} bits/dim" in text and "10 of 50 timesteps, sum rescaled" in text
    assert "TRAINING images" in view.status.text()  # a folder has no held-out split, and the view says so
    assert view.progress.value() == view.progress.maximum() == 10


def test_bound_view_all_timesteps_and_cancel(qtbot, model, schedule, dataset):
    view = wire(BoundView(), model, schedule, dataset)
    qtbot.addWidget(view)
    view.images.setValue(4)
    view.all_t.setChecked(True)
    view.start()
    finish(qtbot, view)
    assert not view.result.subsampled and len(view.result.terms) == T and "all 50 timesteps" in view.values.text()
    done = view.result
    view.start()
    view.start_or_cancel()  # Cancel
    finish(qtbot, view)
    assert view.result is done and view.status.text() == "Cancelled."


def test_bound_view_runs_every_n_training_steps(qtbot, model, schedule, dataset):
    view = wire(BoundView(), model, schedule, dataset)
    qtbot.addWidget(view)
    view.images.setValue(2)
    view.k.setValue(3)
    view.every.setValue(10)
    view.auto.setChecked(True)
    view.on_training_steps([SimpleNamespace(step=5)])
    assert not view.busy
    view.on_training_steps([SimpleNamespace(step=12)])
    assert view.busy
    finish(qtbot, view)
    assert view.result is not None


# ----------------------------------------------------------------------------- the ODE likelihood beside it
@pytest.fixture(scope="module")
def trained(schedule, dataset):
    """The tiny UNet after 40 Adam steps on the dataset: an ε̂ that is not the zero predictor's."""
    from diffview.core.losses import training_loss

    torch.manual_seed(0)
    net = build_unet("tiny", 1, 8)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        loss, _ = training_loss(net, dataset.get_batch(torch.randint(0, len(dataset), (16,))), schedule)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    return net.eval()


def test_the_ode_likelihood_appears_beside_the_bound_and_equals_the_core(qtbot, trained, schedule, dataset):
    from diffview.core.analysis.likelihood import ode_log_likelihood
    from diffview.gui.views.bound_likelihood import BUTTON

    view = wire(BoundView(), trained, schedule, dataset)
    qtbot.addWidget(view)
    view.images.setValue(6)
    view.k.setValue(5)
    assert view.start()
    finish(qtbot, view)
    view.ode.images.setValue(4)
    view.ode.probes.setValue(2)
    view.ode.tolerance.setCurrentText("1e-2")
    assert view.start_likelihood()
    assert view.ode.button.text() == "Cancel" and not view.button.isEnabled()
    finish(qtbot, view)
    r = view.ode.result
    assert r is not None and r.images == 4 and r.probes == 2
    x0, _ = evaluation_images(dataset, FOLDER, 1, 8, 6, view.seed)  # the bound's images, their first 4
    torch.testing.assert_close(view.x0[:4], x0[:4])
    core = ode_log_likelihood(trained, x0[:4], schedule, objective="eps", probes=2, rtol=1e-2, atol=1e-2,
                              seed=view.seed)
    np.testing.assert_allclose(r.bpd, core.bpd, rtol=1e-5)  # float32 sums in the worker's thread count
    assert r.stderr > 0 and r.probe_stderr > 0 and r.mean != pytest.approx(view.result.total, abs=1e-3)
    text = view.ode.values.text()
    assert f"{view.result.total:.4f}</b> bits/dim" in text and f"{r.mean:.4f} ± {r.stderr:.4f}" in text
    assert "the first 4 of 6 random TRAINING images" in view.status.text()
    assert view.progress.value() == view.progress.maximum() == 1000
    assert view.ode.button.text() == BUTTON and view.button.isEnabled() and view.ode.button.isEnabled()


def test_the_ode_likelihood_cancels_and_keeps_the_last_result(qtbot, trained, schedule, dataset):
    view = wire(BoundView(), trained, schedule, dataset)
    qtbot.addWidget(view)
    view.ode.images.setValue(2)
    view.ode.probes.setValue(1)
    view.ode.tolerance.setCurrentText("1e-2")
    assert view.start_likelihood()
    finish(qtbot, view)
    done = view.ode.result
    assert done is not None and "VLB: not computed yet" in view.ode.values.text()
    assert view.start_likelihood() and not view.start_likelihood() and not view.start()  # one job at a time
    view.likelihood_or_cancel()  # Cancel
    finish(qtbot, view)
    assert view.ode.result is done and view.status.text() == "Cancelled."
    assert view.button.isEnabled() and view.ode.button.text() == "ODE likelihood"


def test_a_failing_ode_likelihood_says_why(qtbot, trained, schedule, dataset):
    broken = Breakable(trained)
    view = wire(BoundView(), broken, schedule, dataset)
    qtbot.addWidget(view)
    view.ode.images.setValue(2)
    assert view.start_likelihood()
    finish(qtbot, view)
    assert view.status.text() == "the model broke at this step" and view.ode.result is None
    assert view.button.isEnabled() and view.ode.button.isEnabled()


def test_held_out_images_of_a_builtin_are_another_draw():
    x0, note = evaluation_images(None, SimpleNamespace(source="builtin:digits"), 1, 8, 8)
    assert x0.shape == (8, 1, 8, 8) and "held-out" in note and x0.min() >= -1 and x0.max() <= 1
