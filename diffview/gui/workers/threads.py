"""Every worker thread the app starts comes from ``new_thread``, so tests (and shutdown) can
check that none is left running; and Python's cyclic garbage is collected on the GUI thread only."""

from __future__ import annotations

import gc
import os
import weakref

import torch
from PySide6.QtCore import QCoreApplication, QThread, QTimer

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


_collector: QTimer | None = None


def collect_garbage_on_gui_thread(interval_ms: int = 500) -> None:
    """Turn Python's automatic cyclic collection off and collect from a GUI-thread timer instead, with what
    lives at start-up frozen (``gc.freeze``) so a full collection only walks what the app made since.

    The automatic collector runs on whichever thread happens to allocate; on a worker it may destroy
    a dead window's Qt objects there, and PySide then waits for the GIL inside ~QObject while the GUI
    thread waits on the worker: a deadlock (seen building a model on a worker). Idempotent.
    """
    global _collector
    app = QCoreApplication.instance()
    if _collector is not None or app is None or QThread.currentThread() is not app.thread():
        return
    gc.disable()
    # Everything alive now (the modules of torch, Qt, pyqtgraph, diffusers: ~380,000 objects) lives as long as
    # the app: moved out of the collector's sight, a full collection no longer walks it (380 ms → well under 1).
    gc.collect()
    gc.freeze()
    _collector = QTimer(app)
    _collector.timeout.connect(collect_garbage_if_due)
    _collector.start(interval_ms)


_frozen_after_build = False


def freeze_after_build() -> None:
    """Once the first main window and its views are built: collect, then freeze what survives (the window's
    widgets, plots and their Python wrappers, tens of thousands of objects that live as long as it does), so
    the full collections while training walk only what was made since: 28–126 ms → a few ms on the GUI
    thread. Once per process: a later window's objects stay collectable (tests build many)."""
    global _frozen_after_build
    if _frozen_after_build or _collector is None:
        return
    _frozen_after_build = True
    gc.collect()
    gc.freeze()
    _long_lived.update(total=0, pending=0)


_long_lived = {"total": 0, "pending": 0}  # CPython's own counts for its full-collection rule, kept here


def collect_garbage_if_due() -> None:
    """What the automatic collector would have done by now, on this (the GUI) thread, by CPython's rules:
    a generation is collected once its count passes its threshold, the oldest such one; and a full
    collection also waits until the objects promoted to the oldest generation since the last one exceed a
    quarter of those that survived it (as gcmodule.c does), so full passes over a large heap stay rare."""
    thresholds, counts = gc.get_threshold(), gc.get_count()
    if counts[0] <= thresholds[0]:
        return
    if counts[1] <= thresholds[1]:
        gc.collect(0)
        return
    if counts[2] > thresholds[2] and _long_lived["pending"] > _long_lived["total"] // 4:
        gc.collect(2)
        _long_lived.update(total=len(gc.get_objects(generation=2)), pending=0)
        return
    young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
    _long_lived["pending"] += max(0, young - gc.collect(1))  # the survivors now sit in the oldest generation
