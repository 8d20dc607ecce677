"""The Inversion tab (gui/views/inversion.py), offscreen with a tiny UNet: its numbers and images are the core's."""

import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from helpers import ToyConditional  # noqa: E402

from diffview.core.analysis.inversion import interpolate, reconstruction_error_by_steps  # noqa: E402
from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.io.export import to_uint8  # noqa: E402
from diffview.core.models.mlp import build_mlp  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle, PointShape  # noqa: E402
from diffview.core.sampling import noise_from_seed  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.inversion import SEEDS, InversionView, parse_steps  # noqa: E402
from diffview.gui.views.job_view import float_images  # noqa: E402
from diffview.gui.workers.threads import use_worker_torch_threads  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def model():
    """A tiny UNet with its zero-initialised layers drawn at random, so its ε̂ is far from 0."""
    torch.manual_seed(0)
    m = build_unet("tiny", 1, 8).eval()
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def dataset():
    g = torch.Generator().manual_seed(1)
    return ImageDataset(torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8))


def make_view(qtbot, model, schedule, dataset, classes=()):
    handle = ModelHandle(model, schedule, "eps", ImageShape(1, 8), FromTraining(1), "a tiny test model",
                         class_names=classes)
    view = InversionView()
    qtbot.addWidget(view)
    view.model_source = lambda ema=True: handle
    view.data_source = lambda: (dataset, None)
    view.classes_source = lambda: handle.class_names
    view.refresh_guidance()
    return view, handle


def finish(qtbot, view, timeout=60_000):
    qtbot.waitUntil(lambda: not view.busy, timeout=timeout)


@contextmanager
def worker_threads():
    """The torch threads of a job's worker (use_worker_torch_threads) here too: float32 sums then come out in the
    same order, so a result is the worker's to the last bit (the decoder's 1/√ᾱ at the top magnifies round-off)."""
    before = torch.get_num_threads()
    use_worker_torch_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_the_steps_list_is_parsed_and_checked():
    assert parse_steps("5, 10, 20, 50, 100", 50) == [5, 10, 20, 50]  # above T left out
    assert parse_steps("10; 5, 5", 50) == [5, 10]
    for bad, message in (("5, x", "whole numbers"), ("0", "1..50"), ("60", "1..50"), ("", "1..50")):
        with pytest.raises(ValueError, match=message):
            parse_steps(bad, 50)


def test_the_sweep_shows_the_cores_errors_images_and_curve(qtbot, model, schedule, dataset):
    view, _ = make_view(qtbot, model, schedule, dataset)
    view.show()  # the first training image is taken
    view.index.setValue(3)
    view.steps.setText("2, 5, 10")
    assert view.start() and view.button.text() == "Cancel" and not view.interp_button.isEnabled()
    finish(qtbot, view)
    x0 = float_images(dataset.images_uint8([3]).numpy())
    with worker_threads():
        core = reconstruction_error_by_steps(model, x0, schedule, [2, 5, 10], "eps")
    np.testing.assert_array_equal(view.sweep.steps, [2, 5, 10])
    np.testing.assert_array_equal(view.sweep.rms, core.rms)
    np.testing.assert_array_equal(view.curve.yData, core.rms)  # what the plot shows
    np.testing.assert_array_equal(view.curve.xData, [2, 5, 10])
    np.testing.assert_array_equal(view.recon_grid.current_array()[1:-1, 1:-1], to_uint8(core.reconstructions[-1])[0, 0])
    np.testing.assert_array_equal(view.x_T_grid.current_array()[1:-1, 1:-1], to_uint8(core.x_T[-1])[0, 0])
    assert f"{core.rms[-1]:.2f} at 10" in view.status.text() and view.button.text() == "Invert and reconstruct"
    assert view.interp_button.isEnabled()


def test_bad_input_is_refused_with_a_line(qtbot, model, schedule, dataset, tmp_path):
    view, _ = make_view(qtbot, model, schedule, dataset)
    view.steps.setText("5, ten")
    assert not view.start() and "Steps list" in view.status.text() and not view.busy
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert not view.load_image_file(str(tmp_path / "bad.png")) and "Cannot use" in view.status.text()
    view.a.setValue(10)  # the dataset has 10 images: #10 is not one
    assert not view.start_interpolation() and "must be training images" in view.status.text()
    points = ModelHandle(build_mlp("mlp-tiny").eval(), schedule, "eps", PointShape(2), FromTraining(5), "a 2D model")
    view.model_source = lambda ema=True: points
    assert not view.start() and view.status.text() == "a 2D model makes 2D points: this tab works on image models."


def test_an_image_file_of_another_size_is_read_at_the_models(qtbot, model, schedule, dataset, tmp_path):
    view, _ = make_view(qtbot, model, schedule, dataset)
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8), mode="RGB").save(path)
    assert view.load_image_file(str(path))
    assert view.original.shape == (1, 1, 8, 8) and "big.png" in view.source_label
    view.steps.setText("3")
    assert view.start()
    finish(qtbot, view)
    assert view.sweep is not None and view.sweep.reconstructions[0].shape == (1, 1, 8, 8)


