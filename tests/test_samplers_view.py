"""The Samplers tab: quality against NFE, one curve per sampler, the grids at one NFE, cancel, and a 2D model."""

import time

import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from diffview.core.analysis.samplers import quality_by_nfe  # noqa: E402
from diffview.core.data.source import load_source  # noqa: E402
from diffview.core.io.export import to_uint8  # noqa: E402
from diffview.core.models.mlp import build_mlp  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle, PointShape  # noqa: E402
from diffview.core.sampling import (
    SAMPLER_NAMES,  # noqa: E402
    steps_for_nfe,  # noqa: E402
)
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.samplers import CompareView, parse_budgets  # noqa: E402
from diffview.gui.widgets.quality_plot import IMAGE_AXIS, POINTS_AXIS  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_unet("tiny", 1, 8).eval()


class Recorder(torch.nn.Module):
    def __init__(self, inner, delay=0.0):
        super().__init__()
        self.inner, self.calls, self.delay = inner, [], delay

    def forward(self, x, t):
        self.calls.append((x.clone(), int(t[0])))
        if self.delay:
            time.sleep(self.delay)
        return self.inner(x, t)


def view_of(qtbot, model, schedule, shape=ImageShape(1, 8), points_source=None):
    handle = ModelHandle(model, schedule, "eps" if isinstance(shape, ImageShape) else "v", shape, FromTraining(1),
                         "a tiny test model")
    view = CompareView()
    view.model_source = lambda ema=True: handle
    view.points_source = points_source
    qtbot.addWidget(view)
    return view


def finish(qtbot, view, timeout=60_000):
    qtbot.waitUntil(lambda: not view.busy, timeout=timeout)


def curves_of(view):
    return {s: (list(c.xData), list(c.yData)) for s, c in view.plot.curves.items()}


def test_the_plot_has_a_curve_per_chosen_ode_sampler_at_its_budgets(qtbot, unet, schedule):
    rec = Recorder(unet)
    view = view_of(qtbot, rec, schedule)
    view.n.setValue(2)
    view.budgets.setText("10, 2, 5, 400")  # 400 > T is dropped
    view.checks["heun"].setChecked(False)
    view.checks["ddpm"].setChecked(True)  # stochastic: left out of an image model's ODE comparison
    assert view.start()
    assert "DDPM left out" in view.status.text()
    finish(qtbot, view)
    assert view.samplers == ["ddim", "dpmpp-2m"] and list(view.plot.curves) == view.samplers
    want = quality_by_nfe(unet, view.x_T, schedule, view.samplers, [2, 5, 10], objective="eps", seed=0)
    got = curves_of(view)
    for s in view.samplers:
        nfes, dist = want.curve(s)
        assert got[s][0] == nfes == [2, 5, 10]
        assert got[s][1] == pytest.approx(dist, rel=1e-4, abs=1e-4)  # a worker's float32 round-off
    assert view.plot.getPlotItem().getAxis("left").labelText == IMAGE_AXIS and view.plot.floor is None
    assert view.plot.getPlotItem().ctrl.logXCheck.isChecked()
    # the reference and every run saw x_T itself: the first call of each is where t jumps back up
    firsts = [x for i, (x, t) in enumerate(rec.calls) if i == 0 or t > rec.calls[i - 1][1]]
    assert len(firsts) == 1 + 2 * 3 and all(torch.equal(x, view.x_T) for x in firsts)
    assert view.curves.reference_nfe == T and "Done: 6 points" in view.status.text()
    assert view.grid_nfe.currentText() == "10"
    for s, name in (("ddim", "DDIM"), ("dpmpp-2m", "DPM-Solver++(2M)")):
        p = view.point_at(s, 10)
        assert view.grids[s].title.text == f"{name}: NFE 10, {p.seconds:.2f} s"
        assert (view.grids[s].current_array()[1:9, 1:9] == to_uint8(p.samples)[0, 0]).all()  # its first image
    view.grid_nfe.setCurrentText("5")
    assert view.grids["ddim"].title.text.startswith("DDIM: NFE 5, ")


