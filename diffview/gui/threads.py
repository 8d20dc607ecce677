"""Every worker thread the app starts comes from ``new_thread``, so tests (and shutdown) can
check that none is left running."""

from __future__ import annotations

import os
import weakref

import torch
from PySide6.QtCore import QThread

_threads: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def new_thread(name: str) -> QThread:
    thread = QThread()
    thread.setObjectName(name)
    _threads.add(thread)
    return thread


def use_worker_torch_threads() -> None:
    """Call first thing on a worker thread: torch threads for it, half the CPUs this process may use.

    A new thread gets OpenMP's default team (every core); beside the training thread that doubles the
    threads on the cores, and spinning teams then ran 30 times slower on a shared 2-core machine.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cpus // 2))


def running_threads() -> list[str]:
    """Names of the app's worker threads that are still running."""
    alive = []
    for t in list(_threads):
        try:
            if t.isRunning():
                alive.append(t.objectName())
        except RuntimeError:  # the C++ object is already gone
            continue
    return alive
