"""The 2D tab's classes, offscreen (pytest-qt): points coloured by class, the Conditional checkbox, the
guided score field beside the unconditional one, and guided samples of each class."""

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from helpers import LAB2D_TINY as TINY  # noqa: E402
from helpers import lab2d_idle as idle  # noqa: E402
from helpers import lab2d_view  # noqa: E402

from diffview.core.models.mlp import build_mlp  # noqa: E402
from diffview.gui.widgets.points_canvas import POINT_COLOUR, class_colour  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread for the tests' own model calls: two spin against each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def view(qtbot, tmp_path):
    with lab2d_view(qtbot, tmp_path, (1400, 800)) as v:
        yield v


def conditional_model(classes=3, seed=0):
    torch.manual_seed(seed)
    model = build_mlp("mlp-tiny", num_classes=classes)
    for p in (model.out.weight, model.out.bias, model.class_emb.table.weight):
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def title(plot) -> str:
    return plot.getPlotItem().titleLabel.text


def brush_rgb(item) -> tuple:
    return item.opts["brush"].color().getRgb()[:3]


def shafts(arrows) -> np.ndarray:
    x, y = arrows.getData()
    d = np.stack([x[1::6] - x[0::6], y[1::6] - y[0::6]], 1)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_points_are_coloured_by_class_with_a_legend(view):
    view.source.setCurrentText("gaussians8")
    view.t_slider.setValue(20)
    s, panel = view.session, view.forward_panel
    labels = s.dataset.labels[:2000].numpy()
    np.testing.assert_array_equal(s.forward_labels, labels)
    xt = s.forward_points_at(20).numpy()
    assert len(panel.points.items) == 9  # a scatter per class, and one for points without a class
    for k in range(8):
        x, y = panel.points.items[k].getData()
        np.testing.assert_allclose(np.stack([x, y], 1), xt[labels == k], atol=1e-6)
        assert brush_rgb(panel.points.items[k]) == class_colour(k)[:3]
    assert len({brush_rgb(item) for item in panel.points.items}) == 9  # distinct colours, grey for no class
    assert len(panel.points.items[8].getData()[0]) == 0
    assert panel.legend.isVisible() and all(f"&nbsp;{k}" in panel.legend.text() for k in range(8))
    first = panel.points.items[0]
    view.t_slider.setValue(60)  # moving t moves the points, the scatter items are the ones built for the data
    assert panel.points.items[0] is first
    np.testing.assert_allclose(np.stack(first.getData(), 1), s.forward_points_at(60).numpy()[labels == 0], atol=1e-6)
    view.source.setCurrentText("moons")
    assert len(panel.points.items) == 3 and "upper" in panel.legend.text() and "lower" in panel.legend.text()
    view.source.setCurrentText("swissroll")  # no classes: every point in one scatter, the tab's usual colour
    assert len(panel.points.items) == 1 and brush_rgb(panel.points.items[0]) == POINT_COLOUR[:3]
    assert len(panel.points.items[0].getData()[0]) == 2000 and not panel.legend.isVisible()
    assert s.forward_labels is None and not view.conditional.isEnabled()


def test_the_conditional_checkbox_trains_a_conditional_model(qtbot, view):
    view.source.setCurrentText("gaussians8")
    assert view.conditional.isEnabled() and not view.class_box.isEnabled() and not view.classes_button.isEnabled()
    view.conditional.setChecked(True)
    view.scale.setValue(2.5)
    view.train_button.click()
    assert not view.conditional.isEnabled()  # while it trains
    idle(qtbot, view)
    s = view.session
    assert s.trainer.config.conditional and s.trainer.config.guidance_scale == 2.5
    assert s.model.num_classes == 8 and s.model_classes == tuple(str(k) for k in range(8))
    assert view.class_box.count() == 8 and view.class_box.isEnabled() and view.classes_button.isEnabled()
    assert view.conditional.isEnabled()
    # training ends by sampling each class as well as the trajectories
    assert s.class_result["labels"].tolist() == np.repeat(np.arange(8), 500).tolist()
    assert s.class_result["scale"] == 2.5 and s.trajectory is not None
    view.class_box.setCurrentIndex(5)
    idle(qtbot, view)
    out = s.score_result
    assert out["label"] == 5 and out["scale"] == 2.5 and out["guided"] is not None
    assert "class 5 at S&nbsp;=&nbsp;2.5" in title(view.score_panel.guided_plot)
    assert "Unconditional score" in title(view.score_panel.plot)
    view.conditional.setChecked(False)  # unticked: the next run is unconditional
    view.train_button.click()
    idle(qtbot, view)
    assert not s.trainer.config.conditional and s.model.num_classes == 0 and s.model_classes == ()
    assert view.class_box.count() == 0 and not view.classes_button.isEnabled()
    assert s.score_result["guided"] is None and "Conditional" in title(view.score_panel.guided_plot)
    assert view.score_panel.guided_arrows.getData()[0] is None  # no arrows left from the conditional run


