"""The variance schedule: β_t, ᾱ_t, √ᾱ_t, √(1−ᾱ_t) and log-SNR against t, with a timestep marker.

The marker follows the forward view's slider, and dragging the marker moves the slider. Other
schedules can be overlaid (dashed) for comparison at the same T.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from diffview.core.schedule import SCHEDULES, NoiseSchedule, make_schedule
from diffview.gui.widgets.text import T_INDEX_NOTE, caption

CURVES = {  # name: (label, colour)
    "alphas_cumprod": ("ᾱ<sub>t</sub>", "#5aa0ff"),
    "sqrt_alphas_cumprod": ("√ᾱ<sub>t</sub>", "#50d890"),
    "sqrt_one_minus_alphas_cumprod": ("√(1−ᾱ<sub>t</sub>)", "#ffb050"),
}
OVERLAY_COLOURS = {"linear": "#c792ea", "cosine": "#89ddff", "sigmoid": "#f78c6c", "sigmoid-beta": "#c3e88d",
                   "quadratic": "#ff5370"}


class ScheduleView(QWidget):
    """``session``: an AppSession whose schedule this shows as it changes."""

    timestep_changed = Signal(int)

    def __init__(self, session=None, parent=None):
        super().__init__(parent)
        self.schedule: NoiseSchedule | None = None
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.p_alpha = self.layout_widget.addPlot(row=0, col=0, title="ᾱ<sub>t</sub>, √ᾱ<sub>t</sub>, √(1−ᾱ<sub>t</sub>)")
        self.p_beta = self.layout_widget.addPlot(row=0, col=1, title="β<sub>t</sub> (log axis)")
        self.p_beta.setLogMode(y=True)  # β spans 1e-4 … 0.999: a linear axis shows only the last spike
        self.p_snr = self.layout_widget.addPlot(row=1, col=0, colspan=2,
                                                title="log-SNR = log(ᾱ<sub>t</sub> / (1−ᾱ<sub>t</sub>))")
        for p in (self.p_alpha, self.p_beta, self.p_snr):
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setLabel("bottom", "t")
        self.legend = self.p_alpha.addLegend(offset=(-10, 10))
        self.curves = {k: self.p_alpha.plot(pen=pg.mkPen(c, width=2), name=label, antialias=True)
                       for k, (label, c) in CURVES.items()}
        self.beta_curve = self.p_beta.plot(pen=pg.mkPen("#ff7a90", width=2), antialias=True)
        self.snr_curve = self.p_snr.plot(pen=pg.mkPen("#ffd060", width=2), antialias=True)
        self.overlays: dict[str, list] = {}
        self.markers = []
        for p in (self.p_alpha, self.p_beta, self.p_snr):
            line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ffffff", width=1.5),
                                   hoverPen=pg.mkPen("#ffff00", width=3))
            line.sigPositionChanged.connect(self._marker_moved)
            p.addItem(line)
            self.markers.append(line)
        self.readout = QLabel()

        boxes = QHBoxLayout()
        boxes.addWidget(QLabel("Overlay:"))
        self.checks: dict[str, QCheckBox] = {}
        for name in SCHEDULES:
            box = QCheckBox(name)
            box.setStyleSheet(f"color: {OVERLAY_COLOURS[name]}")
            box.setToolTip(f"Draw the {name} schedule dashed, at the same T, for comparison")
            box.toggled.connect(self._refresh_overlays)
            self.checks[name] = box
            boxes.addWidget(box)
        boxes.addStretch(1)
        boxes.addWidget(self.readout)

        layout = QVBoxLayout(self)
        layout.addWidget(self.layout_widget, 1)
        layout.addLayout(boxes)
        layout.addWidget(caption("ᾱ<sub>t</sub> = ∏<sub>s≤t</sub>(1 − β<sub>s</sub>);  x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub>"
                                 " + √(1−ᾱ<sub>t</sub>) ε, so √ᾱ<sub>t</sub> is how much signal is left and"
                                 " √(1−ᾱ<sub>t</sub>) how much noise;  SNR<sub>t</sub> = ᾱ<sub>t</sub> / (1−ᾱ<sub>t</sub>)."
                                 "  Drag the white marker to move t. " + T_INDEX_NOTE))
        if session is not None:
            session.schedule_changed.connect(self.set_schedule)

    def set_schedule(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        t = np.arange(schedule.timesteps)
        for key, curve in self.curves.items():
            curve.setData(t, getattr(schedule, key).numpy())
        self.beta_curve.setData(t, schedule.betas.numpy())
        self.snr_curve.setData(t, _finite(schedule.log_snr.numpy()))
        for name, box in self.checks.items():
            box.setEnabled(name != schedule.name)
        self._refresh_overlays()
        for p in (self.p_alpha, self.p_beta, self.p_snr):
            p.enableAutoRange()
        self.readout.setText(f"{schedule.name}, T = {schedule.timesteps}")

    def set_timestep(self, t: int) -> None:
        for line in self.markers:
            if int(round(line.value())) != t:
                line.blockSignals(True)
                line.setValue(t)
                line.blockSignals(False)

    def _marker_moved(self, line) -> None:
        if self.schedule is None:
            return
        t = int(np.clip(round(line.value()), 0, self.schedule.timesteps - 1))
        self.set_timestep(t)
        self.timestep_changed.emit(t)

    def _refresh_overlays(self) -> None:
        for items in self.overlays.values():
            for plot, item in items:
                plot.removeItem(item)
        self.overlays.clear()
        if self.schedule is None:
            return
        T = self.schedule.timesteps
        t = np.arange(T)
        for name, box in self.checks.items():
            if not box.isChecked() or name == self.schedule.name:
                continue
            try:
                other = make_schedule(name, T)
            except ValueError:
                box.setToolTip(f"{name} is not defined for T = {T}")
                continue
            pen = pg.mkPen(OVERLAY_COLOURS[name], width=1.5, style=pg.QtCore.Qt.DashLine)
            items = [(self.p_alpha, self.p_alpha.plot(t, other.alphas_cumprod.numpy(), pen=pen)),
                     (self.p_beta, self.p_beta.plot(t, other.betas.numpy(), pen=pen)),
                     (self.p_snr, self.p_snr.plot(t, _finite(other.log_snr.numpy()), pen=pen))]
            self.overlays[name] = items

    def curve_data(self, key: str) -> np.ndarray:
        """The y values a curve shows (for tests): a schedule field name, "betas" or "log_snr"."""
        if key == "betas":
            return self.beta_curve.yData
        if key == "log_snr":
            return self.snr_curve.yData
        return self.curves[key].yData


def _finite(y: np.ndarray) -> np.ndarray:
    """log-SNR is −∞ where ᾱ = 0 (zero terminal SNR); draw those points as gaps."""
    y = y.astype(float).copy()
    y[~np.isfinite(y)] = np.nan
    return y
