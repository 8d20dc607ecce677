"""The Sampling tab's class picker, guidance scale and ε_c / ε_u panel, and the Guidance tab's sweep, offscreen."""

import math
import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from helpers import ToyConditional  # noqa: E402

from diffview.core.analysis.guidance import SWEEP_SCALES  # noqa: E402
from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.diffusion import predict_x0_eps  # noqa: E402
from diffview.core.guidance import Guided  # noqa: E402
from diffview.core.io.export import make_grid, to_uint8  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle  # noqa: E402
from diffview.core.sampling import noise_from_seed, sample  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.guidance import GuidanceView, parse_classes, parse_scales  # noqa: E402
from diffview.gui.views.sampling import SamplingView  # noqa: E402
from diffview.gui.widgets.eps_parts import EPS_RANGE, eps_image  # noqa: E402
from diffview.gui.widgets.guidance import UNCONDITIONAL  # noqa: E402

T = 50
CLASSES = ("a", "b", "c")


def conditional_handle(model=None):
    return ModelHandle((model or ToyConditional(3)).eval(), make_schedule("cosine", T), "eps", ImageShape(1, 8),
                       FromTraining(1), "a toy conditional model", class_names=CLASSES)


def sampling_view(qtbot, handle):
    view = SamplingView()
    qtbot.addWidget(view)
    view.model_source = lambda ema=True: handle
    view.set_timesteps(T)
    view.sampler.setCurrentText("DDIM")
    view.steps.setValue(6)
    view.n.setValue(4)
    view.seed.setValue(3)
    return view


def sample_in(qtbot, view, label, scale):
    view.refresh_classes()
    view.guidance.set_label(label)
    view.guidance.set_scale(scale)
    view.start()
    qtbot.waitUntil(lambda: not view.busy and view.slider.isEnabled(), timeout=30_000)
    final = view.trajectory[-1]
    assert final[1] == -1
    np.testing.assert_array_equal(view.xt_grid.current_array(), make_grid(final[2], padding=1, pad_value=40)[..., 0])
    return final[2]


# ----------------------------------------------------------------------------- the Sampling tab
def test_the_class_and_S_change_what_the_sampling_tab_draws_and_S_1_is_guided_sampling(qtbot):
    handle = conditional_handle()
    view = sampling_view(qtbot, handle)
    view.refresh_classes()
    assert view.guidance.isEnabled() and view.show_parts.isEnabled()
    names = [view.guidance.label_box.itemText(i) for i in range(view.guidance.label_box.count())]
    assert names == [*CLASSES, UNCONDITIONAL] and view.guidance.scale() == 3.0
    a3, b3, a0 = sample_in(qtbot, view, 0, 3.0), sample_in(qtbot, view, 1, 3.0), sample_in(qtbot, view, 0, 0.0)
    assert (a3 != b3).mean() > 0.2 and (a3 != a0).mean() > 0.2
    assert view.settings["class"] == "a" and view.settings["guidance_scale"] == 0.0
    c1 = sample_in(qtbot, view, 2, 1.0)
    x_T, g = noise_from_seed((4, 1, 8, 8), 3)
    direct = sample(Guided(handle.model, 2, 1.0), x_T.shape, handle.schedule, sampler="ddim", steps=6, x_T=x_T,
                    generator=g)
    np.testing.assert_array_equal(c1, to_uint8(direct))
    assert view.metadata()["class"] == "c" and view.metadata()["guidance_scale"] == 1.0
    none = sample_in(qtbot, view, None, 5.0)  # ∅: the unconditional model, whatever S says
    np.testing.assert_array_equal(none, to_uint8(sample(lambda x, t: handle.model(x, t, None), x_T.shape,
                                                        handle.schedule, sampler="ddim", steps=6, x_T=x_T,
                                                        generator=torch.Generator().manual_seed(3))))
    assert "class" not in view.metadata() and not view.guidance.spin.isEnabled()


def test_the_class_and_S_are_off_for_an_unconditional_model(qtbot):
    handle = ModelHandle(build_unet("tiny", 1, 8).eval(), make_schedule("cosine", T), "eps", ImageShape(1, 8),
                         FromTraining(1), "an unconditional model")
    view = sampling_view(qtbot, handle)
    assert "once there is a model" in view.guidance.note.text()
    view.refresh_classes()
    assert not view.guidance.isEnabled() and not view.show_parts.isEnabled()
    assert "not class-conditional" in view.guidance.note.text() and view.guidance.note.isVisibleTo(view)
    assert view.guidance.label() is None
    view.start()
    qtbot.waitUntil(lambda: not view.busy, timeout=30_000)
    assert len(view.trajectory) == 7 and view.settings["label"] is None and view.states == [None] * 7