def test_the_guided_field_is_drawn_beside_the_unconditional_one(qtbot, view):
    from diffview.core.analysis.score import guided_score_from_model, score_from_model

    view.source.setCurrentText("moons")
    model = conditional_model(2)
    s = view.session
    s.set_model(model, s.schedule, "v", ("upper", "lower"))
    view.class_box.setCurrentIndex(1)
    view.scale.setValue(4.0)
    view.t_slider.setValue(30)
    idle(qtbot, view)
    out = s.score_result
    assert (out["t"], out["label"], out["scale"]) == (30, 1, 4.0)
    grid = torch.from_numpy(out["grid"])
    guided = guided_score_from_model(model, grid, 30, s.schedule, "v", 1, 4.0).numpy()
    np.testing.assert_allclose(out["guided"], guided, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shafts(view.score_panel.guided_arrows), unit(guided), atol=1e-5)
    np.testing.assert_allclose(shafts(view.score_panel.learned_arrows),
                               unit(score_from_model(model, grid, 30, s.schedule, "v").numpy()), atol=1e-5)
    assert not np.allclose(shafts(view.score_panel.guided_arrows), shafts(view.score_panel.learned_arrows), atol=0.05)
    # over the guided field, the chosen class's points at t in its colour and the rest faint
    xt, mine = s.forward_points_at(30).numpy(), s.forward_labels == 1
    np.testing.assert_allclose(np.stack(view.score_panel.class_points.getData(), 1), xt[mine], atol=1e-6)
    assert len(view.score_panel.guided_points.getData()[0]) == (~mine).sum()
    assert brush_rgb(view.score_panel.class_points) == class_colour(1)[:3]
    assert view.score_panel.guided_arrows.opts["pen"].color().getRgb()[:3] == class_colour(1)[:3]
    assert "class lower at S&nbsp;=&nbsp;4" in title(view.score_panel.guided_plot)
    view.scale.setValue(0.0)  # S = 0: the guided field is the unconditional one
    idle(qtbot, view)
    np.testing.assert_array_equal(s.score_result["guided"], s.score_result["score"])


def test_guided_samples_of_each_class_come_back_per_class(qtbot, view, monkeypatch):
    import diffview.gui.views.lab2d.session as lab
    from diffview.core.analysis.lab2d import class_samples

    monkeypatch.setattr(lab, "CLASS_N", 60)
    messages = []
    view.message.connect(lambda level, text: messages.append((level, text)))
    assert not view.session.sample_classes() and "Conditional" in messages[-1][1]  # no conditional model yet
    model = conditional_model(3)
    view.session.set_model(model, view.session.schedule, "v", ("a", "b", "c"))
    view.scale.setValue(2.0)
    view.classes_button.click()
    idle(qtbot, view)
    out = view.session.class_result
    assert out["labels"].tolist() == [0] * 60 + [1] * 60 + [2] * 60 and out["scale"] == 2.0
    expected = class_samples(model, view.session.schedule, "v", n_per_class=60, scale=2.0, steps=lab.TRAJ_STEPS)
    np.testing.assert_array_equal(out["guided"], expected["guided"])
    np.testing.assert_array_equal(out["uncond"], expected["uncond"])
    panel = view.class_panel
    for k in range(3):  # each class's samples in its own scatter, in its colour
        np.testing.assert_array_equal(np.stack(panel.samples.items[k].getData(), 1), out["guided"][k * 60:(k + 1) * 60])
        assert brush_rgb(panel.samples.items[k]) == class_colour(k)[:3]
    np.testing.assert_array_equal(np.stack(panel.uncond.getData(), 1), out["uncond"])
    assert len(panel.data[0].getData()[0]) == 2000  # the faint data under both
    assert "60 per class, S&nbsp;=&nbsp;2" in title(panel.guided_plot)
    assert all(name in panel.text.text() for name in "abc") and view.classes_button.isEnabled()
    view.session.train_overrides = dict(TINY, steps=100_000)  # a new run clears them
    view.train_button.click()
    assert view.session.class_result is None and len(panel.samples.items[0].getData()[0]) == 0
    view.stop_button.click()
    idle(qtbot, view)
