"""The algorithms as they run (gui/widgets/algorithm.py): lines highlighted in order at a followable pace beside
training and sampling, and each symbol a link to where it is shown."""

import time

import pytest

from diffview.core.sampling import nfe

pytest.importorskip("pytestqt")

from helpers import square_dataset, tiny_config  # noqa: E402
from PySide6.QtWidgets import QApplication, QFrame, QVBoxLayout, QWidget  # noqa: E402
from qt_helpers import LayoutRequests  # noqa: E402

from diffview.core.train.trainer import Trainer  # noqa: E402
from diffview.gui.widgets.algorithm import INTERVAL_MS, MAX_PENDING, AlgorithmPanel  # noqa: E402


def is_subsequence(shown, ran) -> bool:
    it = iter(ran)
    return all(any(x == y for y in it) for x in shown)


def shown_panel(qtbot, key="train") -> AlgorithmPanel:
    panel = AlgorithmPanel(key)
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_lines_are_highlighted_in_order_at_most_every_interval(qtbot):
    panel = shown_panel(qtbot)
    t0 = time.monotonic()
    for line in range(1, 7):
        panel.highlight(line, f"note {line}")
    assert list(panel.shown) == [1]  # the first at once, the rest one per interval
    qtbot.waitUntil(lambda: len(panel.shown) == 6, timeout=10_000)
    assert time.monotonic() - t0 >= 5 * INTERVAL_MS / 1000 * 0.9
    assert list(panel.shown) == [1, 2, 3, 4, 5, 6] and panel.current == 6
    assert panel.annotation.text() == "note 6"
    assert panel.highlighted and panel.bar.geometry() == panel.lines[5].geometry()  # under line 6


def test_an_overflowing_queue_drops_the_oldest_and_keeps_the_order(qtbot):
    panel = shown_panel(qtbot, "ddpm")
    ran = [1] + [2, 3, 4] * 10 + [5, 6]
    for line in ran:
        panel.highlight(line)
    qtbot.waitUntil(lambda: panel.idle and not panel.timer.isActive(), timeout=20_000)
    shown = list(panel.shown)
    assert len(shown) == 1 + MAX_PENDING and shown[0] == 1 and shown[-2:] == [5, 6]
    assert is_subsequence(shown, ran)


def test_a_hidden_panel_does_nothing(qtbot):
    panel = shown_panel(qtbot)
    panel.toggle.setChecked(False)
    assert panel.isHidden()
    panel.highlight(2)
    assert list(panel.shown) == [] and not panel.timer.isActive()


def test_each_symbol_is_a_link_that_emits_its_name(qtbot):
    panel = shown_panel(qtbot)
    texts = [label.text() for label in panel.lines]
    for name in ("x0", "t", "eps", "eps_theta", "grad"):
        assert any(f'href="{name}"' in text for text in texts), name
    with qtbot.waitSignal(panel.symbol_clicked) as blocker:
        panel.lines[1].linkActivated.emit("x0")
    assert blocker.args == ["x0"]
    panel.set_algorithm("ddim")
    assert len(panel.lines) == 6 and "x̂<sub>0</sub>" in panel.lines[2].text() and "DDIM" in panel.title.text()


def test_training_walks_algorithm_1_in_order_then_ends_on_until_converged(qtbot, window, tmp_path):
    from test_gui import use_tiny_folder

    use_tiny_folder(qtbot, window, tmp_path)
    panel = window.training_view.algorithm
    window.start_training()
    qtbot.waitUntil(lambda: panel.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: list(panel.shown).count(5) >= 2, timeout=60_000)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    qtbot.waitUntil(lambda: panel.idle and panel.current == 6, timeout=10_000)
    shown = list(panel.shown)
    assert shown[0] == 1 and shown[-1] == 6
    walks = shown[1:-1]
    assert walks[:8] == [2, 3, 4, 5, 2, 3, 4, 5]  # each step's four lines, in the order they run
    assert "loss" in panel.annotation.text() or "step" in panel.annotation.text()