def test_the_eps_panel_shows_eps_c_eps_u_and_their_difference_at_the_sliders_step(qtbot):
    handle = conditional_handle()
    view = sampling_view(qtbot, handle)
    view.show()
    view.show_parts.setChecked(True)
    assert view.parts_panel.isVisible()
    sample_in(qtbot, view, 1, 3.0)
    qtbot.waitUntil(lambda: view.parts is not None and not view.parts_busy, timeout=30_000)
    assert view.parts[0] == 5  # x_0 has no model call: the last step's
    view.slider.setValue(2)
    qtbot.waitUntil(lambda: view.parts[0] == 2 and not view.parts_busy, timeout=30_000)
    steps = list(handle.iter_sample(4, sampler="ddim", steps=6, seed=3, label=1, guidance_scale=3.0))
    x_t, t = steps[2].x_t, steps[2].t
    assert view.parts[1] == t == view.trajectory[2][1]
    tt = torch.full((4,), t)
    out_c, out_u = Guided(handle.model, 1, 3.0, 4).parts(x_t, tt)
    eps_c = predict_x0_eps(out_c, x_t, tt, handle.schedule, "eps", clip_x0=False)[1]
    eps_u = predict_x0_eps(out_u, x_t, tt, handle.schedule, "eps", clip_x0=False)[1]
    torch.testing.assert_close(view.parts[2], eps_c)
    torch.testing.assert_close(view.parts[3], eps_u)
    c, u, d = view.parts_panel.shown
    np.testing.assert_array_equal(c, eps_image(eps_c, EPS_RANGE))
    np.testing.assert_array_equal(u, eps_image(eps_u, EPS_RANGE))
    m = float((eps_c - eps_u).abs().max())
    np.testing.assert_array_equal(d, eps_image(eps_c - eps_u, m))
    assert d.min() == 0 or d.max() == 255  # the difference's own symmetric range: ±max|ε_c − ε_u| reaches an end
    assert view.parts_panel.grids[2].title.text.endswith(f"±{m:.3g}")
    assert view.parts_panel.grids[0].title.text.endswith("(y = b), ±3")
    assert f"At t = {t}:" in view.parts_panel.note.text()
    np.testing.assert_array_equal(view.parts_panel.grids[0].current_array(), make_grid(c, padding=1,
                                                                                        pad_value=40)[..., 0])


