"""Shared test set-up: headless Qt, a deliberate thread count, deterministic seeds."""

import os

# Qt must never try to reach a display in tests: without one, QApplication aborts the process.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
