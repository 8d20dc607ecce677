"""No tab opens empty: what needs no model is shown at once, what needs one says so inside its plot, with the
one action that fills it."""

import numpy as np
import torch
from test_gui import use_tiny_folder

from diffview.core.diffusion import q_sample
from diffview.core.io.export import to_uint8
from diffview.gui.views.job_view import float_images


def expected_x_t(window, t, seed):
    view = window.sdedit_view
    x0 = float_images(view.original)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    return to_uint8(q_sample(x0, t, window.schedule, noise))[0]


def test_noise_and_denoise_shows_x_t_for_the_chosen_t_and_seed_without_a_model(qtbot, window):
    view = window.sdedit_view
    window.tabs.setCurrentWidget(view)
    assert window.loaded_run is None and window.trainer is None
    for t, seed in ((499, 0), (900, 0), (900, 7), (0, 3), (window.schedule.timesteps - 1, 3)):
        view.timestep.setValue(t)
        view.seed.setValue(seed)
        shown = view.noised_grid.current_array()[1:-1, 1:-1]  # inside the grid's 1-pixel border
        assert np.array_equal(shown, expected_x_t(window, t, seed)[0]), (t, seed)  # one grey channel
        assert f"t = {t}" in view.noised_grid.title.text
    view.index.setValue(3)  # another image: its x_t at once
    assert np.array_equal(view.noised_grid.current_array()[1:-1, 1:-1],
                          expected_x_t(window, window.schedule.timesteps - 1, 3)[0])
    assert view.result_grid.placeholder.shown and "Noise and denoise" in view.result_grid.placeholder.text


def test_each_tab_that_needs_a_model_says_so_and_names_its_action(qtbot, window):
    window.show()
    expected = [
        (window.sampling_view.xt_grid.placeholder, "Sample"),
        (window.bound_view.placeholders[0], "Compute the bound"),
        (window.bound_view.loss_placeholder, "Train"),
        (window.compare_view.placeholders[0], "Run samplers"),
        (window.guidance_view.placeholders[0], "Run sweep"),
        (window.inversion_view.x_T_grid.placeholder, "Invert and reconstruct"),
        (window.inversion_view.strip_grid.placeholder, "Interpolate"),
        (window.sdedit_view.strip_grid.placeholder, "Noise and denoise"),
        (window.lab2d_view.lang_panel.notes[0], "Run Langevin vs DDPM"),
    ]
    for placeholder, action in expected:
        assert placeholder.shown and f"<b>{action}</b>" in placeholder.text, action
    memorise = window.memorise_view
    assert memorise.pages.currentWidget() is memorise.empty and "Generate and search" in memorise.empty.text()


def test_the_bound_tab_s_training_panel_fills_while_training_runs(qtbot, window, tmp_path):
    use_tiny_folder(qtbot, window, tmp_path)
    view = window.bound_view
    window.start_training()
    window.tabs.setCurrentWidget(view)  # training switched to its tab: the Bound tab is shown again
    assert view.loss_placeholder.shown
    qtbot.waitUntil(lambda: len(window.training_view.steps) >= 3, timeout=60_000)
    qtbot.waitUntil(lambda: np.any(view.bars.opts["height"]), timeout=30_000)
    assert not view.loss_placeholder.shown  # filled by the training's own step signals, nobody pressed a thing
    view.refresh_loss()
    x, means, _ = window.training_view.loss_by_t()  # the same numbers as the Training tab's, bin by bin
    assert np.array_equal(view.bars.opts["x"], x) and np.array_equal(view.bars.opts["height"], means)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)


def test_a_tab_restored_as_the_current_one_fills_once_its_data_has_loaded(qtbot, tmp_path):
    from diffview.gui.main_window import MainWindow
    from diffview.gui.persistence import AppMemory

    memory = AppMemory()
    memory.set_value("tab", "Noise && denoise")
    memory.sync()
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    assert w.tabs.currentWidget() is w.sdedit_view  # shown before the data is there
    qtbot.waitUntil(lambda: w.dataset is not None and not w._tasks, timeout=60_000)
    qtbot.waitUntil(lambda: w.sdedit_view.noised_grid.current_array() is not None, timeout=10_000)
    assert w.sdedit_view.original_grid.current_array() is not None
    w.opener.cancel_and_wait()
    w.close()
