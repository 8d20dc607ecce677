"""Run one function off the GUI thread and deliver its result (or its error message) back on it; and
:class:`Deferred`, a value that a worker computes when it starts (a weight snapshot, say)."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from diffview.gui.workers.threads import new_thread


class Deferred:
    """A value to compute on the worker that uses it, never on the GUI thread: ``Deferred(fn).resolve()``."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn

    def resolve(self) -> Any:
        return self.fn()


def resolve(value: Any) -> Any:
    """``value``, or what a :class:`Deferred` computes (call it on a worker)."""
    return value.resolve() if isinstance(value, Deferred) else value


class _Runner(QObject):
    done = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[[], Any]):
        super().__init__()
        self.fn = fn

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as e:  # reported to the user as text
            self.failed.emit(str(e) or type(e).__name__)
        else:
            self.done.emit(result)


class BackgroundTask(QObject):
    """``BackgroundTask(fn, on_done, on_error).start()``; keep a reference until ``finished``."""

    finished = Signal()

    def __init__(self, fn: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[str], None],
                 parent: QObject | None = None, name: str = "diffview-task"):
        super().__init__(parent)
        self.thread = new_thread(name)
        self.runner = _Runner(fn)
        self.runner.moveToThread(self.thread)
        self.on_done, self.on_error = on_done, on_error
        self.thread.started.connect(self.runner.run)
        # Slots of this object (which lives on the GUI thread) receive the results, so the callbacks
        # run on the GUI thread; a plain callable connected directly would run on the worker thread.
        self.runner.done.connect(self._done)
        self.runner.failed.connect(self._failed)
        # quit() is thread-safe and called directly from the worker: queued, it would wait for the GUI
        # thread, and a GUI thread blocked in wait() (closing the window) would wait out its timeout.
        self.runner.done.connect(self.thread.quit, Qt.DirectConnection)
        self.runner.failed.connect(self.thread.quit, Qt.DirectConnection)
        self.thread.finished.connect(self._cleanup)

    def start(self) -> "BackgroundTask":
        self.thread.start()
        return self

    def wait(self, ms: int = 60_000) -> bool:
        return self.thread.wait(ms)

    @Slot(object)
    def _done(self, result) -> None:
        self.on_done(result)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.on_error(message)

    @Slot()
    def _cleanup(self) -> None:
        self.runner.deleteLater()
        self.thread.deleteLater()
        self.finished.emit()
