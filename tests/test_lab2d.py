"""The "2D diffusion" tab, offscreen (pytest-qt): forward, training, score field, drawing, Langevin vs DDPM."""

import os

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from helpers import LAB2D_TINY as TINY  # noqa: E402
from helpers import (
    Breakable,  # noqa: E402
    lab2d_view,  # noqa: E402
)
from helpers import lab2d_idle as idle  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_helpers import LayoutRequests  # noqa: E402

from diffview.core.analysis.score import score_from_model  # noqa: E402
from diffview.core.data.points import read_points_csv, standardise  # noqa: E402
from diffview.core.diffusion import q_sample  # noqa: E402
from diffview.core.models.mlp import build_mlp  # noqa: E402
from diffview.core.sampling import timestep_sequence  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.lab2d import DRAW  # noqa: E402
from diffview.gui.workers.threads import running_threads  # noqa: E402


@pytest.fixture
def view(qtbot, tmp_path):
    with lab2d_view(qtbot, tmp_path, (1200, 760)) as v:
        yield v


def random_model(seed=0):
    torch.manual_seed(seed)
    model = build_mlp("mlp-tiny")
    torch.nn.init.normal_(model.out.weight, std=0.5)
    torch.nn.init.normal_(model.out.bias, std=0.5)
    return model.eval()


def shown_points(scatter) -> np.ndarray:
    """A ClassScatter's points put back in their order: [N, 2]."""
    n = sum(len(item.getData()[0]) for item in scatter.items)
    out = np.full((n, 2), np.nan)
    for item, idx in zip(scatter.items, scatter.groups):
        x, y = item.getData()
        out[np.arange(n) if idx is None else idx] = np.stack([x, y], 1)
    return out


def test_forward_plot_is_q_sample_of_the_data_with_the_stored_noise(view):
    view.source.setCurrentText("circles")
    view.t_slider.setValue(37)
    assert view.t_spin.value() == 37
    s = view.session
    expected = q_sample(s.dataset.points[:2000], 37, s.schedule, s.forward_noise).numpy()
    np.testing.assert_allclose(shown_points(view.forward_panel.points), expected, rtol=1e-6, atol=1e-6)
    assert s.forward_noise.shape == (2000, 2)
    view.set_schedule(make_schedule("linear", 50))  # the main window's schedule, with another T
    assert view.t_slider.maximum() == 49 and view.t == 37
    np.testing.assert_allclose(shown_points(view.forward_panel.points)[:, 0],
                               q_sample(s.dataset.points[:2000], 37, s.schedule, s.forward_noise)[:, 0])


def test_tiny_training_reports_distances_and_stops_its_process(qtbot, view):
    previews = []
    view.session.controller.preview.connect(previews.append)
    view.train_button.click()
    assert view.session.controller.running and not view.train_button.isEnabled()
    training = view.session.trainer
    assert training.pid != os.getpid()  # the MLP trains in a child process, as the image runs do
    idle(qtbot, view)
    assert training.finished and training.wait(10) and training.exitcode == 0
    assert [p.step for p in previews] == [20, 40] and all(p.distance > 0 for p in previews)
    assert "step 40" in view.distance_label.text() and f"{previews[-1].distance:.4f}" in view.distance_label.text()
    assert "floor" in view.distance_label.text() and view.session.floor > 0
    assert "finished" in view.progress.text() and view.train_button.isEnabled()
    assert view.session.trainer.config.timesteps == 100 and view.session.trainer.config.model == "mlp-tiny"
    # training ends by sampling reverse trajectories from the snapshot: x_T, then one frame per step
    assert view.session.model is not None and view.session.trajectory.shape == (101, 300, 2)
    x, _ = view.traj_panel.paths.getData()
    assert len(x) == 300 * 102  # 101 positions and a gap per path
    assert running_threads() == []


def test_score_arrows_point_along_the_models_score(qtbot, view):
    model = random_model()
    view.session.set_model(model, view.session.schedule, "v")
    view.t_slider.setValue(60)
    idle(qtbot, view)
    out = view.session.score_result
    assert out["t"] == 60
    grid = torch.from_numpy(out["grid"])
    expected = score_from_model(model, grid, 60, view.session.schedule, "v").numpy()
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-6)
    x, y = view.score_panel.learned_arrows.getData()
    shaft = np.stack([x[1::6] - x[0::6], y[1::6] - y[0::6]], 1)
    np.testing.assert_allclose(shaft / np.linalg.norm(shaft, axis=1, keepdims=True),
                               expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.stack([x[0::6], y[0::6]], 1), out["grid"], atol=1e-6)
    assert out["true"] is None  # moons has no closed-form density


