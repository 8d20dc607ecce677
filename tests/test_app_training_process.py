"""The app trains in a child process: loss points, previews and weight snapshots reach the views, pause and
stop act within one step, and a training process killed mid-run leaves the window working."""

import os
import signal
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from helpers import tiny_config  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_helpers import LayoutRequests  # noqa: E402
from test_gui_workers import MAX_GAP_MS, Probe  # noqa: E402

from diffview.core.io.checkpoint import RunDir, load_checkpoint  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals are POSIX's")


def train_tiny(qtbot, window, **overrides):
    settings = dict(steps=10**6, preview_every=3, checkpoint_every=10**6)
    settings.update(overrides)
    window.session.config = lambda: tiny_config(**settings)
    window.start_training()
    qtbot.waitUntil(lambda: window.trainer is not None and window.trainer.started is not None, timeout=60_000)
    return window.trainer


def test_the_app_trains_in_a_child_and_the_views_get_its_points_previews_and_weights(qtbot, window):
    training = train_tiny(qtbot, window)
    assert training.pid != os.getpid() and training.alive
    view = window.training_view
    qtbot.waitUntil(lambda: len(view.steps) >= 3 and bool(view.previews), timeout=60_000)
    assert view.steps[:3] == [1, 2, 3] and view.previews[0].step == 3 and view.previews[0].images.shape[0] == 4
    assert window.model_source(ema=True) is None  # copied on a worker first, the GUI thread never waits
    qtbot.waitUntil(lambda: window.model_source(ema=True) is not None, timeout=30_000)
    handle = window.model_source(ema=True)
    step = int(handle.label.rsplit(" ", 1)[1].replace(",", ""))
    assert handle.label.startswith("the training run at step ") and 3 <= step <= training.step
    assert handle.shape.channels == 1 and handle.shape.size == 8 and handle.schedule.timesteps == 50
    if sys.platform.startswith("linux"):  # the status bar shows the training process's memory beside the app's
        assert training.memory_mb() > 50
        qtbot.waitUntil(lambda: "; training " in window.memory_label.text(), timeout=10_000)

    window.toggle_pause()
    asked_at = training.step
    qtbot.waitUntil(lambda: "Paused at step" in window.log.toPlainText(), timeout=30_000)
    paused_at = training.step
    assert paused_at <= asked_at + 2
    qtbot.wait(600)
    assert view.steps[-1] == paused_at == training.step  # nothing trains while paused
    window.toggle_pause()
    qtbot.waitUntil(lambda: training.step > paused_at + 1, timeout=30_000)
    window.controller.stop()
    asked_at = training.step
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert training.done.reason == "stopped" and training.done.step <= asked_at + 2
    assert training.wait(10) and training.exitcode == 0


def test_a_killed_training_process_is_reported_and_the_app_trains_again(qtbot, window):
    training = train_tiny(qtbot, window, checkpoint_every=2)
    run = window.run_dir
    qtbot.waitUntil(lambda: training.step >= 5 and RunDir(run).latest_checkpoint() is not None, timeout=60_000)
    points = len(window.training_view.steps)
    with Probe() as probe:
        os.kill(training.pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    log = window.log.toPlainText()
    assert "The training process was killed by SIGKILL" in log and "The last intact checkpoint is step" in log, log
    latest = RunDir(run).latest_checkpoint()
    assert f"{latest}" in log and load_checkpoint(latest)["step"] >= 2
    assert len(window.training_view.steps) >= points  # the views keep what they have
    assert window.settings.train_button.isEnabled() and window.controller.state == "idle"

    again = train_tiny(qtbot, window, steps=3)  # a new run, in a new process
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert again is not training and again.done.reason == "finished" and again.step == 3


def test_training_never_lays_out_the_window_again(qtbot, window):
    """Loss points, the line of numbers, the Algorithm panel and new previews repaint what changed and nothing
    else: a relayout of the window's tabs costs 25-40 ms on a GUI thread that shares the CPU with training."""
    train_tiny(qtbot, window, preview_every=2)
    view = window.training_view
    qtbot.waitUntil(lambda: len(view.steps) >= 1, timeout=60_000)
    QApplication.processEvents()
    requests = LayoutRequests(window.centralWidget())
    qtbot.waitUntil(lambda: len(view.previews) >= 3 and len(view.steps) >= 6, timeout=60_000)
    QApplication.processEvents()
    assert requests.count == 0
    assert view.preview_label.text().startswith(f"Preview {len(view.previews)} of {len(view.previews)}: step ")
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
