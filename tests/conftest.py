"""Shared test set-up: headless Qt, a deliberate thread count, deterministic seeds, a private dataset cache,
no worker thread or child process left behind, and the app's main window for GUI tests."""

import gc
import multiprocessing
import os
import sys

# Qt must never try to reach a display in tests: without one, QApplication aborts the process.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _garbage_on_the_main_thread():
    """Once the app has turned automatic collection off (gui.threads), tests that never run an event
    loop still collect, here on the main thread, as the app's timer would."""
    yield
    threads = sys.modules.get("diffview.gui.workers.threads")
    if threads is not None and not gc.isenabled():
        threads.collect_garbage_if_due()


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Built-in datasets are generated into this session's own cache, never the user's."""
    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    """Each test's app remembers into its own settings file, never the user's nor another test's."""
    monkeypatch.setenv("DIFFVIEW_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture(autouse=True)
def no_threads_left():
    """Fail any test that leaves one of the app's worker threads running (once the GUI is loaded), or a child
    process (a training process, a torchrun job's ranks) running."""
    yield
    threads = sys.modules.get("diffview.gui.workers.threads")
    if threads is not None:
        assert threads.running_threads() == [], f"threads still running after the test: {threads.running_threads()}"
    children = multiprocessing.active_children()  # it also reaps the ones that have ended
    for child in children:  # the next test starts clean, whatever this one left
        child.kill()
        child.join(10)
    assert children == [], f"child processes still running after the test: {children}"


@pytest.fixture
def window(qtbot, tmp_path):
    """The app's main window on the built-in digits, shown once its data has loaded; every worker it
    started is stopped and waited for afterwards."""
    from diffview.gui.main_window import MainWindow

    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.dataset is not None and not w._tasks, timeout=60_000)
    yield w
    if w.controller.running:
        w.controller.stop()
        w.controller.wait()
    w.opener.cancel_and_wait()
    w.snapshots.wait()
    w.sampling_view.cancel_and_wait()
    w._tasks.cancel_and_wait()
    qtbot.wait(50)