def test_rapid_slider_moves_coalesce_and_gaussians8_draws_level_sets(qtbot, view):
    view.source.setCurrentText("gaussians8")
    view.session.set_model(random_model(), view.session.schedule, "v")
    for t in range(10, 30):
        view.t_slider.setValue(t)
    idle(qtbot, view)
    assert view.session.score_result["t"] == 29
    alpha_bar = float(view.session.schedule.alphas_cumprod[29])
    from diffview.core.data.toy2d import gaussians8_score
    np.testing.assert_allclose(view.session.score_result["true"],
                               gaussians8_score(torch.from_numpy(view.session.score_result["grid"]),
                                                alpha_bar).numpy(),
                               rtol=1e-5, atol=1e-6)
    cx, _ = view.score_panel.contours.getData()
    assert len(cx) > 50 and np.isnan(cx).any()


def test_drawn_points_are_trained_on(qtbot, view, tmp_path):
    view.source.setCurrentText(DRAW)
    assert view.forward_panel.plot.draw_enabled and view.session.dataset is None
    plot = view.forward_panel.plot
    centre = plot.mapFromScene(plot.plotItem.vb.mapViewToScene(__import__("pyqtgraph").Point(0.0, 0.0)))
    qtbot.mousePress(plot.viewport(), Qt.LeftButton, pos=centre)
    for dx in range(1, 12):
        qtbot.mouseMove(plot.viewport(), QPoint(centre.x() + 4 * dx, centre.y() - 2 * dx))
    qtbot.mouseRelease(plot.viewport(), Qt.LeftButton, pos=QPoint(centre.x() + 48, centre.y() - 24))
    n = len(view.session.drawn)
    assert n >= 24 and f"{n:,} points drawn" in view.drawn_label.text()
    assert abs(view.session.drawn[:4].mean(0)).max() < 0.3  # sprayed around the press, in plot coordinates
    assert (np.diff(view.session.drawn[::4, 0]) > 0).sum() > 5  # the drag moved to the right
    view.train_button.click()
    idle(qtbot, view)
    data = view.session.trainer.dataset.points
    np.testing.assert_allclose(data.numpy(), standardise(torch.from_numpy(view.session.drawn)).numpy(), atol=1e-6)
    csv = view.session.trainer.config.dataset
    assert csv.startswith(str(tmp_path)) and csv.endswith(".csv")
    np.testing.assert_allclose(read_points_csv(csv)[0].numpy(), data.numpy(), atol=1e-4)
    assert view.distance_label.text() and view.session.trajectory is not None
    view.clear_button.click()
    assert len(view.session.drawn) == 0 and "0 points drawn" in view.drawn_label.text()


def test_too_few_drawn_points_is_a_message_not_a_crash(qtbot, view):
    view.source.setCurrentText(DRAW)
    messages = []
    view.message.connect(lambda level, text: messages.append((level, text)))
    view.train_button.click()
    assert not view.session.controller.running
    assert messages and messages[0][0] == "error" and "at least" in messages[0][1]


def test_langevin_and_ddpm_from_the_same_start_run_to_the_end(qtbot, view):
    view.session.set_model(random_model(), view.session.schedule, "v")
    view.levels.setValue(8)
    view.steps_per_level.setValue(3)
    view.step_size.setValue(0.2)
    view.langevin_button.click()
    idle(qtbot, view)
    out = view.session.langevin
    assert out["lang"].shape == out["ddpm"].shape == (9, 2000, 2)
    np.testing.assert_array_equal(out["lang"][0], out["ddpm"][0])  # the same x_T
    assert not np.allclose(out["lang"][-1], out["ddpm"][-1])
    assert out["ts"] == timestep_sequence(100, 8, "linspace") and out["ts"][-1] == 0  # both samplers visit these
    assert view.lang_panel.slider.maximum() == 8 and "level 8 of 8" in view.lang_panel.label.text()
    text = view.lang_panel.text.text()
    assert f"{out['lang_d']:.4f}" in text and f"{out['ddpm_d']:.4f}" in text and f"{out['floor']:.4f}" in text
    x, _ = view.lang_panel.lang_points.getData()
    np.testing.assert_array_equal(x, out["lang"][-1][:, 0])
    view.lang_panel.slider.setValue(0)
    np.testing.assert_array_equal(view.lang_panel.ddpm_points.getData()[0], out["ddpm"][0][:, 0])
    view.distances.final_button.click()
    idle(qtbot, view, timeout=60_000)
    final = view.session.final_distances
    assert final["n"] == 10_000 and final["floor"] < out["floor"]
    assert f"DDPM {final['ddpm_d']:.4f} · Langevin {final['lang_d']:.4f}" in view.distances.readout.text()


