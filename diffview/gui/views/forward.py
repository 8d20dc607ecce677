"""Forward process: training images noised to timestep t in closed form, scrubbed with a slider.

The noise ε is drawn once, so moving the slider shows the same images getting noisier:
x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (DDPM eq. 4). Beside the grid: a strip x_0 → x_T at evenly spaced t,
the histogram of pixel values at t against the N(0, 1) density, and the schedule's readouts at t.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from diffview.core.data.images import ImageDataset
from diffview.core.diffusion import q_sample
from diffview.core.io.export import to_uint8
from diffview.core.schedule import NoiseSchedule
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.players import TimestepControl
from diffview.gui.widgets.text import T_INDEX_NOTE, caption, readout

GRID_IMAGES = 64
STRIP_STEPS = 10


class ForwardView(QWidget):
    """``session``: an AppSession whose images and schedule this shows as they change."""

    timestep_changed = Signal(int)

    def __init__(self, session=None, parent=None):
        super().__init__(parent)
        self.schedule: NoiseSchedule | None = None
        self.x0: torch.Tensor | None = None
        self.noise: torch.Tensor | None = None

        self.grid = ImageGrid("x<sub>t</sub> for 64 training images")
        self.strip = ImageGrid("one image from x<sub>0</sub> to x<sub>T</sub>")
        self.strip.setMinimumHeight(90)
        self.hist = pg.PlotWidget(title="pixel values at t  vs  N(0, 1)")
        self.hist.setMouseEnabled(False, False)
        self.hist.setXRange(-4, 4)
        self.hist.showGrid(x=True, y=True, alpha=0.2)
        self.hist_curve = self.hist.plot(stepMode="center", fillLevel=0, brush=(90, 160, 255, 120),
                                         pen=pg.mkPen("#5aa0ff"))
        xs = np.linspace(-4, 4, 200)
        self.hist.plot(xs, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), pen=pg.mkPen("#ffb050", width=2))
        self.values = readout()

        self.timestep = TimestepControl()
        self.slider, self.spin = self.timestep.slider, self.timestep.spin
        self.play = QPushButton("▶ Play")
        self.play.setCheckable(True)
        self.play.setToolTip("Animate t from 0 to T−1")
        self.timer = QTimer(self)
        self.timer.setInterval(30)
        self.timer.timeout.connect(self._advance)
        self.play.toggled.connect(self._toggle_play)
        self.timestep.changed.connect(self._timestep_moved)

        controls = QHBoxLayout()
        controls.addWidget(self.timestep, 1)
        controls.addWidget(self.play)

        side = QVBoxLayout()
        side.addWidget(self.hist, 2)
        side.addWidget(self.values)
        layout = QGridLayout(self)
        layout.addWidget(self.grid, 0, 0)
        layout.addLayout(side, 0, 1)
        layout.addWidget(self.strip, 1, 0, 1, 2)
        layout.addLayout(controls, 2, 0, 1, 2)
        layout.addWidget(caption("x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε,  "
                                 "ε ~ N(0, I) drawn once  (DDPM eq. 4; q(x<sub>t</sub> | x<sub>0</sub>) in closed form). " + T_INDEX_NOTE),
                         3, 0, 1, 2)
        layout.setColumnStretch(0, 3)
        layout.setColumnStretch(1, 2)
        layout.setRowStretch(0, 4)
        layout.setRowStretch(1, 1)
        if session is not None:
            session.data_changed.connect(lambda _: self.set_images(session.preview))
            session.schedule_changed.connect(self.set_schedule)

    @property
    def t(self) -> int:
        return self.timestep.value()

    def set_images(self, images_uint8: np.ndarray) -> None:
        """The training images to noise (uint8 [N, C, H, W]); the first 64 are used."""
        self.x0 = ImageDataset.to_float(torch.from_numpy(np.ascontiguousarray(images_uint8[:GRID_IMAGES])))
        g = torch.Generator().manual_seed(0)
        self.noise = torch.randn(self.x0.shape, generator=g)
        self._refresh_strip()
        self._refresh()

    def set_schedule(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.timestep.set_maximum(schedule.timesteps - 1)
        self._refresh_strip()
        self._refresh()

    def set_timestep(self, t: int) -> None:
        self.timestep.setValue(t)

    def _timestep_moved(self, t: int) -> None:
        self._refresh()
        self.timestep_changed.emit(t)

    def noised(self, t: int) -> torch.Tensor:
        """x_t for the grid's images at timestep t, with the view's fixed ε."""
        return q_sample(self.x0, t, self.schedule, self.noise)

    def _refresh(self) -> None:
        if self.schedule is None or self.x0 is None:
            return
        t = self.t
        xt = self.noised(t)
        self.grid.set_images(to_uint8(xt))
        counts, edges = np.histogram(xt.numpy().ravel(), bins=60, range=(-4, 4), density=True)
        self.hist_curve.setData(edges, counts)
        s = self.schedule
        snr = float(s.snr[t])
        snr_db = 10 * math.log10(snr) if snr > 0 else float("-inf")
        self.values.setText(
            f"t = {t} of {s.timesteps - 1}<br>"
            f"β<sub>t</sub> = {float(s.betas[t]):.6f}<br>"
            f"ᾱ<sub>t</sub> = {float(s.alphas_cumprod[t]):.6f}<br>"
            f"√ᾱ<sub>t</sub> = {float(s.sqrt_alphas_cumprod[t]):.6f}<br>"
            f"√(1−ᾱ<sub>t</sub>) = {float(s.sqrt_one_minus_alphas_cumprod[t]):.6f}<br>"
            f"SNR = {snr_db:.2f} dB")

    def _refresh_strip(self) -> None:
        if self.schedule is None or self.x0 is None:
            return
        T = self.schedule.timesteps
        ts = np.linspace(0, T - 1, STRIP_STEPS).round().astype(int)
        frames = torch.cat([q_sample(self.x0[:1], int(t), self.schedule, self.noise[:1]) for t in ts])
        self.strip.set_images(to_uint8(frames), nrow=STRIP_STEPS)
        self.strip.set_title("x<sub>0</sub> → x<sub>T</sub> at t = " + ", ".join(str(int(t)) for t in ts))

    def _toggle_play(self, on: bool) -> None:
        self.play.setText("⏸ Pause" if on else "▶ Play")
        if on:
            if self.schedule is not None and self.t >= self.schedule.timesteps - 1:
                self.set_timestep(0)
            self.timer.start()
        else:
            self.timer.stop()

    def _advance(self) -> None:
        if self.schedule is None:
            return
        T = self.schedule.timesteps
        step = max(1, T // 150)
        nxt = self.t + step
        if nxt >= T - 1:
            self.set_timestep(T - 1)
            self.play.setChecked(False)
        else:
            self.set_timestep(nxt)
