"""Opening a run, and copying the training run's weights, off the GUI thread.

:class:`RunOpener` reads a run's checkpoint once (the EMA and the raw weights, so switching between
them never reads it again), or imports diffusers and loads a diffusers folder, then reads the run's
metrics and decodes every preview PNG, all on a worker (a :class:`~diffview.gui.workers.jobs.Job`),
reporting progress.
A second ``open`` supersedes the first: the first is cancelled and its result dropped.

:class:`WeightSnapshots` keeps the newest copy of the training run's weights for the views that need a
model at once; ``TrainingProcess.snapshot_model`` waits for the training process to copy them between two
of its steps, so it runs on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from diffview.core.io.checkpoint import RunDir
from diffview.core.runs.handle import ImageShape, LoadedRun
from diffview.core.runs.open import open_run
from diffview.core.train.events import PreviewEvent
from diffview.gui.workers.jobs import Job, Jobs

if TYPE_CHECKING:
    from diffview.core.train.process import TrainingProcess


@dataclass
class OpenedRun:
    run: LoadedRun
    metrics: list[dict] = field(default_factory=list)  # the metric lines, as logged
    previews: list[PreviewEvent] = field(default_factory=list)  # every preview grid, decoded


def read_run(path: str, emit=lambda _: None, cancelled=lambda: False) -> OpenedRun | None:
    """Everything the app shows of a run folder (or a diffusers folder); None once ``cancelled()``."""
    from PIL import Image

    emit("reading the checkpoint")
    run = open_run(path, raw_too=True)
    if cancelled() or run.config is None:
        return None if cancelled() else OpenedRun(run)
    folder = RunDir(run.root)
    opened = OpenedRun(run, folder.read_metrics())
    pngs = sorted(folder.samples.glob("step_*.png"))
    shape = run.handle.shape
    gray = isinstance(shape, ImageShape) and shape.channels == 1  # a 2D run's previews are RGB scatter plots
    for i, png in enumerate(pngs):
        if cancelled():
            return None
        emit(f"decoding preview {i + 1} of {len(pngs)}")
        try:
            with Image.open(png) as img:
                arr = np.asarray(img.convert("L" if gray else "RGB"))
                scale = img.info.get("guidance_scale")  # a conditional run's grid: one row per class, guided at S
        except OSError:
            continue
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        opened.previews.append(PreviewEvent(int(png.stem.split("_")[1]), arr.transpose(2, 0, 1)[None],
                                            run.config.preview_sampler, run.config.preview_steps, 0.0, str(png),
                                            guidance_scale=_number(scale)))
    return opened


def _number(text) -> float | None:
    """A PNG text chunk's number, or None (absent or not a number)."""
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


class RunOpener(QObject):
    """``open(path)``: ``progress(text)`` on the way, then ``opened(OpenedRun)`` or ``failed(message)``."""

    progress = Signal(str)
    opened = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs = Jobs(self)  # superseded ones too, until their thread ends
        self._current: Job | None = None
        self.path: str | None = None

    @property
    def busy(self) -> bool:
        """Opening a run (not once cancelled, by a second open or by the app closing)."""
        return self._current is not None and not self._current.cancelled

    def open(self, path: str) -> None:
        self.cancel()  # superseded: its result is dropped
        self.path = path
        job = None
        job = self._current = self._jobs.start(
            lambda emit, cancelled: read_run(path, emit, cancelled), "diffview-open-run",
            lambda text: self.progress.emit(text) if job is self._current else None,
            lambda result, error: self._done(job, result, error))

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()
            self._current = None

    def cancel_and_wait(self, ms: int = 30_000) -> None:
        self.cancel()
        self._jobs.wait(ms)

    def _done(self, job: Job, result, error: str) -> None:
        if job is not self._current:
            return
        self._current = None
        if error:
            self.failed.emit(error)
        elif result is not None:
            self.opened.emit(result)


def snapshot(training: TrainingProcess, ema: bool = True):
    """(a CPU copy of the training run's (EMA) model, its label with the step it belongs to); call on a worker:
    it waits for the training process to copy its weights between two steps. (The job it runs in sets the
    worker's torch threads: building the copy runs torch ops, not with a team of every core.)"""
    model, step = training.snapshot_model(ema=ema)
    return model, f"the training run at step {step:,}"


class WeightSnapshots(QObject):
    """The newest snapshot of a trainer's weights per ``ema``, refreshed on a worker when asked."""

    ready = Signal(str)  # a snapshot's label, when a view asked before there was one

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.trainer = None
        self._cache: dict[bool, tuple[int, object, str]] = {}  # ema -> (trainer step when asked, model, label)
        self._jobs = Jobs(self)
        self._asking: set[bool] = set()  # the ``ema`` values being copied now
        self._asked = False

    def get(self, trainer, ema: bool = True):
        """(model, label) of the newest snapshot of ``trainer``, or None; takes a new one if it is stale."""
        if trainer is not self.trainer:
            self.trainer, self._cache = trainer, {}
        cached = self._cache.get(ema)
        if cached is None or cached[0] < trainer.step:
            self.refresh(ema)
        self._asked = self._asked or cached is None
        return None if cached is None else cached[1:]

    def refresh(self, ema: bool = True) -> None:
        trainer = self.trainer
        if trainer is None or trainer.started is None or ema in self._asking:
            return
        step = trainer.step
        if self._jobs.start(lambda emit, cancelled: snapshot(trainer, ema), "diffview-snapshot",
                            on_done=lambda got, error: self._taken(trainer, ema, step, got, error)) is not None:
            self._asking.add(ema)

    def _taken(self, trainer, ema: bool, step: int, got, error: str) -> None:
        self._asking.discard(ema)
        if not error and trainer is self.trainer:
            self._cache[ema] = (step, *got)
            if self._asked:
                self._asked = False
                self.ready.emit(got[1])

    def wait(self, ms: int = 30_000) -> None:
        self._jobs.wait(ms)