def test_the_main_window_has_the_tab_and_passes_its_schedule(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path / "cache"))
    from diffview.gui.main_window import MainWindow

    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    names = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert names[-1] == "2D diffusion" and names.index("Bound") == names.index("Sampling") + 1
    w.show()
    w.tabs.setCurrentWidget(w.lab2d_view)  # the Settings panel keeps only what the 2D tab uses
    assert not w.settings.boxes["Data"].isVisible() and not w.settings.train_button.isVisible()
    assert w.settings.boxes["Diffusion"].isVisible() and w.settings.points_note.isVisible()
    w.tabs.setCurrentWidget(w.forward_view)
    assert w.settings.boxes["Data"].isVisible() and w.settings.train_button.isVisible()
    w.forward_view.slider.setValue(123)  # one t for images and points, moved from either side
    assert w.lab2d_view.t == 123 and w.lab2d_view.t_spin.value() == 123
    assert round(w.schedule_view.markers[0].value()) == 123
    s2d = w.lab2d_view.session  # the hidden 2D tab draws its x_t when shown, not on every move of t
    drawn = shown_points(w.lab2d_view.forward_panel.points)
    assert not np.allclose(drawn, s2d.forward_points_at(123).numpy(), atol=1e-6)
    w.tabs.setCurrentWidget(w.lab2d_view)
    np.testing.assert_allclose(shown_points(w.lab2d_view.forward_panel.points), s2d.forward_points_at(123).numpy(),
                               rtol=1e-6, atol=1e-6)
    w.tabs.setCurrentWidget(w.forward_view)
    w.lab2d_view.t_slider.setValue(45)
    assert w.forward_view.t == 45 and w.forward_view.spin.value() == 45
    w.settings.timesteps.setValue(200)
    assert w.lab2d_view.session.schedule is w.schedule and w.lab2d_view.t_slider.maximum() == 199
    w.lab2d_view.session.train_overrides = dict(TINY, steps=100_000)
    w.lab2d_view.train_button.click()
    qtbot.waitUntil(lambda: w.lab2d_view.session.trainer.step > 0, timeout=30_000)
    qtbot.waitUntil(lambda: not w._tasks, timeout=60_000)  # the main window's digits
    w.close()  # stops the 2D run and waits for it
    assert running_threads() == []
    qtbot.wait(50)  # the controller's finished signal arrives; nothing new starts after closing
    assert not w.lab2d_view.session.controller.running and not w.lab2d_view.session.jobs


def test_a_new_run_clears_the_previous_runs_samples(qtbot, view):
    view.session.set_model(random_model(), view.session.schedule, "v")
    view.levels.setValue(4)
    view.steps_per_level.setValue(2)
    view.langevin_button.click()
    idle(qtbot, view)
    assert view.session.langevin is not None and view.lang_panel.text.text()
    view.session.train_overrides = dict(TINY, steps=100_000)
    view.train_button.click()
    assert view.session.langevin is None and view.lang_panel.text.text() == ""
    assert len(view.lang_panel.lang_points.getData()[0]) == 0
    view.stop_button.click()
    idle(qtbot, view)


def test_samplers_are_compared_by_their_distance_to_the_data(qtbot, view, monkeypatch):
    import diffview.gui.views.lab2d.session as lab
    from diffview.core.analysis.samplers import default_sampler_specs
    from diffview.core.data.points import distance_to_data
    from diffview.core.sampling import sample

    monkeypatch.setattr(lab, "FINAL_N", 500)  # small, for speed; the view's own number otherwise
    model = random_model()
    view.session.set_model(model, view.session.schedule, "v")
    view.distances.compare_button.click()
    idle(qtbot, view, timeout=60_000)
    out = view.session.sampler_table
    specs = default_sampler_specs(view.session.schedule)
    assert [row[0] for row in out["rows"]] == [s.label for s in specs] and out["n"] == 500
    assert {s.sampler for s in specs} == {"ddpm", "ddim", "heun", "dpmpp-2m"}  # Heun and DPM-Solver++ at equal NFE
    x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(5))
    for i, spec in enumerate(specs):
        if spec.deterministic:  # DDIM η=0, Heun, DPM-Solver++(2M): recomputable from the same x_T
            with torch.no_grad():
                x = sample(model, x_T.shape, view.session.schedule, sampler=spec.sampler, steps=spec.steps,
                           objective="v", clip_x0=False, x_T=x_T.clone())
            # the worker's torch threads may sum in another order: float32 round-off apart
            assert out["rows"][i][1] == pytest.approx(distance_to_data(x, view.session.dataset)[0], rel=1e-5)
    readout = view.distances.readout.text()
    assert f"{out['rows'][2][1]:.4f}" in readout and f"floor {out['floor']:.4f}" in readout




