"""DDIM inversion (Song et al. 2021, secs. 4.3 and 5.4): a training image or any image file run up the
deterministic sampler to its x_T and decoded back with the same steps, for several step counts, with the
reconstruction's RMS error in grey levels against the steps; and interpolation (sec. 5.3): two training images
inverted, or two seeds' x_T, slerped and decoded into a strip of frames, exported as PNG or GIF
(``analysis.inversion``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.inversion import check_step_counts, interpolate, reconstruction_error_by_steps
from diffview.core.io.export import make_grid, save_gif, save_grid, to_uint8
from diffview.core.sampling import noise_from_seed
from diffview.gui.persistence import dialog_start, remember_folder
from diffview.gui.views.job_view import ImageJobView, float_images
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.text import T_INDEX_NOTE

DEFAULT_STEPS = "5, 10, 20, 50, 100"
IMAGES, SEEDS = "Two training images", "Two seeds"


def parse_steps(text: str, T: int) -> list[int]:
    """"5, 10, 20" → [5, 10, 20] (ascending, without repeats), each a whole number in 1..T; counts above T are
    left out when others remain (the default list on a short schedule), else a ValueError."""
    try:
        counts = [int(p) for p in text.replace(";", ",").split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"steps must be whole numbers separated by commas, got {text!r}") from None
    kept = [k for k in counts if k <= T] or counts
    return check_step_counts(kept, T)


class InversionView(ImageJobView):
    CANCELLING = "Cancelling after this model call…"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sweep = None  # the last ReconstructionSweep
        self.morph = None  # the last Interpolation
        self.morph_meta: dict = {}

        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.valueChanged.connect(self.use_training_image)
        self.open_button = QPushButton("Open image…")
        self.open_button.clicked.connect(self._open_dialog)
        self.steps = QLineEdit(DEFAULT_STEPS)
        self.steps.setToolTip("DDIM step counts, comma separated: each inverts x_0 with that many steps and "
                              "decodes with as many (counts above T are left out)")
        self.guidance = GuidanceControls()  # inversion and decoding both conditioned on the class
        self.guidance.set_scale(1.0)  # S = 1, the conditional model: a large S makes the ODE hard to invert
        self.button = QPushButton("Invert and reconstruct")
        self.button.clicked.connect(self.start_or_cancel)

        self.mode = QComboBox()
        self.mode.addItems([IMAGES, SEEDS])
        self.a, self.b = QSpinBox(), QSpinBox()
        for spin, v in ((self.a, 0), (self.b, 1)):
            spin.setRange(0, 2**31 - 1)
            spin.setValue(v)
        self.frames = QSpinBox()
        self.frames.setRange(8, 16)
        self.frames.setValue(12)
        self.morph_steps = QSpinBox()
        self.morph_steps.setRange(1, 10_000)
        self.morph_steps.setValue(20)
        self.interp_button = QPushButton("Interpolate")
        self.interp_button.clicked.connect(self._interpolate_or_cancel)
        self.export_png = QPushButton("Export strip (PNG)…")
        self.export_gif = QPushButton("Export morph (GIF)…")
        self.export_png.clicked.connect(lambda: self._export(write_strip_png, "interpolation.png", "PNG (*.png)"))
        self.export_gif.clicked.connect(lambda: self._export(write_morph_gif, "morph.gif", "GIF (*.gif)"))
        for b in (self.export_png, self.export_gif):
            b.setEnabled(False)
        self.status = QLabel("Pick an image, then press Invert and reconstruct.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Training image #", self.index)
        form.addRow(self.open_button)
        form.addRow("Steps list", self.steps)
        form.addRow(self.button)
        box = QGroupBox("Interpolation")
        inner = QFormLayout(box)
        inner.addRow("Ends", self.mode)
        inner.addRow("A (image # or seed)", self.a)
        inner.addRow("B (image # or seed)", self.b)
        inner.addRow("Frames", self.frames)
        inner.addRow("Steps", self.morph_steps)
        inner.addRow(self.interp_button)
        inner.addRow(self.export_png)
        inner.addRow(self.export_gif)
        form.addRow(box)
        form.addRow(self.guidance)
        form.addRow(self.status)

        self.original_grid = ImageGrid("x<sub>0</sub>")
        self.x_T_grid = ImageGrid("x<sub>T</sub>, inverted")
        self.recon_grid = ImageGrid("reconstruction")
        self.plot = pg.PlotWidget()
        for target in (self.x_T_grid, self.recon_grid, self.plot):
            self.add_placeholder(target, "Invert and reconstruct")
        self.plot.setLabel("bottom", "DDIM steps (each way)")
        self.plot.setLabel("left", "RMS error (grey levels, 0–255)")
        self.plot.setLogMode(x=True, y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.curve = self.plot.plot(pen=pg.mkPen("#5aa0ff", width=2), symbol="o", symbolBrush="#5aa0ff",
                                    symbolSize=7, antialias=True)
        self.strip_grid = ImageGrid("interpolation: slerp(x<sub>T</sub><sup>a</sup>, x<sub>T</sub><sup>b</sup>; w), "
                                    "decoded")
        self.add_placeholder(self.strip_grid, "Interpolate")
        top = QHBoxLayout()
        for w in (self.original_grid, self.x_T_grid, self.recon_grid, self.plot):
            top.addWidget(w)
        right = QVBoxLayout()
        right.addLayout(top, 3)
        right.addWidget(self.strip_grid, 2)
        self.arrange(form, right, 320,
            "Inversion: x<sub>t′</sub> = √ᾱ<sub>t′</sub> (x<sub>t</sub> − √(1−ᾱ<sub>t</sub>) ε̂)/√ᾱ<sub>t</sub> + "
            "√(1−ᾱ<sub>t′</sub>) ε̂ for t &lt; t′ up the DDIM timesteps from x<sub>0</sub> (ᾱ = 1), ε̂ the model's at "
            "(x<sub>t</sub>, t′); x̂<sub>0</sub> never clipped. Decoding: DDIM, η = 0, the same steps (Song et al. "
            "2021, eq. 12). Interpolation: slerp(a, b; w) = sin((1−w)θ)/sin θ · a + sin(wθ)/sin θ · b "
            "(Shoemake 1985). " + T_INDEX_NOTE)

    # ------------------------------------------------------------------ the image
    def _set_original(self, label: str) -> None:
        super()._set_original(label)
        self.original_grid.set_title("x<sub>0</sub>: " + label.replace("training image ", ""))

    # ------------------------------------------------------------------ inversion by steps
    def _busy_buttons(self, busy: bool, which: QPushButton, idle_text: str) -> None:
        which.setText("Cancel" if busy else idle_text)
        other = self.interp_button if which is self.button else self.button
        other.setEnabled(not busy)

    def start(self) -> bool:
        if self.busy:
            return False
        handle = self.image_model()
        if handle is None:
            return False
        try:
            counts = parse_steps(self.steps.text(), handle.schedule.timesteps)
        except ValueError as e:
            self.set_status(f"Steps list: {e}")
            return False
        model, schedule, objective = handle.model, handle.schedule, handle.objective
        x0, guide, guiding = float_images(self.original), self.guide(), self.guidance.describe()

        def work(emit, cancelled):
            model.eval()

            def progress(done, total):
                emit((done, total))
                return cancelled()

            return reconstruction_error_by_steps(model, x0, schedule, counts, objective, progress=progress, **guide)

        self._busy_buttons(True, self.button, "Invert and reconstruct")
        self.set_status(f"Inverting {self.source_label} with {handle.label} at {', '.join(map(str, counts))} steps"
                        + (f", {guiding}" if guiding else "") + "…")
        self.run_job(work, "diffview-inversion", self._on_progress, self._on_sweep)
        return True

    @Slot(object)
    def _on_progress(self, item) -> None:
        done, total = item
        self.set_status(f"Model call {done} of {total}…")

    def _on_sweep(self, sweep, error: str, cancelled: bool) -> None:
        self._busy_buttons(False, self.button, "Invert and reconstruct")
        if error:
            return
        if sweep is None:
            self.set_status("Cancelled.")
            return
        self.sweep = sweep
        k = int(sweep.steps[-1])
        self.x_T_grid.set_images(to_uint8(sweep.x_T[-1]))
        self.x_T_grid.set_title(f"x<sub>T</sub>, {k} steps")  # shown clipped to [−1, 1], as x_t is everywhere
        self.recon_grid.set_images(to_uint8(sweep.reconstructions[-1]))
        self.recon_grid.set_title(f"decoded: RMS {sweep.rms[-1]:.2f}")
        self.curve.setData(sweep.steps.astype(float), np.maximum(sweep.rms, 1e-6))
        # a tick at each step count measured (a narrow log axis's own ticks run into each other)
        self.plot.getAxis("bottom").setTicks([[(float(np.log10(k)), str(int(k))) for k in sweep.steps]])
        self.set_status("Done: RMS error " + ", ".join(f"{r:.2f} at {s}" for s, r in zip(sweep.steps, sweep.rms))
                        + f" steps (grey levels, 0–255). x_T and the reconstruction are shown at {k} steps, x_T "
                        "clipped to [−1, 1] as x_t is everywhere.")

    # ------------------------------------------------------------------ interpolation
    def _interpolate_or_cancel(self) -> None:
        if self.busy:
            self.cancel()
            self.set_status(self.CANCELLING)
        else:
            self.start_interpolation()

    def start_interpolation(self) -> bool:
        if self.busy:
            return False
        handle = self.current_model()
        if handle is None:
            return False
        steps = min(self.morph_steps.value(), handle.schedule.timesteps)
        seeds = self.mode.currentText() == SEEDS
        a, b = self.a.value(), self.b.value()
        if seeds:
            ends = [noise_from_seed(handle.sample_shape(1), s)[0] for s in (a, b)]
            what, clip = f"seeds {a} and {b}", handle.clip_x0  # the ends are those seeds' DDIM samples
        else:
            dataset, _ = self.current_dataset()
            if dataset is None or not (a < len(dataset) and b < len(dataset)):
                self.set_status("Image # A and B must be training images: load a dataset"
                                + (f" (it has {len(dataset)})" if dataset is not None else "") + ".")
                return False
            ends = [float_images(dataset.images_uint8([i]).numpy()) for i in (a, b)]
            if ends[0].shape[1:] != handle.sample_shape(1)[1:]:
                self.set_status(f"The model takes {handle.shape} images; the dataset's are "
                                f"{'×'.join(map(str, ends[0].shape[1:]))}.")
                return False
            what, clip = f"training images #{a} and #{b}", False  # the ends reconstruct their images
        model, schedule, objective, frames = handle.model, handle.schedule, handle.objective, self.frames.value()
        guide, guiding = self.guide(), self.guidance.describe()

        def work(emit, cancelled):
            model.eval()

            def progress(done, total):
                emit((done, total))
                return cancelled()

            return interpolate(model, ends[0], ends[1], frames, schedule, objective=objective, steps=steps,
                               invert=not seeds, clip_x0=clip, progress=progress, **guide)

        self.morph_meta = {"ends": what, "frames": frames, "sampler": "ddim", "sampler_steps": steps,
                           "model": handle.label, "path": "slerp of x_T"}
        if guiding:
            self.morph_meta["class"] = guiding
        self._busy_buttons(True, self.interp_button, "Interpolate")
        self.set_status(f"Interpolating {what} in {frames} frames ({steps} DDIM steps"
                        + (f", {guiding}" if guiding else "") + ")…")
        self.run_job(work, "diffview-interpolation", self._on_progress, self._on_morph)
        return True

    def _on_morph(self, res, error: str, cancelled: bool) -> None:
        self._busy_buttons(False, self.interp_button, "Interpolate")
        if error:
            return
        if res is None:
            self.set_status("Cancelled.")
            return
        self.morph = res
        frames = to_uint8(res.frames)
        self.strip_grid.set_images(frames, nrow=len(frames))
        self.strip_grid.set_title(f"{self.morph_meta['ends']}: slerp of x<sub>T</sub>, {len(frames)} frames, decoded")
        for b in (self.export_png, self.export_gif):
            b.setEnabled(True)
        self.set_status(f"Done: {self.morph_meta['ends']} in {len(frames)} frames.")

    # ------------------------------------------------------------------ export
    def export_png_to(self, path: str) -> Path:
        return self._writer(write_strip_png)(path)

    def export_gif_to(self, path: str) -> Path:
        return self._writer(write_morph_gif)(path)

    def _writer(self, write):
        """``write`` bound to the interpolation shown now (a new run replaces ``morph``, never mutates it)."""
        frames, meta = to_uint8(self.morph.frames), dict(self.morph_meta)
        return lambda path: write(frames, meta, path)

    def _export(self, write, default: str, pattern: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the interpolation", dialog_start(default), pattern)
        remember_folder(path)
        if path and self.morph is not None:
            self.write_file(self._writer(write), path, (self.export_png, self.export_gif))


def _scale(frames: np.ndarray) -> int:
    return max(1, 128 // int(frames.shape[-1]))


def write_strip_png(frames: np.ndarray, meta: dict, path: str) -> Path:
    """The interpolation's frames (uint8 [N, C, H, W]) in one row, enlarged to about 128 px, with its settings."""
    return save_grid(frames, path, nrow=len(frames), scale=_scale(frames), metadata=meta)


def write_morph_gif(frames: np.ndarray, meta: dict, path: str) -> Path:
    """The frames there and back as a looping GIF."""
    grids = [make_grid(f[None], nrow=1, padding=0) for f in frames]
    return save_gif(grids + grids[-2:0:-1], path, duration_ms=120, hold_last_ms=120, scale=_scale(frames))
