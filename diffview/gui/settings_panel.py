"""The settings panel: dataset, image size, channels, schedule and T, objective and loss weighting, model, batch
size, learning rate, steps, device, class-conditional training; and the Train / Pause / Stop buttons."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffview.core.data.builtin import BUILTIN_DATASETS
from diffview.core.diffusion import OBJECTIVES
from diffview.core.models.unet import PRESETS
from diffview.core.schedule import SCHEDULES
from diffview.core.train.budget import MAX_MINUTES
from diffview.core.train.config import LOSS_WEIGHTINGS, TrainConfig, image_defaults
from diffview.core.train.precision import PRECISIONS, cpu_has_native_bf16
from diffview.core.train.tensorboard import MISSING, tensorboard_available

OPEN_FOLDER = "Open folder…"
CONDITIONAL_TIP = ("Train p(x | y) with a class embedding. Each label is replaced by the null class ∅ with probability "
                   "p(∅), so the same network is also the unconditional model p(x): classifier-free guidance "
                   "(Ho & Salimans 2021) mixes the two when sampling a class")
NO_CLASSES_TIP = ("The loaded data has no classes: conditional training needs labelled data (digits, shapes, a "
                  "folder of class subfolders)")


class SettingsPanel(QWidget):
    dataset_changed = Signal(str)  # a built-in name or a folder path
    schedule_changed = Signal()  # schedule name or T
    open_folder_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        d = TrainConfig()
        self._scaled = (d.steps, d.batch_size)  # the steps and batch last set for the data, not by a person
        self.dataset = QComboBox()
        self.dataset.addItems(list(BUILTIN_DATASETS))
        self.dataset.addItem(OPEN_FOLDER)
        self.dataset.setToolTip("A built-in dataset, or a folder of your own images (File ▸ Open Folder, Ctrl+O)")
        self.dataset.activated.connect(self._dataset_activated)
        self.image_size = QComboBox()
        self.image_size.addItems(["native", "16", "28", "32", "48", "64"])
        self.image_size.setToolTip("Images are resized on the shorter side and centre-cropped; "
                                   "'native' keeps a built-in's own size (32 for a folder)")
        self.channels = QComboBox()
        self.channels.addItems(["auto", "1", "3"])
        self.schedule = QComboBox()
        self.schedule.addItems(list(SCHEDULES))
        self.schedule.setCurrentText(d.schedule)
        self.timesteps = QSpinBox()
        self.timesteps.setRange(2, 4000)
        self.timesteps.setValue(d.timesteps)
        self.timesteps.setKeyboardTracking(False)
        self.objective = QComboBox()
        self.objective.addItems(list(OBJECTIVES))
        self.objective.setCurrentText(d.objective)
        self.weighting = QComboBox()
        self.weighting.addItems(list(LOSS_WEIGHTINGS))
        self.weighting.setCurrentText(d.loss_weighting)
        self.weighting.setToolTip("Each sample's weight in the loss: adaptive divides each timestep's loss by its "
                                  "running mean, so every t pulls equally (EDM2's balance); min_snr is Min-SNR-5; "
                                  "none is DDPM's L_simple. The loss shown stays the unweighted one")
        self.model = QComboBox()
        self.model.addItems(list(PRESETS))
        self.model.setCurrentText(d.model)
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(d.batch_size)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 0.1)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(d.lr)
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000_000)
        self.steps.setValue(d.steps)
        self.minutes = QDoubleSpinBox()  # a budget in minutes instead of steps (core/train/budget.py)
        self.minutes.setRange(0.0, MAX_MINUTES)
        self.minutes.setDecimals(1)
        self.minutes.setSingleStep(1.0)
        self.minutes.setSpecialValueText("off: train the steps")
        self.minutes.setValue(d.minutes or 0.0)
        self.minutes.setToolTip("Train for this many minutes instead of a number of steps: the steps that fill "
                                "them are fitted from the warm-up's speed on this machine, and the learning rate "
                                "ends its decay on time")
        self.minutes.valueChanged.connect(lambda _: self._update_steps())
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentText(d.precision)
        native = "this CPU has it" if cpu_has_native_bf16() else "this CPU lacks it: auto trains on it in float32"
        self.precision.setToolTip("The network's arithmetic while it trains: bf16 autocast (bfloat16 products, "
                                  "float32 weights and loss) or fp32; auto takes bf16 on a GPU or a CPU with native "
                                  f"bfloat16 ({native}). Sampling and every view stay float32")
        self.conditional = QCheckBox("Conditional")
        self.conditional.setChecked(d.conditional)
        self.cond_dropout = QDoubleSpinBox()
        self.cond_dropout.setRange(0.0, 0.5)
        self.cond_dropout.setSingleStep(0.05)
        self.cond_dropout.setValue(d.cond_dropout)
        self.cond_dropout.setToolTip("p_uncond: the probability a training label is replaced by ∅ (Ho & Salimans "
                                     "2021, Algorithm 1); 0 never trains the unconditional model that guidance needs")
        self.tensorboard = QCheckBox("TensorBoard log")
        self.tensorboard.setChecked(d.tensorboard)
        self.tensorboard.setToolTip("Also write TensorBoard event files into the run folder's tb/ (loss, lr, images/s, "
                                    "the loss by t, the previews): tensorboard --logdir RUN/tb"
                                    if tensorboard_available() else MISSING)
        self.tensorboard.setEnabled(tensorboard_available())
        self.has_classes = False  # whether the loaded data has classes to condition on
        self.conditional.toggled.connect(lambda _: self._update_conditional())
        self.schedule.currentTextChanged.connect(lambda _: self.schedule_changed.emit())
        self.timesteps.valueChanged.connect(lambda _: self.schedule_changed.emit())

        data = QFormLayout()
        data.addRow("Dataset", self.dataset)
        data.addRow("Image size", self.image_size)
        data.addRow("Channels", self.channels)
        diffusion = QFormLayout()
        diffusion.addRow("Schedule", self.schedule)
        diffusion.addRow("Timesteps T", self.timesteps)
        diffusion.addRow("Objective", self.objective)
        diffusion.addRow("Loss weighting", self.weighting)
        training = QFormLayout()
        training.addRow("Model", self.model)
        training.addRow("Batch size", self.batch)
        training.addRow("Learning rate", self.lr)
        training.addRow("Steps", self.steps)
        training.addRow("Or minutes", self.minutes)
        training.addRow("Device", self.device)
        training.addRow("Precision", self.precision)
        training.addRow(self.conditional)
        training.addRow("p(∅)", self.cond_dropout)
        training.addRow(self.tensorboard)

        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Start training (Ctrl+T)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause or resume (Ctrl+P)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step and save a checkpoint (Ctrl+.)")
        self.buttons = QWidget()
        buttons = QHBoxLayout(self.buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        self.points_note = QLabel("The 2D diffusion tab has its own data, model and Train button; the schedule "
                                  "and T above apply to it.")
        self.points_note.setWordWrap(True)
        self.points_note.hide()
        layout = QVBoxLayout(self)
        self.boxes = {}
        for title, form in (("Data", data), ("Diffusion", diffusion), ("Training", training)):
            box = self.boxes[title] = QGroupBox(title)
            box.setLayout(form)
            layout.addWidget(box)
        self._diffusion_form = diffusion
        layout.addWidget(self.points_note)
        layout.addWidget(self.buttons)
        layout.addStretch(1)
        self.set_state("idle")

    def show_for_points(self, on: bool) -> None:
        """Only what the 2D tab uses (the schedule and T) while it is shown; everything otherwise."""
        for w in (self.boxes["Data"], self.boxes["Training"], self.buttons):
            w.setVisible(not on)
        self._diffusion_form.setRowVisible(self.objective, not on)
        self._diffusion_form.setRowVisible(self.weighting, not on)
        self.points_note.setVisible(on)

    def _dataset_activated(self, index: int) -> None:
        text = self.dataset.itemText(index)
        if text == OPEN_FOLDER:
            self.open_folder_requested.emit()
        else:
            self.dataset_changed.emit(text)

    def set_folder(self, path: str) -> None:
        """Show ``path`` as the chosen dataset (added above 'Open folder…')."""
        i = self.dataset.findText(path)
        if i < 0:
            self.dataset.insertItem(self.dataset.count() - 1, path)
            i = self.dataset.findText(path)
        self.dataset.setCurrentIndex(i)

    def show_source(self, source: str) -> None:
        """Show ``source`` (a folder path or a built-in's name) as the loaded dataset."""
        if Path(source).exists():
            self.set_folder(source)
        else:
            self.dataset.setCurrentText(source)

    def dataset_source(self) -> str:
        return self.dataset.currentText()

    def config(self) -> TrainConfig:
        size = self.image_size.currentText()
        return TrainConfig(dataset=self.dataset_source(), image_size=None if size == "native" else int(size),
                           channels=self.channels.currentText(), schedule=self.schedule.currentText(),
                           timesteps=self.timesteps.value(), objective=self.objective.currentText(),
                           loss_weighting=self.weighting.currentText(),
                           model=self.model.currentText(), batch_size=self.batch.value(), lr=self.lr.value(),
                           steps=self.steps.value(), minutes=self.minutes.value() or None,
                           device=self.device.currentText(), precision=self.precision.currentText(),
                           conditional=self.conditional.isChecked(), cond_dropout=self.cond_dropout.value(),
                           tensorboard=self.tensorboard.isChecked() and tensorboard_available())

    def set_config(self, cfg: TrainConfig) -> None:
        """Show ``cfg`` without a signal per field: the caller applies the schedule and the data once."""
        widgets = (self.dataset, self.image_size, self.channels, self.schedule, self.timesteps, self.objective,
                   self.weighting, self.model, self.batch, self.lr, self.steps, self.minutes, self.device,
                   self.precision)
        blocked = [QSignalBlocker(w) for w in widgets]
        for box, value in ((self.schedule, cfg.schedule), (self.objective, cfg.objective), (self.model, cfg.model),
                           (self.channels, str(cfg.channels)), (self.device, cfg.device),
                           (self.precision, cfg.precision), (self.weighting, cfg.loss_weighting)):
            box.setCurrentText(value)
        self.image_size.setCurrentText(str(cfg.image_size) if cfg.image_size else "native")
        self.timesteps.setValue(cfg.timesteps)
        self.batch.setValue(cfg.batch_size)
        self.lr.setValue(cfg.lr)
        self.steps.setValue(cfg.steps)
        self.minutes.setValue(cfg.minutes or 0.0)
        self._scaled = None  # a run's own steps and batch stay as they are
        self.conditional.setChecked(cfg.conditional)  # the run's own: its data's classes show once it loads
        self.cond_dropout.setValue(cfg.cond_dropout)
        self.tensorboard.setChecked(cfg.tensorboard and tensorboard_available())
        for b in blocked:
            b.unblock()
        self._update_conditional()
        self._update_steps()

    def scale_to_data(self, image_size: int, count: int) -> None:
        """Steps and batch scaled to the loaded images (core/train/config.py's image_defaults), unless a person
        has changed them since they were last set for the data."""
        scaled = image_defaults(image_size, count)
        if (self.steps.value(), self.batch.value()) != self._scaled:
            return
        self.steps.setValue(scaled["steps"])
        self.batch.setValue(scaled["batch_size"])
        self._scaled = (scaled["steps"], scaled["batch_size"])
        self.steps.setToolTip(f"Training steps: {scaled['steps']} keeps the default run's time for {count} images "
                              f"at {image_size}×{image_size} (the steps scale with 28²/side²)")

    def set_classes(self, names) -> None:
        """The loaded data's class names: Conditional is on offer only for data with classes (and unchecked for
        data without)."""
        self.has_classes = bool(names)
        if not self.has_classes:
            self.conditional.setChecked(False)
        self._update_conditional()

    def _update_conditional(self) -> None:
        idle = self.state == "idle"
        self.conditional.setEnabled(idle and self.has_classes)
        self.conditional.setToolTip(CONDITIONAL_TIP if self.has_classes else NO_CLASSES_TIP)
        self.cond_dropout.setEnabled(idle and self.has_classes and self.conditional.isChecked())

    def show_model_schedule(self, schedule, objective: str) -> None:
        """Show a diffusers model's schedule and objective without a signal: they come from the model's
        scheduler, and the caller shows that schedule itself."""
        blocked = [QSignalBlocker(w) for w in (self.schedule, self.timesteps, self.objective)]
        if schedule.name in SCHEDULES:
            self.schedule.setCurrentText(schedule.name)
        self.timesteps.setValue(schedule.timesteps)
        self.objective.setCurrentText(objective)
        for b in blocked:
            b.unblock()

    def allow_training(self, ok: bool) -> None:
        """Train on or off for what is open (off for a diffusers model), and never while training."""
        self.train_button.setEnabled(ok and self.state == "idle")
        self.train_button.setToolTip("Start training (Ctrl+T)" if ok else
                                     "A diffusers model is open: diffview samples from it but does not "
                                     "train it further")

    def set_state(self, state: str) -> None:
        """Enable what makes sense: settings only while idle; Pause/Stop only while training."""
        self.state = state
        idle = state == "idle"
        for w in (self.dataset, self.image_size, self.channels, self.schedule, self.timesteps, self.objective,
                  self.weighting, self.model, self.batch, self.lr, self.minutes, self.device, self.precision):
            w.setEnabled(idle)
        self.train_button.setEnabled(idle)
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.tensorboard.setEnabled(idle and tensorboard_available())
        self._update_conditional()
        self._update_steps()

    def _update_steps(self) -> None:
        """Steps are set by hand only while no budget in minutes sets them."""
        self.steps.setEnabled(self.state == "idle" and not self.minutes.value())
