"""The main window: settings on the left, one tab per view, a log panel and a status bar.

It owns the app's state (the dataset, the schedule, the trainer or the opened run) and wires the
views to it; the views only display what they are given.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import torch
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QTabWidget,
)

from diffview import __version__
from diffview.core.data.source import load_source, source_kind
from diffview.core.runs.open import is_run_folder
from diffview.core.schedule import make_schedule
from diffview.core.train.trainer import Trainer, describe_device, pick_device
from diffview.gui.controller import TrainingController
from diffview.gui.run_loader import RunOpener, RunsMixin, WeightSnapshots
from diffview.gui.settings_panel import SettingsPanel
from diffview.gui.views.analysis_tabs import add_analysis_tabs
from diffview.gui.views.data import DataView
from diffview.gui.views.forward import ForwardView
from diffview.gui.views.lab2d import Lab2DView
from diffview.gui.views.sampling import SamplingView
from diffview.gui.views.schedule import ScheduleView
from diffview.gui.views.training import TrainingView
from diffview.gui.workers.jobs import Jobs, stop_everything
from diffview.gui.workers.threads import collect_garbage_on_gui_thread

RUNS_ROOT = Path.home() / "diffview-runs"


class MainWindow(RunsMixin, QMainWindow):
    def __init__(self, source: str | None = None, runs_root: Path = RUNS_ROOT):
        super().__init__()
        # The GUI thread's own tensor work (noising 64 small images, a histogram) is tiny. With more than
        # one torch thread it starts its own OpenMP team, which slowed the training thread's team by a
        # quarter (benchmarks/README.md); the trainer sets its thread count in its own thread.
        torch.set_num_threads(1)
        collect_garbage_on_gui_thread()  # never on a worker: see threads.py
        self.setWindowTitle(f"diffview {__version__}")
        self.resize(1400, 880)
        self.setAcceptDrops(True)
        self.runs_root = Path(runs_root)
        self.dataset = self.report = self.schedule = None
        self.trainer: Trainer | None = None
        self.loaded_run = None
        self.run_dir: Path | None = None
        self._tasks = Jobs(self)  # loading data
        self._close_when_stopped = False

        self.settings = SettingsPanel()
        self.data_view = DataView()
        self.forward_view = ForwardView()
        self.schedule_view = ScheduleView()
        self.training_view = TrainingView()
        self.sampling_view = SamplingView()
        self.sampling_view.model_source = lambda ema=True: self.model_source(ema, deferred=True)
        self.opener = RunOpener(self)  # opening a run happens on a worker, and so does copying live weights
        self.opener.progress.connect(lambda text: self.run_label.setText(f"opening {self.opener.path}: {text}…"))
        self.opener.opened.connect(self._run_opened)
        self.opener.failed.connect(self._open_failed)
        self.snapshots = WeightSnapshots(self)
        self.snapshots.ready.connect(lambda label: self.show_message("info", f"Copied the weights of {label}."))
        self.lab2d_view = Lab2DView(self.runs_root)
        self.lab2d_view.message.connect(self.show_message)
        self.tabs = QTabWidget()
        for view, name in ((self.data_view, "Data"), (self.forward_view, "Forward process"),
                           (self.schedule_view, "Schedule"), (self.training_view, "Training"),
                           (self.sampling_view, "Sampling"), (self.lab2d_view, "2D diffusion")):
            self.tabs.addTab(view, name)
        self.tabs.setCurrentWidget(self.forward_view)
        self.setCentralWidget(self.tabs)

        scroll = QScrollArea()
        scroll.setWidget(self.settings)
        scroll.setWidgetResizable(True)
        left = QDockWidget("Settings")
        left.setObjectName("settings")
        left.setWidget(scroll)
        left.setFeatures(QDockWidget.DockWidgetMovable)
        self.addDockWidget(Qt.LeftDockWidgetArea, left)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        bottom = QDockWidget("Log")
        bottom.setObjectName("log")
        bottom.setWidget(self.log)
        self.addDockWidget(Qt.BottomDockWidgetArea, bottom)
        self.resizeDocks([bottom], [120], Qt.Vertical)
        self.log_dock = bottom

        self.device_label, self.memory_label, self.run_label = QLabel(), QLabel(), QLabel("no run folder")
        for w in (self.run_label, self.memory_label, self.device_label):
            self.statusBar().addPermanentWidget(w)
        self._update_device()
        self.memory_timer = QTimer(self)
        self.memory_timer.timeout.connect(self._update_memory)
        self.memory_timer.start(2000)
        self._update_memory()

        self.controller = TrainingController(self)
        self.controller.steps.connect(self.training_view.add_steps)
        self.controller.preview.connect(self.training_view.add_preview)
        self.controller.message.connect(self.show_message)
        self.controller.state_changed.connect(self._state_changed)
        self.controller.finished.connect(self._training_finished)
        self.sampling_view.message.connect(self.show_message)
        self.settings.dataset_changed.connect(self.load_source)
        self.settings.open_folder_requested.connect(self.open_folder_dialog)
        self.settings.schedule_changed.connect(self.update_schedule)
        self.settings.image_size.currentTextChanged.connect(lambda _: self.load_source(self.settings.dataset_source()))
        self.settings.channels.currentTextChanged.connect(lambda _: self.load_source(self.settings.dataset_source()))
        self.settings.train_button.clicked.connect(self.start_training)
        self.settings.pause_button.clicked.connect(self.toggle_pause)
        self.settings.stop_button.clicked.connect(self.controller.stop)
        self.forward_view.timestep_changed.connect(self.schedule_view.set_timestep)
        self.schedule_view.timestep_changed.connect(self.forward_view.set_timestep)
        # One t for the forward process on images and on points: either slider moves the other.
        self.forward_view.timestep_changed.connect(self.lab2d_view.set_timestep)
        self.lab2d_view.timestep.changed.connect(self.forward_view.set_timestep)
        self.analysis_views = add_analysis_tabs(self)  # Bound, Samplers, Memorisation, Noise & denoise
        self.tabs.currentChanged.connect(
            lambda _: self.settings.show_for_points(self.tabs.currentWidget() is self.lab2d_view))
        self._make_menus()

        self.update_schedule()
        if source and is_run_folder(source):
            QTimer.singleShot(0, lambda: self.open_run_folder(source))
        else:
            self.load_source(source or "digits")

    # ------------------------------------------------------------------ menus and shortcuts
    def _make_menus(self) -> None:
        def action(menu, text, slot, shortcut=None, tip=None):
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setStatusTip(tip)
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        file = self.menuBar().addMenu("&File")
        action(file, "Open &Folder…", self.open_folder_dialog, "Ctrl+O", "Train on a folder of images")
        action(file, "Open &Run…", self.open_run_dialog, "Ctrl+Shift+O",
               "Open a run folder written by diffview, or a diffusers model folder")
        file.addSeparator()
        action(file, "&Quit", self.close, QKeySequence.Quit)
        train = self.menuBar().addMenu("&Train")
        action(train, "&Train", self.start_training, "Ctrl+T")
        action(train, "&Pause / Resume", self.toggle_pause, "Ctrl+P")
        action(train, "&Stop", self.controller.stop, "Ctrl+.")
        action(train, "Sa&mple", self._sample_now, "Ctrl+R")
        view = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):  # Ctrl+1 … Ctrl+9, then Ctrl+0 for the tenth
            key = f"Ctrl+{(i + 1) % 10}" if i < 10 else None
            action(view, self.tabs.tabText(i), lambda _=False, i=i: self.tabs.setCurrentIndex(i), key)
        view.addAction(self.log_dock.toggleViewAction())
        help_ = self.menuBar().addMenu("&Help")
        action(help_, "&About diffview", self._about)

    # ------------------------------------------------------------------ messages and status
    @Slot(str, str)
    def show_message(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        prefix = {"warning": "Warning: ", "error": "Error: "}.get(level, "")
        self.log.appendPlainText(f"[{stamp}] {prefix}{text}")
        self.statusBar().showMessage(prefix + text.splitlines()[0], 8000 if level == "info" else 15000)

    def _update_device(self, device: torch.device | None = None) -> None:
        device = device or pick_device("auto")
        # Training threads, not the GUI thread's single one (see __init__).
        self.device_label.setText(describe_device(device, self.settings.config().threads or os.cpu_count()))

    def _update_memory(self) -> None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        text = f"peak memory {rss:,.0f} MB"
        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.memory_allocated() / 2**20:,.0f} MB"
        self.memory_label.setText(text)

    # ------------------------------------------------------------------ data and schedule
    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of images")
        if path:
            self.load_source(path)
        else:
            self.settings.dataset.setCurrentText(self.settings.dataset_source()
                                                 if self.dataset is not None else "digits")

    def load_source(self, source: str, *, keep_model: bool = False) -> None:
        """Load a built-in dataset or a folder off the GUI thread, then show it everywhere.

        Choosing data while a diffusers model is open closes the model, so Train trains a new one
        (``keep_model`` keeps it: the model's own request for images to noise)."""
        if self.controller.running:
            return
        if not keep_model and self.loaded_run is not None and self.loaded_run.config is None:
            self.show_message("info", f"Closed the diffusers model {self.loaded_run.root}; Train trains a new "
                                      f"model on {source}.")
            self.loaded_run = None
            self._allow_training(True)
            self.update_schedule()
        cfg = self.settings.config()
        channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
        self._load_id = load_id = getattr(self, "_load_id", 0) + 1  # only the newest load is shown
        self.show_message("info", f"Loading {source}…")
        def load():  # the preview too: a streamed folder decodes each of its files
            if source_kind(source) == "points":
                raise ValueError(f"{source} is a set of 2D points: open it in the 2D diffusion tab.")
            data, report = load_source(source, image_size=cfg.image_size, channels=channels)
            return data, report, data.preview(100).numpy()

        self._run_task(load,
                       lambda result: self._dataset_loaded(source, result, load_id),
                       lambda err: self.show_message("error", err))

    def _dataset_loaded(self, source: str, result, load_id: int) -> None:
        if load_id != self._load_id:
            return
        self.dataset, self.report, preview = result
        if Path(source).exists():
            self.settings.set_folder(source)
        else:
            self.settings.dataset.setCurrentText(source)
        self.data_view.set_dataset(preview, self.report)
        self.forward_view.set_images(preview)
        self.show_message("info", self.report.summary().splitlines()[0])
        for w in self.report.warnings:
            self.show_message("warning", w)

    def update_schedule(self) -> None:
        cfg = self.settings.config()
        try:
            schedule = make_schedule(cfg.schedule, cfg.timesteps)
        except ValueError as e:
            self.show_message("error", str(e))
            return
        self._show_schedule(schedule)

    def _show_schedule(self, schedule) -> None:
        self.schedule = schedule
        self.forward_view.set_schedule(schedule)
        self.schedule_view.set_schedule(schedule)
        self.schedule_view.set_timestep(self.forward_view.t)
        self.sampling_view.set_timesteps(schedule.timesteps)
        self.lab2d_view.set_schedule(schedule)
        if not self.controller.running:
            self.training_view.timesteps = schedule.timesteps

    # ------------------------------------------------------------------ training
    def start_training(self) -> None:
        if self.controller.running:
            return
        if self.loaded_run is not None and self.loaded_run.config is None:
            self.show_message("error", f"{self.loaded_run.root.name} is a diffusers model: diffview samples from it "
                                       "but does not train it further. Open a diffview run to train.")
            return
        if self.opener.busy:
            self.show_message("error", f"Still opening {self.opener.path}: Train resumes it once it is open.")
            return
        if self.dataset is None and self.loaded_run is None:
            self.show_message("error", "No dataset is loaded yet: choose one in Settings ▸ Data.")
            return
        try:
            if self.loaded_run is not None:
                cfg = self.loaded_run.config
                cfg.steps = max(cfg.steps, self.settings.steps.value())
                # No dataset passed: the trainer loads the run's own data with the run's settings (flip, size,
                # channels) on its thread, never the one the app happens to show.
                self.trainer = Trainer(cfg, self.loaded_run.root, resume=True)
                self.run_dir = self.loaded_run.root
                self.show_message("info", f"Resuming {self.run_dir.name} on its own data, {cfg.dataset}.")
            else:
                cfg = self.settings.config()
                cfg.threads = None
                name = Path(cfg.dataset).name or "run"
                self.run_dir = self.runs_root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
                self.trainer = Trainer(cfg, self.run_dir, dataset=self.dataset)
                self.training_view.reset(cfg.timesteps)
        except ValueError as e:
            self.show_message("error", str(e))
            return
        self.run_label.setText(f"run: {self.run_dir}")
        self.tabs.setCurrentWidget(self.training_view)
        self.controller.start(self.trainer)

    def toggle_pause(self) -> None:
        if self.controller.state == "running":
            self.controller.pause()
        elif self.controller.state == "paused":
            self.controller.resume()

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        self.settings.set_state(state)
        if state == "stopping":
            self.show_message("info", "Stopping after this step and writing a checkpoint…")

    @Slot(object)
    def _training_finished(self, done) -> None:
        self.training_view.redraw()
        if self.trainer is not None and self.trainer.model is not None:
            self._update_device(self.trainer.device)
        self.loaded_run = None
        if self._close_when_stopped:
            self.close()

    def _sample_now(self) -> None:
        self.tabs.setCurrentWidget(self.sampling_view)
        self.sampling_view.start()

    # ------------------------------------------------------------------ drag and drop, closing
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            path = paths[0]
            if is_run_folder(path):
                self.open_run_folder(path)
            else:
                self.load_source(path)

    def closeEvent(self, event) -> None:
        if self.controller.running:
            self._close_when_stopped = True
            self.controller.stop()
            self.show_message("info", "Closing: stopping training and writing a checkpoint first…")
            event.ignore()
            return
        stop_everything()  # every job in the app (the 2D tab's training too) cancelled, then waited for
        event.accept()

    def _run_task(self, fn, on_done, on_error) -> None:
        self._tasks.start(lambda emit, cancelled: fn(), "diffview-task",
                          on_done=lambda result, error: on_error(error) if error else on_done(result))

    def _about(self) -> None:
        QMessageBox.about(self, "About diffview",
                          f"<b>diffview {__version__}</b><p>Train a denoising diffusion model and watch the "
                          "mathematics at work: DDPM (Ho et al. 2020), improved DDPM (Nichol &amp; Dhariwal 2021), "
                          "DDIM (Song et al. 2021).</p>")