def test_a_5_step_sampling_run_walks_the_sampler_in_order(qtbot, window, tmp_path):
    run = tmp_path / "run"
    list(Trainer(tiny_config(steps=3, checkpoint_every=3), run, dataset=square_dataset()).run())
    window.open_run_folder(str(run))
    qtbot.waitUntil(lambda: not window.opener.busy and not window._tasks, timeout=30_000)
    sv = window.sampling_view
    window.tabs.setCurrentWidget(sv)
    for sampler, key in (("DDIM", "ddim"), ("DDPM", "ddpm"), ("Heun", "heun"), ("DPM-Solver++(2M)", "dpmpp-2m")):
        sv.sampler.setCurrentText(sampler)
        assert sv.algorithm.key == key  # DDIM's update when DDIM is chosen, Algorithm 2 for DDPM, …
        sv.steps.setValue(5)
        sv.n.setValue(2)
        sv.algorithm.shown.clear()
        sv.run_button.click()
        qtbot.waitUntil(lambda: not sv.busy and sv.algorithm.idle and sv.algorithm.current == 6, timeout=60_000)
        shown = list(sv.algorithm.shown)
        ran = [1] + [2, 3, 4] * 5 + [5, 6]
        assert shown[0] == 1 and shown[-2:] == [5, 6] and is_subsequence(shown, ran), shown
        assert {2, 3, 4} <= set(shown)
        spent = nfe(key, 5, window.session.schedule)
        assert sv.settings["nfe"] == spent and f"({spent} NFE)" in sv.status.text()  # its cost, not only its steps


def test_clicking_a_symbol_shows_where_it_is_drawn(qtbot, window):
    tv, sv = window.training_view, window.sampling_view
    window.tabs.setCurrentWidget(tv)
    tv.algorithm.symbol_clicked.emit("t")
    assert window.tabs.currentWidget() is tv and tv.p_t.getViewBox().state["background"] is not None
    tv.algorithm.symbol_clicked.emit("x0")
    assert window.tabs.currentWidget() is window.data_view
    assert any(f.isVisible() for f in window.data_view.grid.findChildren(QFrame))  # the flash over the grid
    tv.algorithm.symbol_clicked.emit("eps")
    assert window.tabs.currentWidget() is window.forward_view
    tv.algorithm.symbol_clicked.emit("grad")
    assert window.tabs.currentWidget() is tv and tv.p_loss.getViewBox().state["background"] is not None
    sv.algorithm.symbol_clicked.emit("x0_pred")
    assert window.tabs.currentWidget() is sv
    qtbot.waitUntil(lambda: tv.p_loss.getViewBox().state["background"] is None, timeout=5_000)  # the flash ends


def test_the_derivation_tab_comes_right_after_the_bound(window):
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert names[names.index("Bound") + 1] == "Loss from the bound"
    assert window.derivation_view in window.analysis_views


def test_highlighting_never_lays_out_the_window_again(qtbot):
    """The highlight moves one widget that is never hidden: a hidden child shown at a run's first step made Qt lay
    out the whole window again (40-60 ms on the GUI thread while training)."""
    window = QWidget()
    qtbot.addWidget(window)
    panel = AlgorithmPanel("train")
    QVBoxLayout(window).addWidget(panel)
    window.show()
    qtbot.waitExposed(window)
    QApplication.processEvents()
    assert not panel.highlighted
    requests = [LayoutRequests(window), LayoutRequests(panel)]
    for line in (1, 3):
        panel.highlight(line, f"note {line}")
        qtbot.waitUntil(lambda: panel.current == line, timeout=5_000)
        QApplication.processEvents()
        assert panel.highlighted and panel.bar.geometry() == panel.lines[line - 1].geometry()
    assert [r.count for r in requests] == [0, 0]
    panel.set_algorithm("ddpm")
    assert not panel.highlighted
