"""The Training tab's live plots keep to their draw budget, counting every paint they cost."""

import gc
import time

import numpy as np
from PySide6.QtGui import QRegion

from diffview.core.train.events import StepEvent
from diffview.gui.views import training
from diffview.gui.views.training import DRAW_BUDGET, REDRAW_MS, TrainingView


def steps(start, n, rng):
    return [StepEvent(start + i, 0.1, rng.random(8).astype(np.float32), rng.integers(0, 1000, 8), 1e-3, 100.0,
                      1.0, 1.0, 10**6) for i in range(n)]


def test_a_live_redraw_waits_its_paints_cost_over_the_budget_trailing_repaints_included(qtbot, monkeypatch):
    slow = 0.02  # seconds each paint is taken to cost, whatever this machine's speed
    real = training.TimedPlots.paintEvent
    painted_rects = []  # the rectangle of every paint while a live redraw is under way, in the viewport's pixels

    def paint(self, event):
        real(self, event)
        self.painted += slow
        if view._next_draw == float("inf"):  # Qt's repaints after the redraw count toward the next one
            painted_rects.append(event.rect())

    monkeypatch.setattr(training.TimedPlots, "paintEvent", paint)
    view = TrainingView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    # Earlier tests' garbage is collected now: the app collects on the GUI thread from a timer
    # (gui/workers/threads.py), and a collection between the redraw and the reading below is not its wait.
    gc.collect()
    painted_rects.clear()
    view._next_draw = 0  # due now (showing the empty view scheduled one)
    view.add_steps(steps(1, 50, rng))  # the first live redraw: three parts, one per turn of the event loop
    qtbot.waitUntil(lambda: view._next_draw != float("inf"), timeout=5_000)
    before, paints = view.plots.painted, len(painted_rects)
    wait = view._next_draw - time.monotonic()
    # Qt may merge a part's repaint into one of the whole viewport: every plot was painted, every paint is charged
    covered = QRegion()
    for rect in painted_rects:
        covered = covered.united(rect)
    for plot in (view.p_loss, view.p_lr, view.p_t):
        shown = view.plots.mapFromScene(plot.sceneBoundingRect()).boundingRect() & view.plots.viewport().rect()
        assert covered.contains(shown), plot
    assert paints >= 2 and wait >= paints * slow / DRAW_BUDGET - 0.5 and wait > REDRAW_MS / 1000
    qtbot.wait(200)  # Qt's own repaints after the parts come later: they count toward the next redraw
    trailing = view.plots.painted - before
    painted_rects.clear()
    view._next_draw = 0  # the next redraw is due now
    view.add_steps(steps(51, 5, rng))
    qtbot.waitUntil(lambda: view._next_draw != float("inf"), timeout=5_000)
    assert painted_rects
    assert view._next_draw - time.monotonic() >= (len(painted_rects) * slow + trailing) / DRAW_BUDGET - 0.5
