"""The one way the app runs work off the GUI thread: a :class:`Job` on its own QThread.

``Job(fn, name)`` runs ``fn(emit, cancelled)`` on a worker QThread (from :func:`.threads.new_thread`):
``emit(x)`` sends x to the ``item`` signal (delivered on the GUI thread, dropped once cancelled),
``cancelled()`` is True once ``cancel()`` was called, and ``fn`` checks it between model calls.
``done(result, error)`` fires on the GUI thread after the thread has stopped, ``error`` being the
exception's message ("" on success), so a failure reaches the user as text and a finished job never
leaves a thread running. The worker's torch-thread rule (:func:`.threads.use_worker_torch_threads`)
is applied first thing on the worker, unless the job sets its own (training does).

:class:`Jobs` is the set of jobs one owner runs (a view, the run opener): it starts them, knows which
are running, cancels and waits for them, and once closed starts nothing new. :func:`stop_everything`
is the app's shutdown: every job cancelled, every set closed, then each waited for.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from diffview.gui.workers.threads import new_thread, use_worker_torch_threads

Emit = Callable[[Any], None]
JobFunction = Callable[[Emit, Callable[[], bool]], Any]

_running: "set[Job]" = set()  # held here until their thread has ended: no owner's end can destroy one
_sets: "weakref.WeakSet[Jobs]" = weakref.WeakSet()


class Deferred:
    """A value to compute on the worker that uses it, never on the GUI thread: ``Deferred(fn).resolve()``."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn

    def resolve(self) -> Any:
        return self.fn()


class _Runner(QObject):
    item = Signal(object)
    finished = Signal(object, str)

    def __init__(self, fn: JobFunction, cancelled: Callable[[], bool], torch_threads: bool):
        super().__init__()
        self.fn, self.cancelled, self.torch_threads = fn, cancelled, torch_threads

    @Slot()
    def run(self) -> None:
        try:
            if self.torch_threads:
                use_worker_torch_threads()
            result = self.fn(self.item.emit, self.cancelled)
        except Exception as e:  # shown to the user as text, never a traceback
            self.finished.emit(None, str(e) or type(e).__name__)
        else:
            self.finished.emit(result, "")
        finally:
            # Quit from this thread itself: a queued quit would never arrive while the GUI thread
            # blocks in wait() (closing the window mid-computation).
            QThread.currentThread().quit()


class Job(QObject):
    """One cancellable computation on a worker thread, with progress items on the way and a result at the end.

    ``on_cancel`` is also called by ``cancel()`` (training: ask the trainer to stop after its step);
    ``torch_threads=False`` leaves the worker's torch thread count to ``fn``. A Job has no Qt parent: once
    started, this module keeps it (and its thread) alive until the thread has ended, whatever happens to the
    object that started it."""

    item = Signal(object)
    done = Signal(object, str)  # (result or None, "" or an error message)

    def __init__(self, fn: JobFunction, name: str, *, on_cancel: Callable[[], None] | None = None,
                 torch_threads: bool = True):
        super().__init__()
        self.name = name
        self._cancelled = False
        self._started = self._ended = False
        self._on_cancel = on_cancel
        self._result: tuple = (None, "")
        self.thread = new_thread(name)
        self.runner = _Runner(fn, lambda: self._cancelled, torch_threads)
        self.runner.moveToThread(self.thread)
        self.thread.started.connect(self.runner.run)
        self.runner.item.connect(self._item)
        self.runner.finished.connect(self._finished)
        self.thread.finished.connect(self._cleanup)

    def start(self) -> "Job":
        _running.add(self)
        self._started = True
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled = True
        if self._on_cancel is not None:
            self._on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def running(self) -> bool:
        return self._started and not self._ended

    def wait(self, ms: int = 60_000) -> bool:
        """Block until the thread ends (shutdown, tests); True if it ended. ``done`` follows on the event loop."""
        return self.thread.wait(ms) if self.running else True

    @Slot(object)
    def _item(self, x) -> None:
        if not self._cancelled:
            self.item.emit(x)

    @Slot(object, str)
    def _finished(self, result, error: str) -> None:
        self._result = (result, error)

    @Slot()
    def _cleanup(self) -> None:
        self._ended = True
        self.runner.deleteLater()
        self.thread.deleteLater()
        QTimer.singleShot(0, lambda: _running.discard(self))  # released after this slot, never inside it
        self.done.emit(*self._result)


class Jobs(QObject):
    """The jobs one owner runs; ``bool(jobs)`` while any runs. ``start(...)`` returns None once closed."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: dict[Job, Callable[[Any, str], None] | None] = {}  # running job -> its on_done
        self.closed = False
        _sets.add(self)

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self):
        return iter(list(self._jobs))

    def start(self, fn: JobFunction, name: str, on_item: Callable[[Any], None] | None = None,
              on_done: Callable[[Any, str], None] | None = None, **options) -> Job | None:
        """Run ``fn(emit, cancelled)`` as a :class:`Job`: ``on_item(x)`` for each item, ``on_done(result,
        error)`` once its thread has ended (both on the GUI thread). ``options`` go to :class:`Job`."""
        if self.closed:
            return None
        job = Job(fn, name, **options)
        if on_item is not None:
            job.item.connect(on_item)
        job.done.connect(self._done)  # a slot of this object: nothing arrives once it is gone
        self._jobs[job] = on_done
        return job.start()

    @Slot(object, str)
    def _done(self, result, error: str) -> None:
        on_done = self._jobs.pop(self.sender(), None)
        if on_done is not None:
            on_done(result, error)

    def cancel(self) -> None:
        for job in list(self._jobs):
            job.cancel()

    def close(self) -> None:
        """Cancel every running job and start no new one."""
        self.closed = True
        self.cancel()

    def wait(self, ms: int = 30_000) -> bool:
        return _wait_all(list(self._jobs), ms)

    def cancel_and_wait(self, ms: int = 30_000) -> bool:
        self.cancel()
        return self.wait(ms)


def _wait_all(jobs: list[Job], ms: int) -> bool:
    deadline = time.monotonic() + ms / 1000
    ended = True
    for job in jobs:
        ended = job.wait(max(0, int((deadline - time.monotonic()) * 1000))) and ended
    return ended


def stop_everything(ms: int = 30_000) -> bool:
    """The app is closing: close every set of jobs, cancel every running job (all at once, so they stop
    together), then wait for each thread to end. True if all ended within ``ms``; no thread is destroyed
    while it runs."""
    for jobs in list(_sets):
        jobs.closed = True
    running = [job for job in _running if job.running]
    for job in running:
        job.cancel()
    return _wait_all(running, ms)