def test_heun_meets_the_others_at_equal_nfe_and_the_grids_export(qtbot, unet, schedule, tmp_path):
    view = view_of(qtbot, unet, schedule)
    view.n.setValue(1)
    view.budgets.setText("3, 7")
    view.spacing.setCurrentText("karras")
    assert view.start()
    finish(qtbot, view)
    heun = [p for p in view.points if p.sampler == "heun"]
    assert [p.budget for p in heun] == [3, 7] and all(p.nfe <= p.budget for p in heun)
    assert [p.spec.steps for p in heun] == [steps_for_nfe("heun", b, schedule, "karras") for b in (3, 7)]
    assert all(p.spec.spacing == "karras" for p in view.points)
    text = Image.open(view.export_to(str(tmp_path / "g.png"))).text
    assert text["spacing"] == "karras" and f"Heun: NFE {heun[-1].nfe}" in text["samplers"]


def test_bad_budgets_and_no_sampler_are_refused_with_the_reason(qtbot, unet, schedule):
    view = view_of(qtbot, unet, schedule)
    for text, why in (("5, x", "'x' is not a whole number"), ("0", "at least 1"), ("", "at least one"),
                      ("60, 80", "exceeds T = 50")):
        view.budgets.setText(text)
        assert not view.start() and not view.busy and why in view.status.text(), view.status.text()
    assert parse_budgets(" 5; 10,20 ") == [5, 10, 20]
    view.budgets.setText("5")
    for box in view.checks.values():
        box.setChecked(box is view.checks["ddpm"])
    assert not view.start() and "Tick at least one ODE sampler" in view.status.text()


def test_cancel_stops_between_model_calls_and_keeps_the_points_so_far(qtbot, unet, schedule):
    rec = Recorder(unet, delay=0.02)
    view = view_of(qtbot, rec, schedule)
    view.n.setValue(1)
    view.budgets.setText("2, 5, 10, 20, 50")
    assert view.start()
    qtbot.waitUntil(lambda: len(view.points) >= 1, timeout=60_000)
    view.start_or_cancel()
    assert view.status.text() == view.CANCELLING
    finish(qtbot, view)
    calls = len(rec.calls)
    assert view.curves.cancelled and 1 <= len(view.points) < 15 and calls < T + 15 * 3
    assert "Cancelled" in view.status.text() and view.button.text() == "Run samplers"
    assert sum(len(x) for x, _ in curves_of(view).values()) == len(view.points)
    order = [(s, b) for s in view.samplers for b in (2, 5, 10, 20, 50)]
    assert [(p.sampler, p.budget) for p in view.points] == order[:len(view.points)]  # in order, none lost
    assert calls <= T + sum(p.nfe for p in view.points) + 50 + 1  # at most the sampler it was in, and one step
    qtbot.wait(100)
    assert len(rec.calls) == calls  # nothing ran after the job ended


def test_a_2d_model_is_measured_against_its_data_with_the_floor(qtbot, schedule):
    torch.manual_seed(0)
    mlp = build_mlp("mlp-tiny").eval()
    view = view_of(qtbot, mlp, schedule, PointShape(2))
    assert not view.start() and "its data is not known" in view.status.text()
    view = view_of(qtbot, mlp, schedule, PointShape(2), points_source=lambda: "moons")
    view.checks["ddpm"].setChecked(True)
    view.budgets.setText("2, 5")
    assert view.start()
    finish(qtbot, view)
    assert view.samplers == ["ddpm", "ddim", "heun", "dpmpp-2m"] and list(view.plot.curves) == view.samplers
    assert view.x_T.shape == (5000, 2) and view.curves.metric == "data"
    assert view.plot.getPlotItem().getAxis("left").labelText == POINTS_AXIS
    data = load_source("moons")[0]
    want = quality_by_nfe(mlp, view.x_T, schedule, view.samplers, [2, 5], objective="v", clip_x0=False,
                          metric="data", data=data, seed=0)
    assert view.plot.floor.value() == view.curves.floor == pytest.approx(want.floor, rel=1e-6)  # float32 sums
    for s in view.samplers:
        assert curves_of(view)[s][1] == pytest.approx(want.curve(s)[1], rel=1e-4)
        grid = view.grids[s]
        assert grid.current_array().shape[-1] == 3  # a scatter over the data
        assert grid.title.text.startswith(f"{SAMPLER_NAMES[s]}: NFE {view.point_at(s, 5).nfe}, ")
    assert f"floor {want.floor:.4f} on 5,000 points" in view.status.text()
