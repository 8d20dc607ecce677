"""Every worker thread the app starts comes from ``new_thread``, so tests (and shutdown) can
check that none is left running."""

from __future__ import annotations

import weakref

from PySide6.QtCore import QThread

_threads: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def new_thread(name: str) -> QThread:
    thread = QThread()
    thread.setObjectName(name)
    _threads.add(thread)
    return thread


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
