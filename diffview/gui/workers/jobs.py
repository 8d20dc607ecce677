"""One cancellable computation off the GUI thread, with progress items on the way and a result at the end.

``Job(fn, name)`` runs ``fn(emit, cancelled)`` on a worker QThread: ``emit(x)`` sends x to the
``item`` signal (delivered on the GUI thread), ``cancelled()`` is True once ``cancel()`` was called.
``done(result, error)`` fires on the GUI thread after the thread has stopped, so a finished job
never leaves a thread running."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from diffview.gui.workers.threads import new_thread, use_worker_torch_threads


class _Worker(QObject):
    item = Signal(object)
    finished = Signal(object, str)

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.cancelled = False

    @Slot()
    def run(self) -> None:
        use_worker_torch_threads()
        try:
            result = self.fn(self.item.emit, lambda: self.cancelled)
        except Exception as e:  # shown to the user as text, never a traceback
            self.finished.emit(None, str(e) or type(e).__name__)
        else:
            self.finished.emit(result, "")
        finally:
            # Quit from this thread itself: a queued quit would never arrive while the GUI thread
            # blocks in wait() (closing the window mid-computation).
            QThread.currentThread().quit()


class Job(QObject):
    item = Signal(object)
    done = Signal(object, str)  # (result or None, "" or an error message)

    def __init__(self, fn: Callable[[Callable[[Any], None], Callable[[], bool]], Any], name: str, parent=None):
        super().__init__(parent)
        self.thread = new_thread(name)
        self.worker = _Worker(fn)
        self.worker.moveToThread(self.thread)
        self._result: tuple = (None, "")
        self.thread.started.connect(self.worker.run)
        self.worker.item.connect(self._item)
        self.worker.finished.connect(self._finished)
        self.thread.finished.connect(self._cleanup)

    def start(self) -> "Job":
        self.thread.start()
        return self

    def cancel(self) -> None:
        self.worker.cancelled = True

    @property
    def cancelled(self) -> bool:
        return self.worker.cancelled

    def wait(self, ms: int = 60_000) -> bool:
        return self.thread.wait(ms)

    @Slot(object)
    def _item(self, x) -> None:
        if not self.worker.cancelled:
            self.item.emit(x)

    @Slot(object, str)
    def _finished(self, result, error: str) -> None:
        self._result = (result, error)

    @Slot()
    def _cleanup(self) -> None:
        self.worker.deleteLater()
        self.thread.deleteLater()
        self.done.emit(*self._result)
