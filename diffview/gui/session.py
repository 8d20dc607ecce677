"""The application session: what the app has open, and no widgets.

:class:`AppSession` holds the dataset with its report and preview, the schedule, the run or diffusers
model that is open, and the training session (the training process and the controller that relays it). It changes
them when asked (load data, open a run, train) and says what changed with signals; the main window and
the views observe those signals and never read each other. What the user has chosen comes in through
``config``, a callable returning a fresh :class:`TrainConfig` (in the app, the settings panel's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from diffview.core.data.source import load_source, source_kind
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle, PointShape
from diffview.core.runs.open import run_classes
from diffview.core.schedule import make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.process import TrainingProcess
from diffview.gui.controller import TrainingController
from diffview.gui.run_loader import RunOpener, WeightSnapshots, snapshot
from diffview.gui.workers.jobs import Deferred, Jobs

RUNS_ROOT = Path.home() / "diffview-runs"


class AppSession(QObject):
    """The dataset, schedule, open run and training session of the app, with a signal for each change."""

    message = Signal(str, str)  # (level: "info" | "warning" | "error", text), the controller's too
    data_changed = Signal(str)  # the source now loaded: dataset, report and preview hold it
    schedule_changed = Signal(object)  # the NoiseSchedule every view shows
    model_changed = Signal(object)  # the LoadedRun now open (a diffview run or a diffusers model), or None
    run_opened = Signal(object)  # an OpenedRun of diffview's: its logged metrics and preview grids
    opening = Signal(str)  # a run folder is opening on a worker: Train waits until it is open
    trainable_changed = Signal(bool)  # whether Train may train (not while a diffusers model is open)
    run_status = Signal(str)  # one line on the run folder: "run: …", "opening …", "no run folder"
    history_reset = Signal(int)  # the training history starts over, with T timesteps
    training_started = Signal(object)  # the TrainingProcess, now started
    training_finished = Signal(object)  # the DoneEvent

    def __init__(self, config: Callable[[], TrainConfig] = TrainConfig, runs_root: Path = RUNS_ROOT,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.config = config
        self.runs_root = Path(runs_root)
        self.dataset = self.report = self.preview = self.schedule = None
        self.trainer: TrainingProcess | None = None  # the run training now, or the last one
        self.loaded_run = None
        self.run_dir: Path | None = None
        self.train_threads: int | None = None  # the training process's torch threads; None: one per core, as the CLI
        self.tasks = Jobs(self)  # the data loads under way
        self._load_id = 0
        self.controller = TrainingController(self)
        self.controller.message.connect(self.message)
        self.controller.state_changed.connect(self._state_changed)
        self.controller.finished.connect(self._training_finished)
        self.opener = RunOpener(self)  # opening a run happens on a worker, and so does copying live weights
        self.opener.progress.connect(lambda text: self.run_status.emit(f"opening {self.opener.path}: {text}…"))
        self.opener.opened.connect(self._run_opened)
        self.opener.failed.connect(self._open_failed)
        self.snapshots = WeightSnapshots(self)
        self.snapshots.ready.connect(lambda label: self.message.emit("info", f"Copied the weights of {label}."))

    @property
    def training(self) -> bool:
        return self.controller.running

    @property
    def can_train(self) -> bool:
        """False while a diffusers model is open: diffview samples from those but does not train them."""
        return self.loaded_run is None or self.loaded_run.config is not None

    # ------------------------------------------------------------------ data and schedule
    def load_source(self, source: str, *, keep_model: bool = False) -> None:
        """Load a built-in dataset or a folder off the GUI thread, then show it everywhere.

        Choosing data while a diffusers model is open closes the model, so Train trains a new one
        (``keep_model`` keeps it: the model's own request for images to noise)."""
        if self.controller.running:
            return
        if not keep_model and self.loaded_run is not None and self.loaded_run.config is None:
            self.message.emit("info", f"Closed the diffusers model {self.loaded_run.root}; Train trains a new "
                                      f"model on {source}.")
            self.loaded_run = None
            self.model_changed.emit(None)
            self.trainable_changed.emit(True)
            self.update_schedule()
        cfg = self.config()
        channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
        self._load_id = load_id = self._load_id + 1  # only the newest load is shown
        self.message.emit("info", f"Loading {source}…")
        def load():  # the preview too: a streamed folder decodes each of its files
            if source_kind(source) == "points":
                raise ValueError(f"{source} is a set of 2D points: open it in the 2D diffusion tab.")
            data, report = load_source(source, image_size=cfg.image_size, channels=channels)
            return data, report, data.preview(100).numpy()

        self._run_task(load,
                       lambda result: self._dataset_loaded(source, result, load_id),
                       lambda err: self.message.emit("error", err))

    def _dataset_loaded(self, source: str, result, load_id: int) -> None:
        if load_id != self._load_id:
            return
        self.dataset, self.report, self.preview = result
        self.data_changed.emit(source)
        self.message.emit("info", self.report.summary().splitlines()[0])
        for w in self.report.warnings:
            self.message.emit("warning", w)

    def update_schedule(self) -> None:
        cfg = self.config()
        try:
            schedule = make_schedule(cfg.schedule, cfg.timesteps)
        except ValueError as e:
            self.message.emit("error", str(e))
            return
        self._show_schedule(schedule)

    def _show_schedule(self, schedule) -> None:
        self.schedule = schedule
        self.schedule_changed.emit(schedule)

    def _run_task(self, fn, on_done, on_error) -> None:
        self.tasks.start(lambda emit, cancelled: fn(), "diffview-task",
                         on_done=lambda result, error: on_error(error) if error else on_done(result))

    # ------------------------------------------------------------------ training
    def start_training(self) -> None:
        if self.controller.running:
            return
        if self.loaded_run is not None and self.loaded_run.config is None:
            self.message.emit("error", f"{self.loaded_run.root.name} is a diffusers model: diffview samples from "
                                       "it but does not train it further. Open a diffview run to train.")
            return
        if self.opener.busy:
            self.message.emit("error", f"Still opening {self.opener.path}: Train resumes it once it is open.")
            return
        if self.dataset is None and self.loaded_run is None:
            self.message.emit("error", "No dataset is loaded yet: choose one in Settings ▸ Data.")
            return
        try:
            if self.loaded_run is not None:
                cfg = self.loaded_run.config
                cfg.steps = max(cfg.steps, self.config().steps)
                cfg.threads = self.train_threads
                cfg.tensorboard = self.config().tensorboard  # one of the settings a resume may change
                # The trainer loads the run's own data with the run's settings (flip, size, channels) in its
                # process, never the one the app happens to show.
                self.trainer = TrainingProcess(cfg, self.loaded_run.root, resume=True)
                self.run_dir = self.loaded_run.root
                self.message.emit("info", f"Resuming {self.run_dir.name} on its own data, {cfg.dataset}.")
            else:
                cfg = self.config()
                cfg.threads = self.train_threads
                name = Path(cfg.dataset).name or "run"
                self.run_dir = self.runs_root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
                self.trainer = TrainingProcess(cfg, self.run_dir)  # it loads the data as this app did, in its process
                self.history_reset.emit(cfg.timesteps)
            self.controller.start(self.trainer)
        except ValueError as e:
            self.message.emit("error", str(e))
            return
        except OSError as e:  # the system refused a new process (too many, out of memory)
            self.message.emit("error", f"Could not start the training process: {e}")
            return
        self.run_status.emit(f"run: {self.run_dir}")
        self.training_started.emit(self.trainer)

    def toggle_pause(self) -> None:
        if self.controller.state == "running":
            self.controller.pause()
        elif self.controller.state == "paused":
            self.controller.resume()

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        if state == "stopping":
            self.message.emit("info", "Stopping after this step and writing a checkpoint…")

    @Slot(object)
    def _training_finished(self, done) -> None:
        if self.loaded_run is not None:  # training it made it the live run: the views sample the trainer now
            self.loaded_run = None
            self.model_changed.emit(None)
        self.training_finished.emit(done)

    # ------------------------------------------------------------------ runs and models
    def open_run_folder(self, path: str) -> None:
        """Open a run on a worker (a second open supersedes the first); Train waits until it is open."""
        if self.controller.running:
            self.message.emit("error", "Stop training before opening another run.")
            return
        self.opener.open(str(path))
        self.opening.emit(str(path))
        self.run_status.emit(f"opening {path}…")
        self.message.emit("info", f"Opening {path}…")

    def _open_failed(self, message: str) -> None:
        self.message.emit("error", message)
        self.run_status.emit(f"run: {self.run_dir}" if self.run_dir else "no run folder")
        self.trainable_changed.emit(self.can_train)

    def _run_opened(self, opened) -> None:
        run = opened.run
        self.loaded_run = run
        self.trainer = None
        self.run_dir = run.root
        self.run_status.emit(f"run: {run.root}")
        self.trainable_changed.emit(run.config is not None)
        self.model_changed.emit(run)  # the settings show the run's config, or a diffusers model's schedule
        if run.config is None:
            self._opened_diffusers(run)
            return
        self.update_schedule()
        self.history_reset.emit(run.config.timesteps)
        self.run_opened.emit(opened)
        self.message.emit("info", f"Opened {run.root} at step {run.step:,}. Train resumes it; Sample draws from "
                                  "it.")
        self.load_source(run.config.dataset)

    def _opened_diffusers(self, run) -> None:
        """A diffusers model: its schedule in the views, nothing to train or replay."""
        model = run.handle
        self._show_schedule(model.schedule)
        self.history_reset.emit(model.schedule.timesteps)
        self.message.emit("info", f"Opened the diffusers model {run.root} ({model.schedule.name} schedule, "
                                  f"T = {model.schedule.timesteps}, {model.objective} objective). Sample draws from "
                                  "it; diffview does not train diffusers models further, so Train is off.")
        if self.dataset is None:  # the forward view needs images; a built-in of the model's channel count
            self.load_source("shapes" if model.shape.channels == 3 else "digits", keep_model=True)

    def model_source(self, ema: bool = True, deferred: bool = False) -> ModelHandle | None:
        """What the views sample from: the live trainer's weights, copied on a worker (``deferred``: the handle's
        model is pending, taken by the view's own worker, else the newest copy, None before the first), or the
        opened run's (both weights in memory)."""
        t = self.trainer
        if t is not None and t.started is not None and t.step > 0:
            data = t.started
            if deferred:
                model, label = Deferred(lambda: snapshot(t, ema)), f"the training run at step {t.step:,}"
            else:
                got = self.snapshots.get(t, ema)
                if got is None:
                    self.message.emit("info", "Copying the training run's weights off the GUI thread; run again "
                                              "in a moment.")
                    return None
                model, label = got
            shape = ImageShape(data.channels, data.image_size) if data.kind == "images" else PointShape(data.dim)
            assert t.schedule is not None  # made when the child started
            return ModelHandle(model, t.schedule, t.config.objective, shape, FromTraining(t.step), label,
                               class_names=run_classes(t.config))
        if self.loaded_run is not None:
            return self.loaded_run.handle_for(ema)
        return None

    def model_class_names(self) -> tuple[str, ...] | None:
        """The classes of the model ``model_source`` gives (() for an unconditional one, None for no model),
        from the configs alone: nothing is copied, so the GUI thread may ask at any time."""
        t = self.trainer
        if t is not None and (t.started is not None or self.training):
            if not t.config.conditional:
                return ()
            # a new run records the data's names once its process starts; until then they are its data's
            if t.started is not None:
                names = t.started.class_names
            else:
                names = t.config.class_names or (self.dataset.class_names if self.dataset is not None else ())
            return tuple(str(n) for n in names)
        if self.loaded_run is not None:
            return tuple(self.loaded_run.handle.class_names)
        return None

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Cancel and wait for every worker the session started (training must have stopped first)."""
        self.opener.cancel_and_wait()
        self.snapshots.wait()
        self.tasks.cancel_and_wait()
