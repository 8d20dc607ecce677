"""The main window, the app's shell: settings on the left, one tab per view, a log panel, a status bar,
menus and drag and drop.

What the app has open (the dataset, the schedule, the run or model, the training session) lives in its
:class:`~diffview.gui.session.AppSession`; the window wires the session's signals to the views and the
settings, and the views observe the session, never each other.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import torch
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from diffview import __version__
from diffview.core.runs.open import is_run_folder
from diffview.core.train.trainer import describe_device, pick_device
from diffview.desktop import ICON
from diffview.gui.menus import make_menus
from diffview.gui.persistence import dialog_start, remember_folder
from diffview.gui.session import RUNS_ROOT, AppSession
from diffview.gui.settings_panel import SettingsPanel
from diffview.gui.tooltips import TYPES as TOOLTIP_TYPES
from diffview.gui.tooltips import apply_tooltips
from diffview.gui.views.algorithm_links import link_algorithms
from diffview.gui.views.analysis_tabs import add_analysis_tabs
from diffview.gui.views.data import DataView
from diffview.gui.views.forward import ForwardView
from diffview.gui.views.lab2d import Lab2DView
from diffview.gui.views.sampling import SamplingView
from diffview.gui.views.schedule import ScheduleView
from diffview.gui.views.training import TrainingView
from diffview.gui.widgets.notice_bar import NoticeBar
from diffview.gui.window_memory import WindowMemory, controls_of
from diffview.gui.workers.jobs import stop_everything
from diffview.gui.workers.threads import collect_garbage_on_gui_thread, freeze_after_build

__all__ = ["CLOSE_WAIT_MS", "RUNS_ROOT", "MainWindow"]

CLOSE_WAIT_MS = 30_000  # closing mid-training waits this long for the step and its checkpoint, then ends the process


def _session_attribute(name: str, doc: str) -> property:
    """A read-only window attribute that is the session's ``name`` (the name callers and tests know)."""
    return property(lambda window: getattr(window.session, name), doc=doc)


