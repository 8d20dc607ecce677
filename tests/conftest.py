"""Shared test set-up: headless Qt, a deliberate thread count, deterministic seeds."""

import gc
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
