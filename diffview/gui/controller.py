"""The training controller: relays one training run's events to the GUI thread as Qt signals.

Every run of the app, the 2D tab's too, trains in a child process
(:class:`~diffview.core.train.process.TrainingProcess`): a :class:`~diffview.gui.workers.jobs.Job` relays the
events the child sends. Step events arrive far faster than a screen can show them, so the relay batches them
and emits at most every ``BATCH_SECONDS``; every other event goes out at once. Only CPU copies of small
arrays cross to the GUI thread. Stop and pause are messages the child's trainer checks between steps, so the
GUI thread never waits on training; cancelling the job (closing the app) stops it the same way. The child
sets its own torch thread count (``cfg.threads``) and priority.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal, Slot

from diffview.core.train.process import TrainingProcess
from diffview.core.train.trainer import (
    CheckpointEvent,
    DoneEvent,
    LogEvent,
    PreviewEvent,
    StepEvent,
    WarningEvent,
)
from diffview.gui.workers.jobs import Job

BATCH_SECONDS = 0.1


def _relay(process: TrainingProcess, emit) -> None:
    """The relay job: the child's events as they arrive, emitted in lists, steps batched, until it ends (its
    last list holds the DoneEvent, which ``process.read`` writes itself if the child died without one)."""
    pending: list = []
    last = time.monotonic()
    while not process.finished:
        events = process.read(timeout=BATCH_SECONDS)
        pending += events
        now = time.monotonic()
        if pending and (now - last >= BATCH_SECONDS or not all(isinstance(e, StepEvent) for e in events)):
            emit(pending)
            pending, last = [], now
    if pending:
        emit(pending)


class TrainingController(QObject):
    """Owns one training run at a time; the views listen to its signals."""

    started = Signal()
    steps = Signal(list)  # list[StepEvent], batched
    preview = Signal(object)  # PreviewEvent
    checkpoint = Signal(object)  # CheckpointEvent
    message = Signal(str, str)  # (level: "info" | "warning" | "error", text)
    finished = Signal(object)  # DoneEvent
    state_changed = Signal(str)  # "idle", "running", "paused", "stopping"

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._job: Job | None = None
        self.trainer: TrainingProcess | None = None
        self.state = "idle"
        self._done: DoneEvent | None = None

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, trainer: TrainingProcess) -> None:
        """Train: start the process and relay its events."""
        if self.running:
            raise RuntimeError("a training run is already in progress")
        self.trainer = trainer
        trainer.start()
        self._job = Job(lambda emit, cancelled: _relay(trainer, emit), "diffview-training", on_cancel=self.stop,
                        torch_threads=False)
        self._job.item.connect(self._on_batch)
        self._job.done.connect(self._on_job_done)
        self._set_state("running")
        self._job.start()
        self.started.emit()

    def pause(self) -> None:
        if self.trainer and self.state == "running":
            self.trainer.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self.trainer and self.state == "paused":
            self.trainer.unpause()
            self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop after the current step (it writes a checkpoint when it has a run folder)."""
        if self.trainer and self.state in ("running", "paused"):
            self.trainer.stop()
            self._set_state("stopping")

    def terminate(self) -> None:
        """End a training process now, without its checkpoint (closing when a stop takes too long); the run
        then finishes as failed, saying how it ended."""
        if self.trainer is not None and self.running:
            self.trainer.terminate()

    def wait(self, ms: int = 60_000) -> bool:
        """Block until the worker thread ends (for shutdown and tests); True if it ended."""
        return self._job is None or self._job.wait(ms)

    @Slot(list)
    def _on_batch(self, events: list) -> None:
        steps = [e for e in events if isinstance(e, StepEvent)]
        if steps:
            self.steps.emit(steps)
        for ev in events:
            if isinstance(ev, PreviewEvent):
                self.preview.emit(ev)
            elif isinstance(ev, LogEvent):
                self.message.emit("info", ev.message)
            elif isinstance(ev, WarningEvent):
                self.message.emit("warning", ev.message)
            elif isinstance(ev, DoneEvent):
                self.message.emit("error" if ev.reason == "failed" else "info", ev.message)
                self._done = ev
            elif isinstance(ev, CheckpointEvent):
                self.checkpoint.emit(ev)
                self.message.emit("info", f"Checkpoint at step {ev.step}: {ev.path}")

    @Slot(object, str)
    def _on_job_done(self, _result, _error: str) -> None:  # the relay's last list holds the DoneEvent
        done = self._done or DoneEvent("stopped", self.trainer.step if self.trainer else 0)
        self._done = None
        self._job = None
        self._set_state("idle")
        self.finished.emit(done)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)