class MainWindow(QMainWindow):
    dataset = _session_attribute("dataset", "The dataset the app has loaded (the session's).")
    report = _session_attribute("report", "The loaded dataset's report (the session's).")
    schedule = _session_attribute("schedule", "The schedule every view shows (the session's).")
    loaded_run = _session_attribute("loaded_run", "The run or diffusers model that is open (the session's).")
    trainer = _session_attribute("trainer", "The training process of the live or last run (the session's).")
    run_dir = _session_attribute("run_dir", "The folder of the run that is open or training (the session's).")
    controller = _session_attribute("controller", "The training controller (the session's).")
    opener = _session_attribute("opener", "What opens run folders on a worker (the session's).")
    snapshots = _session_attribute("snapshots", "The live trainer's weight copies (the session's).")
    _tasks = _session_attribute("tasks", "The data loads under way (the session's).")
    model_source = _session_attribute("model_source", "What the views sample from, a ModelHandle (the session's).")
    load_source = _session_attribute("load_source", "Load a built-in dataset or a folder (the session's).")
    update_schedule = _session_attribute("update_schedule", "Apply the settings' schedule (the session's).")
    start_training = _session_attribute("start_training", "Train, or resume the open run (the session's).")
    toggle_pause = _session_attribute("toggle_pause", "Pause or resume training (the session's).")
    open_run_folder = _session_attribute("open_run_folder", "Open a run folder on a worker (the session's).")

    def __init__(self, source: str | None = None, runs_root: Path = RUNS_ROOT):
        super().__init__()
        # The GUI thread's own tensor work (noising 64 small images, a histogram) is tiny. With more than
        # one torch thread it starts its own OpenMP team, which slowed the training thread's team by a
        # quarter (benchmarks/README.md); the trainer sets its thread count in its own thread.
        torch.set_num_threads(1)
        collect_garbage_on_gui_thread()  # never on a worker: see threads.py
        self.setWindowTitle(f"diffview {__version__}")
        self.setWindowIcon(QIcon(str(ICON)))
        self.resize(1400, 880)
        self.setAcceptDrops(True)
        self._close_when_stopped = False

        self.settings = SettingsPanel()
        self.session = session = AppSession(self.settings.config, runs_root, self)
        self.runs_root = session.runs_root
        self.data_view = DataView(session)
        self.forward_view = ForwardView(session)
        self.schedule_view = ScheduleView(session)
        self.training_view = TrainingView(session)
        self.sampling_view = SamplingView()
        self.sampling_view.model_source = lambda ema=True: session.model_source(ema, deferred=True)
        self.lab2d_view = Lab2DView(self.runs_root)
        self.lab2d_view.message.connect(self.show_message)
        self.tabs = QTabWidget()
        for view, name in ((self.data_view, "Data"), (self.forward_view, "Forward process"),
                           (self.schedule_view, "Schedule"), (self.training_view, "Training"),
                           (self.sampling_view, "Sampling"), (self.lab2d_view, "2D diffusion")):
            self.tabs.addTab(view, name)
        self.tabs.setCurrentWidget(self.forward_view)
        self.notice = NoticeBar()  # "Reopen the last run?", never a dialog
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.notice)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._make_docks()
        self._make_status_bar()
        self._wire_session()
        self._wire_settings()
        self.analysis_views = add_analysis_tabs(self)  # Bound, Loss from the bound, Samplers, Guidance, Memorisation, …
        link_algorithms(self)  # the algorithm panels' symbols to the tabs that show them
        apply_tooltips(controls_of(self, TOOLTIP_TYPES))  # each names the symbol it sets (gui/tooltips.py)
        self.memory = WindowMemory(self)  # the controls as built are the defaults; then what was stored
        remembered, notes = self.memory.restore()  # it applies the (restored) schedule too
        make_menus(self)
        freeze_after_build()  # the window lives as long as the app: out of the full collections' sight
        for note in notes:
            self.show_message("info", note)

        if source and is_run_folder(source):
            QTimer.singleShot(0, lambda: session.open_run_folder(source))
        else:
            session.load_source(source or remembered or "digits")
        if source is None:
            self._offer_last_run()

    def _make_docks(self) -> None:
        scroll = QScrollArea()
        scroll.setWidget(self.settings)
        scroll.setWidgetResizable(True)
        left = QDockWidget("Settings")
        left.setObjectName("settings")
        left.setWidget(scroll)
        left.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(Qt.LeftDockWidgetArea, left)
        self.settings_dock = left
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        bottom = QDockWidget("Log")
        bottom.setObjectName("log")
        bottom.setWidget(self.log)
        self.addDockWidget(Qt.BottomDockWidgetArea, bottom)
        self.resizeDocks([bottom], [120], Qt.Vertical)
        self.log_dock = bottom

    def _make_status_bar(self) -> None:
        self.device_label, self.memory_label, self.run_label = QLabel(), QLabel(), QLabel("no run folder")
        for w in (self.run_label, self.memory_label, self.device_label):
            self.statusBar().addPermanentWidget(w)
        self._update_device()
        self.memory_timer = QTimer(self)
        self.memory_timer.timeout.connect(self._update_memory)
        self.memory_timer.start(2000)
        self._update_memory()

    def _wire_session(self) -> None:
        """The session's changes to the settings, the status bar and the views that do not observe it."""
        session, settings = self.session, self.settings
        session.message.connect(self.show_message)
        session.data_changed.connect(settings.show_source)
        session.data_changed.connect(lambda _: settings.set_classes(session.dataset.class_names))
        session.data_changed.connect(self._scale_settings_to_data)
        session.schedule_changed.connect(lambda _: self.schedule_view.set_timestep(self.forward_view.t))
        session.schedule_changed.connect(lambda schedule: self.sampling_view.set_timesteps(schedule.timesteps))
        session.schedule_changed.connect(self.lab2d_view.set_schedule)
        session.model_changed.connect(self._model_changed)
        session.opening.connect(lambda _: settings.train_button.setEnabled(False))
        session.trainable_changed.connect(settings.allow_training)
        session.run_status.connect(self.run_label.setText)
        session.controller.state_changed.connect(settings.set_state)
        session.training_started.connect(lambda _: self.tabs.setCurrentWidget(self.training_view))
        session.training_finished.connect(self._training_finished)
        self.sampling_view.message.connect(self.show_message)
        # The Sampling tab's class picker and default S follow the run opened or being trained.
        session.model_changed.connect(lambda run: self.sampling_view.set_run_config(run and run.config))
        session.training_started.connect(lambda trainer: self.sampling_view.set_run_config(trainer.config))

    def _scale_settings_to_data(self, _source: str) -> None:
        """New images (no run of ours open): Train's steps and batch scaled to their size and count."""
        data, run = self.session.dataset, self.session.loaded_run
        if data.kind == "images" and (run is None or run.config is None):
            self.settings.scale_to_data(data.image_size, len(data))

    def _wire_settings(self) -> None:
        """The settings' requests to the session, and the views' timesteps to each other."""
        session, settings = self.session, self.settings
        settings.dataset_changed.connect(session.load_source)
        settings.open_folder_requested.connect(self.open_folder_dialog)
        settings.schedule_changed.connect(session.update_schedule)
        settings.image_size.currentTextChanged.connect(lambda _: session.load_source(settings.dataset_source()))
        settings.channels.currentTextChanged.connect(lambda _: session.load_source(settings.dataset_source()))
        settings.train_button.clicked.connect(session.start_training)
        settings.pause_button.clicked.connect(session.toggle_pause)
        settings.stop_button.clicked.connect(session.controller.stop)
        self.forward_view.timestep_changed.connect(self.schedule_view.set_timestep)
        self.schedule_view.timestep_changed.connect(self.forward_view.set_timestep)
        # One t for the forward process on images and on points: either slider moves the other.
        self.forward_view.timestep_changed.connect(self.lab2d_view.set_timestep)
        self.lab2d_view.timestep.changed.connect(self.forward_view.set_timestep)
        self.tabs.currentChanged.connect(
            lambda _: settings.show_for_points(self.tabs.currentWidget() is self.lab2d_view))

    def _offer_last_run(self) -> None:
        last = self.memory.store.last_run()
        if last is None:
            return
        self.notice.accepted.connect(lambda: self.session.open_run_folder(last.path))
        self.session.model_changed.connect(lambda run: run is not None and self.notice.hide())  # moot once open
        self.notice.offer(f"Reopen the last run, <b>{Path(last.path).name}</b>?", "Reopen", last.path)

    def restore_defaults(self) -> None:
        if not self.memory.restore_defaults():
            self.show_message("error", "Stop training before restoring the defaults.")
            return
        self.show_message("info", "Restored the default settings, controls, window size and panels.")

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
        training = self.session.trainer
        used = training.memory_mb() if training is not None and self.session.training else None
        if used is not None:  # the training process's own, now
            text += f"; training {used:,.0f} MB"
        self.memory_label.setText(text)

    # ------------------------------------------------------------------ what the session changed
    def _model_changed(self, run) -> None:
        """The settings show an opened run's config, or a diffusers model's schedule and objective."""
        if run is not None and run.config is not None:
            self.settings.set_config(run.config)
        elif run is not None:
            self.settings.show_model_schedule(run.handle.schedule, run.handle.objective)

    @Slot(object)
    def _training_finished(self, done) -> None:
        trainer = self.session.trainer
        if trainer is not None and trainer.device is not None:
            self._update_device(trainer.device)
        if self._close_when_stopped:
            self.close()

    # ------------------------------------------------------------------ dialogs and actions
    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of images", dialog_start())
        if path:
            remember_folder(str(Path(path).parent))
            self.session.load_source(path)
        else:
            self.settings.dataset.setCurrentText(self.settings.dataset_source()
                                                 if self.session.dataset is not None else "digits")

    def open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a diffview run or a diffusers model folder",
                                                dialog_start(fallback=str(self.runs_root)))
        if path:
            remember_folder(str(Path(path).parent))
            self.session.open_run_folder(path)

    def sample_now(self) -> None:
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
                self.session.open_run_folder(path)
            else:
                self.session.load_source(path)

    def closeEvent(self, event) -> None:
        if self.session.training:
            if not self._close_when_stopped:
                self._close_when_stopped = True
                self.session.controller.stop()
                self.show_message("info", "Closing: stopping training and writing a checkpoint first…")
                QTimer.singleShot(CLOSE_WAIT_MS, self._end_training_now)
            event.ignore()
            return
        stop_everything()  # every job in the app (the 2D tab's training too) cancelled, then waited for
        self.memory.save()
        event.accept()

    def _end_training_now(self) -> None:
        """Closing waited ``CLOSE_WAIT_MS`` for training to stop: end its process, say so, and close."""
        if self.session.training:
            text = (f"Training did not stop within {CLOSE_WAIT_MS // 1000} s of closing, so diffview ended its "
                    "process; the run keeps its last checkpoint.")
            self.show_message("warning", text)
            print(f"diffview: {text}", file=sys.stderr)
            self.session.controller.terminate()

    def about(self) -> None:
        QMessageBox.about(self, "About diffview",
                          f"<b>diffview {__version__}</b><p>Train a denoising diffusion model and watch the "
                          "mathematics at work: DDPM (Ho et al. 2020), improved DDPM (Nichol &amp; Dhariwal 2021), "
                          "DDIM (Song et al. 2021).</p>")