def test_every_failing_job_shows_why_and_the_next_run_works(qtbot, view, monkeypatch):
    import diffview.gui.views.lab2d.session as lab

    monkeypatch.setattr(lab, "FINAL_N", 300)
    view.levels.setValue(4)
    view.steps_per_level.setValue(2)
    messages = []
    view.message.connect(lambda level, text: messages.append((level, text)))
    model = Breakable(random_model(), "the MLP broke")
    view.session.set_model(model, view.session.schedule, "v")  # the score field at t
    idle(qtbot, view)
    assert "failed (the MLP broke)" in view.score_panel.plot.getPlotItem().titleLabel.text
    assert not view.session.score_busy
    jobs = [(view.sample_button, view.traj_panel.label, lambda: view.session.trajectory),
            (view.langevin_button, view.lang_panel.text, lambda: view.session.langevin),
            (view.distances.final_button, view.distances.readout, lambda: view.session.final_distances),
            (view.distances.compare_button, view.distances.readout, lambda: view.session.sampler_table)]
    for button, label, result in jobs:
        button.click()
        idle(qtbot, view, timeout=60_000)
        assert "failed: the MLP broke" in label.text() and result() is None and button.isEnabled()
    assert messages == [("error", "the MLP broke")] * 5
    model.broken = False
    view.set_timestep(42)  # the field updates again
    idle(qtbot, view)
    assert view.session.score_result["t"] == 42
    title = view.score_panel.plot.getPlotItem().titleLabel.text
    assert title == "Unconditional score ∇log p<sub>t</sub>(x), t&nbsp;=&nbsp;42"
    for button, label, result in jobs:
        button.click()
        idle(qtbot, view, timeout=60_000)
        assert result() is not None and "failed" not in label.text()
    assert len(messages) == 5


def test_each_job_is_cancelled_between_model_calls(qtbot, view, monkeypatch):
    """A job whose check() is set mid-run stops at the next model call, not at the end of a sampler."""
    from diffview.core.analysis.lab2d import langevin_vs_ddpm, reverse_trajectories, sampler_distances

    class Cancel(Exception):
        pass

    calls = []

    def counted(x, t):
        calls.append(int(t[0]))
        return random_model()(x, t)

    def check():
        if len(calls) >= 5:
            raise Cancel

    sched = make_schedule("cosine", 1000)
    for job in (lambda: reverse_trajectories(counted, sched, "v", n=10, check=check),
                lambda: langevin_vs_ddpm(counted, sched, "v", view.session.dataset, n=10, check=check),
                lambda: sampler_distances(counted, sched, "v", view.session.dataset, n=10, check=check)):
        calls.clear()
        with pytest.raises(Cancel):
            job()
        assert len(calls) == 5


def test_a_training_runs_progress_repaints_its_readouts_alone(qtbot, view):
    """The step, loss and distance readouts keep their size whatever their text: a QLabel there made Qt lay out
    the whole tab again at every batch of steps (the event loop stalled 26 ms at the 99th percentile)."""
    view.session.train_overrides["steps"] = 400
    view.session.train_overrides["preview_every"] = 10**6  # no preview: nothing else in the tab changes
    view.train_button.click()
    qtbot.waitUntil(lambda: "step " in view.progress.text(), timeout=60_000)
    QApplication.processEvents()
    requests, texts = LayoutRequests(view), set()
    view.session.controller.steps.connect(lambda evs: texts.add(view.progress.text()))
    qtbot.waitUntil(lambda: len(texts) >= 3 or not view.session.controller.running, timeout=60_000)
    QApplication.processEvents()
    assert len(texts) >= 3 and requests.count == 0
    view.session.controller.stop()
    idle(qtbot, view)
