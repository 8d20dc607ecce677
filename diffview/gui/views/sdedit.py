"""Noise and denoise (SDEdit, Meng et al. 2022): take a training image or any image file, noise it to
t, denoise from there with the current model, and see what survives at each t (``analysis.iter_sdedit``).

t is the 0-based timestep index 0 … T−1 of every other view and the CLI (the paper's step t+1);
``UNTOUCHED`` (−1, as a finished chain's t_prev) is x_0 itself, no noise."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.sdedit import iter_sdedit, sdedit_noised
from diffview.core.io.export import to_uint8
from diffview.gui.views.job_view import ImageJobView, float_images
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.players import TimestepControl
from diffview.gui.widgets.sampler_choice import SamplerCombo

STRIP = 8
UNTOUCHED = -1  # "t" of the image as it is: x_0, no noise


def strip_timesteps(T: int, n: int = STRIP) -> list[int]:
    """n evenly spaced noise levels: UNTOUCHED (x_0), then indices t up to T−1 (pure noise at the top).

    They are round(i·T/(n−1)) − 1 for i = 0 … n−1, computed exactly (ties to even)."""
    return sorted({_round_half_even(i * T, n - 1) - 1 for i in range(n)}) if n > 1 else [T - 1]


def _round_half_even(num: int, den: int) -> int:
    q, r = divmod(num, den)
    return q + (2 * r > den or (2 * r == den and q % 2 == 1))


class NoiseLevelControl(TimestepControl):
    """The 0-based index t over 0..T−1, with one more stop below 0 (UNTOUCHED) shown as "none"."""

    MINIMUM = UNTOUCHED

    def __init__(self, maximum: int = 999, parent=None):
        super().__init__(maximum, parent=parent)
        self.spin.setSpecialValueText("none")
        self.slider.setToolTip("Timestep t (0-based index, the paper's step t+1); the far left is none: "
                               "x_0 untouched")


class SDEditView(ImageJobView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.schedule_source = None  # callable() -> the app's NoiseSchedule (for the slider before a model exists)
        self.noised: np.ndarray | None = None
        self.result: np.ndarray | None = None
        self.result_t: int | None = None
        self.strip_ts: list[int] = []
        self.strip: list[tuple[np.ndarray, np.ndarray]] = []  # (x_t, result) uint8 per strip t
        self.guiding = self.guiding_title = ""  # the class and S the last run denoised as ("" unconditionally)

        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.valueChanged.connect(self.use_training_image)
        self.open_button = QPushButton("Open image…")
        self.open_button.clicked.connect(self._open_dialog)
        self.timestep = NoiseLevelControl(999)  # the 0-based index t: none (untouched), 0 … T−1 (pure noise)
        self.t_slider, self.t_spin = self.timestep.slider, self.timestep.spin
        self.timestep.setValue(499)
        self.sampler = SamplerCombo()
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000)
        self.steps.setValue(50)
        self.steps.setToolTip("At most t+1 steps are taken, from t down to 0")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.with_strip = QCheckBox(f"and the strip of {STRIP} noise levels")
        self.with_strip.setChecked(True)
        self.guidance = GuidanceControls()  # denoise as a class: noise a 3, denoise it as a 7
        self.guidance.setToolTip("Denoise towards this class: the noised image keeps what survives at t and the "
                                 "model fills in the rest as the class")
        self.button = QPushButton("Noise and denoise")
        self.button.clicked.connect(self.start_or_cancel)
        self.timestep.changed.connect(lambda _: self.show_noised())
        self.seed.valueChanged.connect(lambda _: self.show_noised())
        self.status = QLabel("Pick an image and a t, then press Noise and denoise.")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Training image #", self.index)
        form.addRow(self.open_button)
        form.addRow("Noise to", self.timestep)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", self.seed)
        form.addRow(self.with_strip)
        form.addRow(self.guidance)
        form.addRow(self.button)
        form.addRow(self.status)

        self.original_grid = ImageGrid("original x<sub>0</sub>")
        self.noised_grid = ImageGrid("x<sub>t</sub>")
        self.result_grid = ImageGrid("denoised from t")
        self.strip_grid = ImageGrid("what survives: x<sub>t</sub> (top) and the denoised result (bottom) at each t")
        for target in (self.result_grid, self.strip_grid):
            self.add_placeholder(target, "Noise and denoise")
        top = QHBoxLayout()
        for g in (self.original_grid, self.noised_grid, self.result_grid):
            top.addWidget(g)
        right = QVBoxLayout()
        right.addLayout(top, 3)
        right.addWidget(self.strip_grid, 2)
        self.arrange(form, right, 320,
            "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε, then denoise from t with the reverse "
            "process (SDEdit, Meng et al. 2022). t is the 0-based index 0…T−1 of the other tabs: the paper's step "
            "t+1, so ᾱ<sub>t</sub> here is the paper's ᾱ<sub>t+1</sub>; t = T−1 starts from (nearly) pure noise, "
            "none leaves the image untouched")

    # ------------------------------------------------------------------ the image
    def set_timesteps(self, T: int) -> None:
        self.timestep.set_maximum(T - 1)
        self.steps.setMaximum(T)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        schedule = self.schedule_source() if self.schedule_source is not None else None
        if schedule is not None:
            self.set_timesteps(schedule.timesteps)
        self.show_noised()

    def _set_original(self, label: str) -> None:
        super()._set_original(label)
        self.original_grid.set_title(f"original x<sub>0</sub>: {label}")
        self.show_noised()

    def show_noised(self) -> None:
        """x_t of the image at the chosen t and seed, at once and without a model (one q_sample of one image on the
        GUI thread: well under a millisecond): the x_t that Noise and denoise then starts from."""
        schedule = self.schedule_source() if self.schedule_source is not None else None
        if self.original is None or schedule is None or self.busy:
            return
        t = min(self.t_spin.value(), schedule.timesteps - 1)
        if t == UNTOUCHED:
            self.noised_grid.set_images(self.original)
            self.noised_grid.set_title("x<sub>0</sub> untouched (no noise)")
            return
        x_t = sdedit_noised(float_images(self.original), t, schedule, torch.Generator().manual_seed(self.seed.value()))
        self.noised_grid.set_images(to_uint8(x_t))
        self.noised_grid.set_title(f"x<sub>t</sub>, t = {t}: √ᾱ<sub>t</sub> = "
                                   f"{float(schedule.sqrt_alphas_cumprod[t]):.3f} x<sub>0</sub> + noise")

    # ------------------------------------------------------------------ running
    def start(self) -> bool:
        if self.busy:
            return False
        handle = self.image_model()
        if handle is None:
            return False
        model, schedule, objective, label = handle.model, handle.schedule, handle.objective, handle.label
        T = schedule.timesteps
        self.set_timesteps(T)
        t = self.t_spin.value()
        ts = strip_timesteps(T) if self.with_strip.isChecked() else []
        x0 = float_images(self.original)
        kw = dict(objective=objective, sampler=self.sampler.key(), steps=self.steps.value(),
                  **self.guide())
        self.guiding, self.guiding_title = self.guidance.describe(), self.guidance.describe(short=True)
        seed = self.seed.value()

        def one(t, cancelled):
            g = torch.Generator().manual_seed(seed)
            x_t = out = x0
            # UNTOUCHED (−1) is the image itself: iter_sdedit yields nothing there
            for i, st in enumerate(iter_sdedit(model, x0, t, schedule, generator=g, **kw)):
                if cancelled():
                    return None
                if i == 0:
                    x_t = st.x_t
                out = st.x_prev
            return to_uint8(x_t), to_uint8(out)

        def work(emit, cancelled):
            model.eval()
            with torch.no_grad():
                main = one(t, cancelled)
                if main is None:
                    return None
                emit(("main", t, *main))
                for s in ts:
                    pair = one(s, cancelled)
                    if pair is None:
                        return None
                    emit(("strip", s, *pair))
            return True

        self.strip_ts, self.strip = ts, []
        self.button.setText("Cancel")
        self.set_status(f"Keeping {self.source_label} untouched…" if t == UNTOUCHED else
                        f"Noising {self.source_label} to t = {t} and denoising with {label}"
                        + (f" as {self.guiding}" if self.guiding else "") + "…")
        self.run_job(work, "diffview-sdedit", self._on_item, self._on_done)
        return True

    @Slot(object)
    def _on_item(self, item) -> None:
        kind, t, x_t, out = item
        if kind == "main":
            self.noised, self.result, self.result_t = x_t, out, t
            self.noised_grid.set_images(x_t)
            self.noised_grid.set_title("x<sub>0</sub> untouched (no noise)" if t == UNTOUCHED
                                       else f"x<sub>t</sub>, t = {t}")
            self.result_grid.set_images(out)
            as_class = f" as {self.guiding_title}" if self.guiding else ""
            self.result_grid.set_title("untouched: x<sub>0</sub> as it is" if t == UNTOUCHED
                                       else f"denoised from t = {t}{as_class}")
        else:
            self.strip.append((x_t, out))
            row = np.concatenate([np.concatenate([a for a, _ in self.strip]),
                                  np.concatenate([b for _, b in self.strip])])
            self.strip_grid.set_images(row, nrow=len(self.strip))
            self.strip_grid.set_title("what survives: x<sub>t</sub> (top) and denoised (bottom) at t = "
                                      + ", ".join("none" if s == UNTOUCHED else str(s)
                                                  for s in self.strip_ts[:len(self.strip)]))

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self.button.setText("Noise and denoise")
        if error:
            return
        if result is None:
            self.set_status("Cancelled.")
            return
        if self.result_t == UNTOUCHED:
            self.set_status(f"Done: {self.source_label} untouched (no noise), so the result is x_0 itself.")
            return
        self.set_status(f"Done: {self.source_label} noised to t = {self.result_t} and denoised "
                        + (f"as {self.guiding} " if self.guiding else "")
                        + f"({self.sampler.currentText()}, {min(self.steps.value(), self.result_t + 1)} steps).")
