"""Sampling, step by step: x_t and the model's x̂_0 side by side at every step of DDPM or DDIM.

Sampling runs on a worker thread; each step's grids (uint8) come back through a signal, at most
every ``EMIT_SECONDS``, and are stored so a slider can scrub the finished trajectory and a play
button replay it. The final grid exports as PNG, the trajectory as GIF and as a PNG strip, on a
worker (a 100-frame GIF takes seconds). Both are :class:`~diffview.gui.workers.jobs.Job` s. A model source
may hand a ModelHandle whose model is pending (a snapshot of a live trainer's weights): the sampling job
takes it, never the GUI thread.

A class-conditional model samples the class the picker names, guided at S (ε̃ = ε_u + S (ε_c − ε_u)), so
x_t and x̂_0 follow the guided prediction. For the step the slider is on, the tab can show ε_c, ε_u and
ε_c − ε_u (what S amplifies), computed on a worker from that step's x_t, which the sampling job keeps as
floats for the first PARTS_IMAGES images of every kept frame (views/sampling_job.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from diffview.core.runs.handle import ImageShape, ModelHandle, PendingModel
from diffview.core.runs.open import run_classes
from diffview.core.sampling import SAMPLER_NAMES
from diffview.gui.persistence import dialog_start, remember_folder
from diffview.gui.views.sampling_job import sample_frames, write_gif, write_png, write_strip
from diffview.gui.views.sampling_parts import EpsPartsFollower
from diffview.gui.widgets.algorithm import AlgorithmPanel, SamplingFollower
from diffview.gui.widgets.eps_parts import EpsPartsPanel
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.players import FramePlayer
from diffview.gui.widgets.sampler_choice import SamplerControls
from diffview.gui.widgets.text import T_INDEX_NOTE, caption
from diffview.gui.workers.jobs import Job, Jobs


class SamplingView(QWidget):
    message = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_source = None  # callable(ema=True) -> ModelHandle | None
        self.trajectory: list[tuple] = []  # (index, t, x_t uint8, x̂_0 uint8, seconds) per kept frame
        self.states: list[torch.Tensor | None] = []  # per frame: x_t float (first PARTS_IMAGES) when guided
        self.settings: dict = {}
        self.jobs = Jobs(self)
        self._job: Job | None = None  # sampling
        self._export_job: Job | None = None
        self._handle: ModelHandle | None = None  # the sampled model, once taken (the ε panel calls it)

        self.sampling = SamplerControls()  # sampler, steps, η, spacing, S_churn
        self.sampler, self.steps, self.eta = self.sampling.sampler, self.sampling.steps, self.sampling.eta
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(36)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.weights = QComboBox()
        self.weights.addItems(["EMA weights", "raw weights"])
        self.guidance = GuidanceControls(first_class=True)
        self.show_parts = QCheckBox("show ε_c, ε_u and their difference")
        self.show_parts.setToolTip("For the step the slider is on: the conditional prediction ε_c = ε_θ(x_t, t, y), "
                                   "the unconditional ε_u = ε_θ(x_t, t, ∅), and ε_c − ε_u, which guidance scales by S "
                                   "in ε̃ = ε_u + S (ε_c − ε_u)")
        self.show_parts.setEnabled(False)
        self.show_parts.toggled.connect(self._parts_toggled)
        self.guidance.changed.connect(lambda: self.show_parts.setEnabled(self.guidance.conditional))
        self.run_button = QPushButton("Sample")
        self.run_button.setToolTip("Run the reverse process (Ctrl+R)")
        self.run_button.clicked.connect(self.start)

        form = QFormLayout()
        self.sampling.add_rows(form)
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Weights", self.weights)
        form.addRow(self.guidance)
        form.addRow(self.show_parts)
        form.addRow(self.run_button)
        self.export_png = QPushButton("Export grid (PNG)…")
        self.export_gif = QPushButton("Export trajectory (GIF)…")
        self.export_strip = QPushButton("Export strip (PNG)…")
        for b, fn in ((self.export_png, self._export_png), (self.export_gif, self._export_gif),
                      (self.export_strip, self._export_strip)):
            b.setEnabled(False)
            b.clicked.connect(fn)
            form.addRow(b)
        self.status = QLabel("Train a model or open a run, then press Sample.")
        self.status.setWordWrap(True)
        form.addRow(self.status)
        controls = QWidget()
        controls.setLayout(form)
        scroll = QScrollArea()  # the column outgrows a small window once the algorithm panel is open: it scrolls
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFixedWidth(310)

        self.xt_grid = ImageGrid("x<sub>t</sub>")
        self.x0_grid = ImageGrid("predicted x̂<sub>0</sub>: the model's guess of x<sub>0</sub>")
        for grid in (self.xt_grid, self.x0_grid):
            grid.set_placeholder("Press <b>Sample</b> (Ctrl+R) to run the reverse process here.<br>It needs a "
                                 "model: train one (Ctrl+T) or open a run (Ctrl+Shift+O).")
        self.player = FramePlayer(40, "▶ Replay")
        self.player.frame.connect(self._show_frame)
        self.slider, self.play, self.frame_label = self.player.slider, self.player.play, self.player.label
        for w in (self.slider, self.play):
            w.setEnabled(False)

        grids = QHBoxLayout()
        grids.addWidget(self.xt_grid)
        grids.addWidget(self.x0_grid)
        self.parts_panel = EpsPartsPanel()
        self.parts_panel.setVisible(False)
        self.eps = EpsPartsFollower(self.parts_panel, self.jobs)
        right = QVBoxLayout()
        top = QWidget()
        top.setLayout(grids)
        grids.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Vertical)  # x_t and x̂_0 above, the ε panel (when shown) below
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.parts_panel)
        self.splitter.setChildrenCollapsible(False)
        right.addWidget(self.splitter, 1)
        right.addWidget(self.player)
        right.addWidget(caption(
            "x̂<sub>0</sub> = (x<sub>t</sub> − √(1−ᾱ<sub>t</sub>) ε<sub>θ</sub>) / √ᾱ<sub>t</sub>;  "
            "DDPM: x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z (Algorithm 2);  "
            "DDIM: x<sub>t′</sub> = √ᾱ<sub>t′</sub> x̂<sub>0</sub> + √(1−ᾱ<sub>t′</sub>−σ²) ε<sub>θ</sub> "
            "+ σ z (eq. 12). "
            "A class-conditional model samples with ε̃ = ε<sub>u</sub> + S (ε<sub>c</sub> − ε<sub>u</sub>) in place of "
            "ε<sub>θ</sub> (classifier-free guidance). " + T_INDEX_NOTE))
        layout = QGridLayout(self)
        layout.addWidget(scroll, 0, 0)
        layout.addLayout(right, 0, 1)
        layout.setColumnStretch(1, 1)
        self.algorithm = AlgorithmPanel("ddim", width=270)  # Algorithm 2 or DDIM's update as it runs
        self.algorithm_follower = SamplingFollower(self.algorithm)
        form.addRow(self.algorithm.toggle)
        form.addRow(self.algorithm)
        self.sampler.currentIndexChanged.connect(lambda _: self.algorithm.set_algorithm(self.sampler.key()))

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def parts(self) -> tuple | None:
        """The ε panel's (frame, t, ε_c, ε_u) now shown."""
        return self.eps.shown

    @property
    def parts_busy(self) -> bool:
        """Whether the ε_c / ε_u panel is computing."""
        return self.eps.busy

    def set_timesteps(self, T: int) -> None:
        self.sampling.set_timesteps(T)

    def refresh_classes(self) -> None:
        """Show the current model's classes in the picker, from its handle (no weights are copied: the app's
        model source hands a pending model), or keep what is shown while there is no model."""
        handle = self.model_source(ema=True) if self.model_source is not None and not self.busy else None
        if handle is not None:
            self.guidance.set_classes(handle.class_names)

    def set_run_config(self, config) -> None:
        """A run opened or started training (its TrainConfig; None: a model diffview did not train): its classes,
        once recorded, and its default guidance scale S (``guidance_scale``)."""
        if config is None:
            self.refresh_classes()
            return
        self.guidance.set_classes(run_classes(config) if not config.conditional or config.class_names else None)
        if config.conditional:
            self.guidance.set_scale(config.guidance_scale)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.refresh_classes()

    def start(self) -> None:
        if self.busy:
            return
        if self.model_source is None:
            self.status.setText("No model yet: train one (Ctrl+T) or open a run folder (File ▸ Open Run).")
            return
        handle = self.model_source(ema=self.weights.currentIndex() == 0)
        if handle is None:
            self.status.setText("No model yet: train for at least one step, or open a run folder.")
            return
        if not isinstance(handle.shape, ImageShape):
            self.status.setText(f"{handle.label} makes {handle.shape}: this tab samples image models.")
            return
        self.guidance.set_classes(handle.class_names)
        schedule, label = handle.schedule, handle.label
        y = self.guidance.label()
        try:
            settings = {**self.sampling.settings(schedule), "n": self.n.value(), "seed": self.seed.value(),
                        "label": y, "guidance_scale": self.guidance.scale() if y is not None else 1.0}
        except ValueError as e:
            self.status.setText(f"Cannot sample: {e}")
            return
        self.settings = {**settings, "schedule": schedule.name, "timesteps": schedule.timesteps, "model": label,
                         "class": handle.class_names[y] if y is not None else None}
        self.trajectory, self.states = [], []
        self.eps.reset()
        self._handle = None if isinstance(handle.model, PendingModel) else handle
        self.player.stop()
        for w in (self.slider, self.play, self.export_png, self.export_gif, self.export_strip, self.run_button):
            w.setEnabled(False)
        self.parts_panel.set_note("The ε panel follows the slider once sampling is done.")
        self.status.setText(self._sampling_text())
        self.algorithm_follower.started(settings["sampler"], settings["steps"])
        self._job = self.jobs.start(lambda emit, cancelled: sample_frames(handle, settings, emit, cancelled),
                                    "diffview-sampling", self._on_item, self._on_finished)
        if self._job is None:  # the app is closing
            self.run_button.setEnabled(True)

    def _sampling_text(self) -> str:
        s = self.settings
        return (f"Sampling {s['n']} images with {SAMPLER_NAMES[s['sampler']]}, {s['steps']} steps ({s['nfe']} NFE, "
                f"{s['spacing']}), from {s['model']}{self._guided_words()}…")

    def _guided_words(self) -> str:
        s = self.settings
        return f", class {s['class']} guided at S = {s['guidance_scale']:g}" if s.get("class") is not None else ""

    def cancel_and_wait(self, ms: int = 30_000) -> None:
        self.jobs.cancel_and_wait(ms)

    def _on_item(self, item) -> None:
        kind, value = item
        if kind == "model":
            self._on_resolved(value)
        else:
            self._on_frames(value)

    def _on_resolved(self, handle: ModelHandle) -> None:
        self._handle = handle
        self.settings["model"] = handle.label
        self.status.setText(self._sampling_text())

    @Slot(list)
    def _on_frames(self, frames: list) -> None:
        self.trajectory.extend(f[:5] for f in frames)
        self.states.extend(f[5] for f in frames)
        self._draw(self.trajectory[-1])
        self.algorithm_follower.on_frames([f[:5] for f in frames])

    def _draw(self, frame) -> None:
        index, t, xt, x0, seconds = frame
        self.xt_grid.set_images(xt)
        self.x0_grid.set_images(x0)
        where = f"t = {t}" if t >= 0 else "x<sub>0</sub> (done)"
        self.xt_grid.set_title(f"x<sub>t</sub>, {where}{self._guided_words()}")
        self.frame_label.setText(f"step {index} of {self.settings['steps']}, {where}, {seconds:.2f} s")

    def _on_finished(self, _result, error: str) -> None:
        self._job = None
        if error:
            error = f"Sampling failed: {error}"
            self.status.setText(error)
            self.message.emit("error", error)
        elif self.trajectory:
            seconds = self.trajectory[-1][4]
            self.status.setText(f"Done: {SAMPLER_NAMES[self.settings['sampler']]}, {self.settings['steps']} steps "
                                f"({self.settings['nfe']} NFE)"
                                f"{self._guided_words()}, {seconds:.1f} s. Scrub or replay the trajectory, or "
                                "export it.")
        self.run_button.setEnabled(True)
        if self.trajectory:
            self.player.set_frames(len(self.trajectory))
            for w in (self.slider, self.play, self.export_png, self.export_gif, self.export_strip):
                w.setEnabled(True)

    def _show_frame(self, i: int) -> None:
        if 0 <= i < len(self.trajectory):
            self._draw(self.trajectory[i])
            self._update_parts()

    # ------------------------------------------------------------------ ε_c, ε_u and their difference
    def _parts_toggled(self, on: bool) -> None:
        self.parts_panel.setVisible(on)
        if on:  # three fifths for x_t and x̂_0, two for the panel; the handle between them moves
            h = max(self.splitter.height(), 400)
            self.splitter.setSizes([3 * h // 5, 2 * h // 5])
        self._update_parts()

    def _parts_frame(self) -> int | None:
        """The frame whose x_t the ε panel shows: the slider's, or for the final x_0 (no model call there) the
        last step's; None when there is none."""
        i = self.slider.value()
        if not 0 <= i < len(self.states):
            return None
        if self.states[i] is None and i > 0 and self.trajectory[i][1] < 0:
            i -= 1
        return i if self.states[i] is not None else None

    def _update_parts(self) -> None:
        """Compute ε_c and ε_u at the slider's step on a worker (one at a time: a move meanwhile computes again)."""
        if not self.show_parts.isChecked() or self.busy:
            return
        if self.settings.get("class") is None:
            self.parts_panel.set_note("Sampled unconditionally (∅, or a model without classes): ε_c and ε_u are one "
                                      "prediction. Pick a class and sample again.")
            return
        i = self._parts_frame()
        if i is None or self._handle is None:
            self.parts_panel.set_note("Sample first: the panel shows the step the slider is on.")
            return
        final = self.trajectory[self.slider.value()][1] < 0
        self.eps.request(i, self._handle, self.states[i], self.trajectory[i][1], self.settings["label"],
                         self.settings["class"], self.settings["guidance_scale"], final)

    # ------------------------------------------------------------------ export
    def metadata(self) -> dict:
        keys = ("seed", "sampler", "steps", "nfe", "eta", "spacing", "s_churn", "schedule", "timesteps", "model")
        meta = {k: self.settings[k] for k in keys}
        if self.settings.get("class") is not None:
            meta.update({"class": self.settings["class"], "guidance_scale": self.settings["guidance_scale"]})
        return meta

    def export_png_to(self, path: str) -> Path:
        return write_png(self.trajectory, self.metadata(), path)

    def export_gif_to(self, path: str) -> Path:
        return write_gif(self.trajectory, self.metadata(), path)

    def export_strip_to(self, path: str, columns: int = 10) -> Path:
        return write_strip(self.trajectory, self.metadata(), path, columns=columns)

    def _ask(self, title: str, default: str, pattern: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, dialog_start(default), pattern)
        remember_folder(path)
        return path or None

    def _export_png(self) -> None:
        self.export(write_png, self._ask("Export sample grid", "samples.png", "PNG images (*.png)"))

    def _export_gif(self) -> None:
        self.export(write_gif, self._ask("Export reverse process", "reverse.gif", "GIF animations (*.gif)"))

    def _export_strip(self) -> None:
        self.export(write_strip, self._ask("Export strip of steps", "strip.png", "PNG images (*.png)"))

    @property
    def exporting(self) -> bool:
        return self._export_job is not None

    def export(self, write, path: str | None) -> Job | None:
        """Write the trajectory with ``write(trajectory, metadata, path, progress=…)`` on a worker; the export
        buttons wait meanwhile and the status shows the progress."""
        if not path or self.exporting or not self.trajectory:
            return None
        trajectory, meta = self.trajectory, self.metadata()  # a new sampling run replaces, never mutates, these
        buttons = (self.export_png, self.export_gif, self.export_strip)
        for b in buttons:
            b.setEnabled(False)
        self.status.setText(f"Writing {path}…")

        def work(emit, cancelled):
            return write(trajectory, meta, path, progress=lambda i, n: emit((i, n)))

        def done(written, error):
            self._export_job = None
            for b in buttons:
                b.setEnabled(bool(self.trajectory) and not self.busy)
            if error:
                self.status.setText(f"Could not write {path}: {error}")
                self.message.emit("error", f"Could not write {path}: {error}")
            else:
                self.status.setText(f"Wrote {written}")
                self.message.emit("info", f"Wrote {written}")

        self._export_job = self.jobs.start(work, "diffview-export",
                                           lambda p: self.status.setText(f"Writing {path}: frame {p[0]} of {p[1]}…"),
                                           done)
        return self._export_job
