"""The Training tab's live plots keep to their draw budget, counting every paint they cost."""

import time

import numpy as np

from diffview.core.train.events import StepEvent
from diffview.gui.views import training
from diffview.gui.views.training import DRAW_BUDGET, REDRAW_MS, TrainingView


def steps(start, n, rng):
    return [StepEvent(start + i, 0.1, rng.random(8).astype(np.float32), rng.integers(0, 1000, 8), 1e-3, 100.0,
                      1.0, 1.0, 10**6) for i in range(n)]


def test_a_live_redraw_waits_its_paints_cost_over_the_budget_trailing_repaints_included(qtbot, monkeypatch):
    slow = 0.02  # seconds each paint is taken to cost, whatever this machine's speed
    real = training.TimedPlots.paintEvent

    def paint(self, event):
        real(self, event)
        self.painted += slow

    monkeypatch.setattr(training.TimedPlots, "paintEvent", paint)
    view = TrainingView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    view._next_draw = 0  # due now (showing the empty view scheduled one)
    view.add_steps(steps(1, 50, rng))  # the first live redraw: three parts, one per turn of the event loop
    qtbot.waitUntil(lambda: view._next_draw != float("inf"), timeout=5_000)
    before = view.plots.painted
    wait = view._next_draw - time.monotonic()
    assert wait >= 3 * slow / DRAW_BUDGET - 0.5 and wait > REDRAW_MS / 1000  # at least its three parts' paints
    qtbot.wait(200)  # Qt's own repaints after the parts come later: they count toward the next redraw
    trailing = view.plots.painted - before
    view._next_draw = 0  # the next redraw is due now
    view.add_steps(steps(51, 5, rng))
    qtbot.waitUntil(lambda: view._next_draw != float("inf"), timeout=5_000)
    assert view._next_draw - time.monotonic() >= (3 * slow + trailing) / DRAW_BUDGET - 0.5