def test_interpolating_training_images_and_exporting_png_and_gif(qtbot, model, schedule, dataset, tmp_path):
    view, _ = make_view(qtbot, model, schedule, dataset)
    view.a.setValue(2)
    view.b.setValue(7)
    view.frames.setValue(8)
    view.morph_steps.setValue(5)
    assert not view.export_png.isEnabled()
    assert view.start_interpolation() and view.interp_button.text() == "Cancel"
    finish(qtbot, view)
    a, b = (float_images(dataset.images_uint8([i]).numpy()) for i in (2, 7))
    with worker_threads():
        core = interpolate(model, a, b, 8, schedule, objective="eps", steps=5, invert=True)
    torch.testing.assert_close(view.morph.frames, core.frames, rtol=0, atol=0)
    assert view.export_png.isEnabled() and view.export_gif.isEnabled()
    png, gif = view.export_png_to(str(tmp_path / "s.png")), view.export_gif_to(str(tmp_path / "m.gif"))
    strip = Image.open(png)
    assert strip.text["frames"] == "8" and strip.text["ends"] == "training images #2 and #7"
    assert strip.size == ((8 * (8 + 2) + 2) * 16, (8 + 4) * 16)  # 8 frames and make_grid's padding, ×16
    assert Image.open(gif).n_frames == 14  # 8 there, 6 back


def test_the_export_buttons_write_on_a_worker_thread(qtbot, model, schedule, dataset, tmp_path, monkeypatch):
    import threading

    from PySide6.QtWidgets import QFileDialog

    from diffview.gui.views import inversion

    view, _ = make_view(qtbot, model, schedule, dataset)
    view.frames.setValue(4)
    view.morph_steps.setValue(3)
    assert view.start_interpolation()
    finish(qtbot, view)
    writers = []
    real = inversion.save_grid
    monkeypatch.setattr(inversion, "save_grid", lambda *a, **k: (writers.append(threading.current_thread()),
                                                                 real(*a, **k))[1])
    target = tmp_path / "strip.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (str(target), ""))
    view.export_png.click()
    assert not view.export_png.isEnabled()  # waiting for its file
    qtbot.waitUntil(lambda: view.export_png.isEnabled(), timeout=30_000)
    assert target.is_file() and writers and writers[0] is not threading.main_thread()
    assert Image.open(target).text["frames"] == str(view.frames.value())


def test_interpolating_seeds_ends_on_those_seeds_ddim_samples(qtbot, model, schedule, dataset):
    view, handle = make_view(qtbot, model, schedule, dataset)
    view.mode.setCurrentText(SEEDS)
    view.a.setValue(11)
    view.b.setValue(12)
    view.morph_steps.setValue(4)
    assert view.start_interpolation()
    finish(qtbot, view)
    assert view.morph.frames.shape[0] == 12  # the default
    for i, seed in ((0, 11), (-1, 12)):
        torch.testing.assert_close(view.morph.x_T[i][None], noise_from_seed(handle.sample_shape(1), seed)[0],
                                   rtol=0, atol=0)
    # every frame is the handle's DDIM sample from its x_T, clipped as the Sampling tab's (one batch of 12, as the
    # view decodes them: a batch of one differs by round-off that the top step's 1/√ᾱ magnifies)
    with worker_threads():
        samples = handle.sample(12, sampler="ddim", steps=4, x_T=view.morph.x_T)
    torch.testing.assert_close(view.morph.frames, samples, rtol=0, atol=0)


class Slow(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, t):
        time.sleep(0.02)
        return self.inner(x, t)


def test_cancel_stops_between_model_calls(qtbot, model, schedule, dataset):
    view, _ = make_view(qtbot, Slow(model), schedule, dataset)
    view.steps.setText("50")
    assert view.start()
    qtbot.wait(150)
    view.start_or_cancel()
    assert view.status.text() == view.CANCELLING
    finish(qtbot, view, timeout=5_000)
    assert view.status.text() == "Cancelled." and view.sweep is None and view.button.text() == "Invert and reconstruct"


def test_a_conditional_model_inverts_and_interpolates_within_the_chosen_class(qtbot, schedule, dataset):
    model = ToyConditional(num_classes=3)
    view, _ = make_view(qtbot, model, schedule, dataset, classes=("a", "b", "c"))
    assert view.guidance.isEnabled() and view.guidance.scale() == 1.0  # S = 1: the conditional model
    view.guidance.set_label(2)
    view.steps.setText("4")
    view.show()
    assert view.start()
    finish(qtbot, view)
    x0 = float_images(view.original)
    want = reconstruction_error_by_steps(model, x0, schedule, [4], "eps", label=2)
    other = reconstruction_error_by_steps(model, x0, schedule, [4], "eps", label=0)
    torch.testing.assert_close(view.sweep.reconstructions[0], want.reconstructions[0], rtol=0, atol=0)
    assert (other.x_T[0] - view.sweep.x_T[0]).abs().max() > 1e-2
    view.morph_steps.setValue(3)
    view.frames.setValue(8)
    assert view.start_interpolation()
    finish(qtbot, view)
    a, b = (float_images(dataset.images_uint8([i]).numpy()) for i in (0, 1))
    core = interpolate(model, a, b, 8, schedule, objective="eps", steps=3, invert=True, label=2)
    torch.testing.assert_close(view.morph.frames, core.frames, rtol=0, atol=0)
    assert view.morph_meta["class"].startswith("class c")