# ----------------------------------------------------------------------------- the Guidance tab
def labelled_images(n=60, seed=0):
    """8×8 images of three classes the judge can tell apart: a bright left, middle or right band."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = (torch.rand(n, 1, 8, 8, generator=g) * 60).to(torch.uint8)
    for i, y in enumerate(labels.tolist()):
        images[i, 0, :, 3 * y:3 * y + 2] = 255
    return ImageDataset(images, labels=labels, class_names=CLASSES)


def guidance_view(qtbot, model=None, data=None):
    view = GuidanceView()
    qtbot.addWidget(view)
    handle = conditional_handle(model)
    view.model_source = lambda ema=True: handle
    data = data or labelled_images()
    view.data_source = lambda: (data, None)
    view.steps.setValue(5)
    view.judge_steps.setValue(40)
    return view, handle


def test_the_guidance_sweep_fills_every_cell_and_scores_every_S(qtbot):
    view, handle = guidance_view(qtbot)
    assert view.start()
    qtbot.waitUntil(lambda: not view.busy, timeout=60_000)
    assert view.status.text().startswith("Done: 18 of 18 cells"), view.status.text()
    assert sorted(view.cells) == [(r, c) for r in range(3) for c in range(6)]
    assert list(view.scores) == list(SWEEP_SCALES)
    for accuracy, spread in view.scores.values():
        assert 0 <= accuracy <= 1 and 0 <= spread <= math.log2(3) + 1e-6
    xs, ys = view.accuracy_curve.getData()
    assert list(xs) == list(SWEEP_SCALES) and list(ys) == [view.scores[s][0] for s in SWEEP_SCALES]
    judge = view.judge
    assert judge is not None and list(view.real_accuracy.getData()[1]) == [judge.held_out_accuracy] * 2
    assert view.accuracy_plot.plotItem.legend.getLabel(view.real_accuracy).text == (
        f"{judge.held_out} real held-out images: {judge.held_out_accuracy:.2f}")
    # the grid: cell (r, c) drawn where row r and column c meet, every row from one x_T
    for (r, c), cell in view.cells.items():
        y, x = view.cell_origin(r, c)
        tile = make_grid(cell.images, nrow=2, padding=1, pad_value=0)
        np.testing.assert_array_equal(view.grid_array()[y:y + tile.shape[0], x:x + tile.shape[1]], tile)
        torch.testing.assert_close(cell.x_T, view.cells[(r, 0)].x_T, rtol=0, atol=0)
    assert [name for _, name in view.row_ticks] == list(CLASSES)
    assert [name for _, name in view.column_ticks] == [f"{s:g}" for s in SWEEP_SCALES]
    assert view.start()  # the next sweep on the same data reuses the judge
    qtbot.waitUntil(lambda: not view.busy, timeout=60_000)
    assert view.judge is judge and len(view.cells) == 18


class Slow(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.num_classes, self.calls = inner, inner.num_classes, 0

    def forward(self, x, t, y=None):
        self.calls += 1
        time.sleep(0.02)
        return self.inner(x, t, y)


def test_the_guidance_sweep_cancels_between_model_calls(qtbot, no_threads_left):
    model = Slow(ToyConditional(3))
    view, _ = guidance_view(qtbot, model)
    view.use_judge.setChecked(False)
    view.steps.setValue(40)
    assert view.start() and view.button.text() == "Cancel"
    qtbot.waitUntil(lambda: len(view.cells) >= 3, timeout=60_000)
    view.start_or_cancel()
    assert view.status.text() == view.CANCELLING
    qtbot.waitUntil(lambda: not view.busy, timeout=10_000)
    assert 3 <= len(view.cells) < 18 and model.calls < 6 * 40 and view.button.text() == "Run sweep"
    assert view.status.text().startswith("Cancelled") and view.scores == {}
    assert len(view.real_accuracy.getData()[0] or []) == 0  # no judge, no line
    assert "off" in view.accuracy_plot.plotItem.titleLabel.text


def test_the_guidance_tab_refuses_an_unconditional_model_and_bad_input(qtbot):
    view, handle = guidance_view(qtbot)
    plain = ModelHandle(build_unet("tiny", 1, 8).eval(), handle.schedule, "eps", ImageShape(1, 8), FromTraining(1),
                        "a plain model")
    view.model_source = lambda ema=True: plain
    assert not view.start() and "not class-conditional" in view.status.text()
    view.model_source = lambda ema=True: handle
    view.classes_edit.setText("a, z")
    assert not view.start() and view.status.text() == "no class 'z'; the classes are a, b, c"
    assert parse_classes("c, 0", CLASSES) == [2, 0] and parse_classes(" all ", CLASSES) == [0, 1, 2]
    assert parse_scales("0; 1.5, 8") == [0.0, 1.5, 8.0]
    with pytest.raises(ValueError, match="S must lie"):
        parse_scales("-1")


# ----------------------------------------------------------------------------- in the app
def test_opening_a_conditional_run_shows_its_classes_and_S_in_the_sampling_and_guidance_tabs(qtbot, window,
                                                                                            tmp_path):
    from helpers import tiny_config

    from diffview.core.train.trainer import Trainer

    run = tmp_path / "run"
    list(Trainer(tiny_config(steps=3, checkpoint_every=3, conditional=True, guidance_scale=2.5), run,
                 dataset=labelled_images()).run())
    sv = window.sampling_view
    assert not sv.guidance.isEnabled()
    window.open_run_folder(str(run))
    qtbot.waitUntil(lambda: not window.opener.busy and not window._tasks, timeout=30_000)
    assert sv.guidance.class_names == CLASSES and sv.guidance.isEnabled() and sv.guidance.scale() == 2.5
    assert sv.guidance.slider.value() == 25
    assert window.guidance_view.classes_hint.text() == "3 classes: a, b, c"
    sv.guidance.set_label(2)
    sv.steps.setValue(3)
    sv.n.setValue(2)
    sv.run_button.click()
    qtbot.waitUntil(lambda: not sv.busy and sv.slider.isEnabled(), timeout=60_000)
    assert sv.settings["class"] == "c" and sv.settings["guidance_scale"] == 2.5
    assert "class c guided at S = 2.5" in sv.status.text()
