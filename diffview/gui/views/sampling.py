"""Sampling, step by step: x_t and the model's x̂_0 side by side at every step of DDPM or DDIM.

Sampling runs on a worker thread; each step's grids (uint8) come back through a signal, at most
every ``EMIT_SECONDS``, and are stored so a slider can scrub the finished trajectory and a play
button replay it. The final grid exports as PNG, the trajectory as GIF and as a PNG strip, on a
worker (a 100-frame GIF takes seconds). Both are :class:`~diffview.gui.workers.jobs.Job` s. A model source
may hand a ModelHandle whose model is pending (a snapshot of a live trainer's weights): the sampling job
takes it, never the GUI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffview.core.io.export import make_grid, save_gif, save_grid, save_strip, to_uint8
from diffview.core.runs.handle import ImageShape, ModelHandle, PendingModel
from diffview.gui.widgets.algorithm import AlgorithmPanel, SamplingFollower
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.players import FramePlayer
from diffview.gui.widgets.text import T_INDEX_NOTE, caption
from diffview.gui.workers.jobs import Job, Jobs

EMIT_SECONDS = 0.03
MAX_FRAMES = 250


def _sample(handle: ModelHandle, s: dict, emit, cancelled) -> None:
    """The sampling job: ("model", label) once a pending model is taken, then ("frames", [(index, t, x_t uint8,
    x0_pred uint8, seconds)]) at most every EMIT_SECONDS; stops between model calls once ``cancelled()``."""
    if isinstance(handle.model, PendingModel):  # e.g. a snapshot under the trainer's lock
        handle = handle.resolved()
        emit(("model", handle.label))
    total = s["steps"]
    keep = max(1, total // MAX_FRAMES)
    pending, last, t0 = [], time.monotonic(), time.perf_counter()
    for st in handle.iter_sample(s["n"], sampler=s["sampler"], steps=s["steps"], eta=s["eta"], seed=s["seed"]):
        if cancelled():
            break
        final = st.t_prev < 0
        if st.index % keep == 0 or final:
            pending.append((st.index, st.t, to_uint8(st.x_t), to_uint8(st.x0_pred), time.perf_counter() - t0))
        if final:
            pending.append((st.index + 1, -1, to_uint8(st.x_prev), to_uint8(st.x_prev), time.perf_counter() - t0))
        if pending and (time.monotonic() - last >= EMIT_SECONDS or final):
            emit(("frames", pending))
            pending, last = [], time.monotonic()
    if pending:
        emit(("frames", pending))


class SamplingView(QWidget):
    message = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_source = None  # callable(ema=True) -> ModelHandle | None
        self.trajectory: list[tuple] = []
        self.jobs = Jobs(self)
        self._job: Job | None = None  # sampling
        self._export_job: Job | None = None

        self.sampler = QComboBox()
        self.sampler.addItems(["DDIM", "DDPM"])
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(50)
        self.eta = QDoubleSpinBox()
        self.eta.setRange(0.0, 1.0)
        self.eta.setSingleStep(0.1)
        self.eta.setToolTip("DDIM η: 0 is deterministic, 1 matches DDPM's ancestral noise")
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(36)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.weights = QComboBox()
        self.weights.addItems(["EMA weights", "raw weights"])
        self.run_button = QPushButton("Sample")
        self.run_button.setToolTip("Run the reverse process (Ctrl+R)")
        self.run_button.clicked.connect(self.start)
        self.sampler.currentTextChanged.connect(self._sampler_changed)

        form = QFormLayout()
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("η (DDIM)", self.eta)
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Weights", self.weights)
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
        controls.setMaximumWidth(280)

        self.xt_grid = ImageGrid("x<sub>t</sub>")
        self.x0_grid = ImageGrid("predicted x<sub>0</sub>: the model's guess of the clean image at this step")
        self.player = FramePlayer(40, "▶ Replay")
        self.player.frame.connect(self._show_frame)
        self.slider, self.play, self.frame_label = self.player.slider, self.player.play, self.player.label
        for w in (self.slider, self.play):
            w.setEnabled(False)

        grids = QHBoxLayout()
        grids.addWidget(self.xt_grid)
        grids.addWidget(self.x0_grid)
        right = QVBoxLayout()
        right.addLayout(grids, 1)
        right.addWidget(self.player)
        right.addWidget(caption(
            "x̂<sub>0</sub> = (x<sub>t</sub> − √(1−ᾱ<sub>t</sub>) ε<sub>θ</sub>) / √ᾱ<sub>t</sub>;  "
            "DDPM: x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z (Algorithm 2);  "
            "DDIM: x<sub>t′</sub> = √ᾱ<sub>t′</sub> x̂<sub>0</sub> + √(1−ᾱ<sub>t′</sub>−σ²) ε<sub>θ</sub> + σ z (eq. 12). "
            + T_INDEX_NOTE))
        layout = QGridLayout(self)
        layout.addWidget(controls, 0, 0)
        layout.addLayout(right, 0, 1)
        layout.setColumnStretch(1, 1)
        self.algorithm = AlgorithmPanel("ddim", width=270)  # Algorithm 2 or DDIM's update as it runs
        self.algorithm_follower = SamplingFollower(self.algorithm)
        form.addRow(self.algorithm.toggle)
        form.addRow(self.algorithm)
        self.sampler.currentTextChanged.connect(lambda name: self.algorithm.set_algorithm(name.lower()))

    @property
    def busy(self) -> bool:
        return self._job is not None

    def set_timesteps(self, T: int) -> None:
        self.steps.setMaximum(T)
        if self.sampler.currentText() == "DDPM":
            self.steps.setValue(T)

    def _sampler_changed(self, name: str) -> None:
        self.eta.setEnabled(name == "DDIM")
        if name == "DDPM":
            self.steps.setValue(self.steps.maximum())
        else:
            self.steps.setValue(min(50, self.steps.maximum()))

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
        schedule, label = handle.schedule, handle.label
        settings = {"sampler": self.sampler.currentText().lower(), "steps": min(self.steps.value(), schedule.timesteps),
                    "eta": self.eta.value(), "n": self.n.value(), "seed": self.seed.value()}
        self.settings = {**settings, "schedule": schedule.name, "timesteps": schedule.timesteps, "model": label}
        self.trajectory = []
        self.player.stop()
        for w in (self.slider, self.play, self.export_png, self.export_gif, self.export_strip, self.run_button):
            w.setEnabled(False)
        self.status.setText(f"Sampling {settings['n']} images with {settings['sampler'].upper()}, "
                            f"{settings['steps']} steps, from {label}…")
        self.algorithm_follower.started(settings["sampler"], settings["steps"])
        self._job = self.jobs.start(lambda emit, cancelled: _sample(handle, settings, emit, cancelled),
                                    "diffview-sampling", self._on_item, self._on_finished)
        if self._job is None:  # the app is closing
            self.run_button.setEnabled(True)

    def cancel_and_wait(self, ms: int = 30_000) -> None:
        self.jobs.cancel_and_wait(ms)

    def _on_item(self, item) -> None:
        kind, value = item
        if kind == "model":
            self._on_resolved(value)
        else:
            self._on_frames(value)

    @Slot(str)
    def _on_resolved(self, label: str) -> None:
        self.settings["model"] = label
        self.status.setText(f"Sampling {self.settings['n']} images with {self.settings['sampler'].upper()}, "
                            f"{self.settings['steps']} steps, from {label}…")

    @Slot(list)
    def _on_frames(self, frames: list) -> None:
        self.trajectory.extend(frames)
        self._draw(frames[-1])
        self.algorithm_follower.on_frames(frames)

    def _draw(self, frame) -> None:
        index, t, xt, x0, seconds = frame
        self.xt_grid.set_images(xt)
        self.x0_grid.set_images(x0)
        where = f"t = {t}" if t >= 0 else "x<sub>0</sub> (done)"
        self.xt_grid.set_title(f"x<sub>t</sub>, {where}")
        self.frame_label.setText(f"step {index} of {self.settings['steps']}, {where}, {seconds:.2f} s")

    def _on_finished(self, _result, error: str) -> None:
        self._job = None
        if error:
            error = f"Sampling failed: {error}"
            self.status.setText(error)
            self.message.emit("error", error)
        elif self.trajectory:
            seconds = self.trajectory[-1][4]
            self.status.setText(f"Done: {self.settings['sampler'].upper()}, {self.settings['steps']} steps, "
                                f"{seconds:.1f} s. Scrub or replay the trajectory, or export it.")
        self.run_button.setEnabled(True)
        if self.trajectory:
            self.player.set_frames(len(self.trajectory))
            for w in (self.slider, self.play, self.export_png, self.export_gif, self.export_strip):
                w.setEnabled(True)

    def _show_frame(self, i: int) -> None:
        if 0 <= i < len(self.trajectory):
            self._draw(self.trajectory[i])

    # ------------------------------------------------------------------ export
    def metadata(self) -> dict:
        return {k: self.settings[k] for k in ("seed", "sampler", "steps", "eta", "schedule", "timesteps", "model")}

    def export_png_to(self, path: str) -> Path:
        return _write_png(self.trajectory, self.metadata(), path)

    def export_gif_to(self, path: str) -> Path:
        return _write_gif(self.trajectory, self.metadata(), path)

    def export_strip_to(self, path: str, columns: int = 10) -> Path:
        return _write_strip(self.trajectory, self.metadata(), path, columns=columns)

    def _ask(self, title: str, default: str, pattern: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, default, pattern)
        return path or None

    def _export_png(self) -> None:
        self.export(_write_png, self._ask("Export sample grid", "samples.png", "PNG images (*.png)"))

    def _export_gif(self) -> None:
        self.export(_write_gif, self._ask("Export reverse process", "reverse.gif", "GIF animations (*.gif)"))

    def _export_strip(self) -> None:
        self.export(_write_strip, self._ask("Export strip of steps", "strip.png", "PNG images (*.png)"))

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


def _write_png(trajectory, meta: dict, path: str, progress=None) -> Path:
    return save_grid(trajectory[-1][2], path, scale=2, metadata=meta)


def _write_gif(trajectory, meta: dict, path: str, progress=None) -> Path:
    frames = [np.concatenate([make_grid(xt), make_grid(x0)], axis=1) for _, _, xt, x0, _ in trajectory]
    return save_gif(frames, path, scale=2, progress=progress)


def _write_strip(trajectory, meta: dict, path: str, columns: int = 10, progress=None) -> Path:
    picks = np.linspace(0, len(trajectory) - 1, min(columns, len(trajectory))).round().astype(int)
    return save_strip([trajectory[i][2][:8] for i in picks], path, scale=2, metadata=meta)
