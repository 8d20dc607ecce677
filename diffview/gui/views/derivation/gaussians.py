"""The first steps of the derivation, on distributions you set by hand: the entropy of a 0–1 variable, then
two Gaussians p and q with their entropy, cross-entropy and KL, each in closed form and by integration."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QGridLayout, QLabel, QSlider, QVBoxLayout, QWidget

from diffview.core.analysis.derivation import (
    LN2,
    bernoulli_entropy,
    gaussian_cross_entropy,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_density,
    integrate_gaussians,
)
from diffview.gui.widgets.text import caption, readout

P_COLOUR, Q_COLOUR, KL_COLOUR = "#ffb050", "#5aa0ff", (80, 216, 144, 110)


def step_title(number: str, text: str) -> QLabel:
    """A panel's heading: its step of the derivation, numbered in the order the derivation goes."""
    label = QLabel(f"<b>{number}</b>&nbsp; {text}")
    label.setTextFormat(Qt.RichText)
    label.setWordWrap(True)
    label.setStyleSheet("font-size: 13px; padding: 4px 2px 0 2px;")
    return label


def spin(value: float, lo: float, hi: float, step: float = 0.05) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    return box


class EntropyPanel(QWidget):
    """① The entropy of the seed's 0–1 variable: H(P) over P, the current P marked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setValue(300)
        self.slider.setToolTip("P, the probability that the variable is 1")
        self.plot = pg.PlotWidget()
        self.plot.setMouseEnabled(False, False)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "P")
        self.plot.setLabel("left", "H(P), nats")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        ps = np.linspace(0.0, 1.0, 401)
        self.plot.plot(ps, bernoulli_entropy(ps), pen=pg.mkPen(P_COLOUR, width=2), antialias=True)
        self.plot.addLine(y=math.log(2.0), pen=pg.mkPen((200, 200, 200, 90), style=Qt.DashLine))
        self.marker = self.plot.plot(pen=None, symbol="o", symbolBrush=Q_COLOUR, symbolSize=10)
        self.plot.setMinimumHeight(120)
        self.setMaximumWidth(440)  # a single curve: the room goes to ②
        self.values = readout()
        self.values.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(step_title("①", "Entropy H(p) = −E<sub>p</sub>[log p]: the average surprise. For the seed's "
                                         "0–1 variable: H(P) = −P log P − (1−P) log(1−P)."))
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.slider)
        layout.addWidget(self.values)
        self.slider.valueChanged.connect(self.refresh)
        self.refresh()

    @property
    def P(self) -> float:  # noqa: N802 (the paper's name)
        return self.slider.value() / 1000

    def refresh(self, *_) -> None:
        P = self.P
        h = bernoulli_entropy(P)
        self.marker.setData([P], [h])
        self.values.setText(f"H({P:.3f}) = {h:.4f} nats = {h / LN2:.4f} bits;  the most is log 2 = "
                            f"{math.log(2):.4f} nats (1 bit), at P = ½")


class GaussiansPanel(QWidget):
    """② p = N(μ_p, σ_p²) and q = N(μ_q, σ_q²): densities, the shaded integrand of the KL, and H(p), H(p, q)
    and KL(p ‖ q) = H(p, q) − H(p) each in closed form beside its grid integral."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mu_p, self.sd_p = spin(0.0, -3.0, 3.0), spin(1.0, 0.1, 3.0)
        self.mu_q, self.sd_q = spin(1.0, -3.0, 3.0), spin(1.5, 0.1, 3.0)
        self.reverse = QCheckBox("show KL(q ‖ p) instead (swap the roles)")
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "x")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(10, 10))
        self.integrand = self.plot.plot(pen=pg.mkPen(KL_COLOUR[:3], width=1), fillLevel=0, brush=KL_COLOUR,
                                        name="the KL's integrand (shaded)")
        self.p_curve = self.plot.plot(pen=pg.mkPen(P_COLOUR, width=2), antialias=True, name="p")
        self.q_curve = self.plot.plot(pen=pg.mkPen(Q_COLOUR, width=2), antialias=True, name="q")
        # drag handles: a vertical line at each mean, dragged left or right to move it
        self.handles = {}
        for name, colour, box in (("p", P_COLOUR, self.mu_p), ("q", Q_COLOUR, self.mu_q)):
            line = pg.InfiniteLine(box.value(), angle=90, movable=True, label=f"μ_{name}",
                                   pen=pg.mkPen(colour, width=1, style=Qt.DashLine), hoverPen=pg.mkPen(colour, width=3),
                                   labelOpts={"position": 0.95, "color": colour})
            line.setToolTip(f"drag to move μ_{name}")
            line.sigPositionChanged.connect(lambda ln, b=box: b.setValue(ln.value()))
            self.plot.addItem(line)
            self.handles[name] = line
        self.plot.setMinimumHeight(160)
        self.values = readout()
        self.values.setWordWrap(True)

        controls = QGridLayout()
        for col, (name, box) in enumerate((("μ<sub>p</sub>", self.mu_p), ("σ<sub>p</sub>", self.sd_p),
                                           ("μ<sub>q</sub>", self.mu_q), ("σ<sub>q</sub>", self.sd_q))):
            controls.addWidget(QLabel(name), 0, 2 * col)
            controls.addWidget(box, 0, 2 * col + 1)
            box.valueChanged.connect(self.refresh)
        self.reverse.toggled.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(step_title(
            "②", "Cross-entropy H(p, q) = −E<sub>p</sub>[log q] ≥ H(p); the gap is the KL: KL(p ‖ q) = H(p, q) − H(p) "
                 "= E<sub>p</sub>[log p/q] ≥ 0. With p (the data) fixed, H(p) is a constant, so lowering the "
                 "cross-entropy lowers the KL by exactly as much."))
        layout.addWidget(self.plot, 1)
        layout.addLayout(controls)
        layout.addWidget(self.reverse)
        layout.addWidget(self.values)
        layout.addWidget(caption(
            "For Gaussians: H(p) = ½ log(2πe σ<sub>p</sub>²),  H(p, q) = ½ log(2π σ<sub>q</sub>²) + "
            "(σ<sub>p</sub>² + (μ<sub>p</sub> − μ<sub>q</sub>)²) / (2σ<sub>q</sub>²); the integrals are the "
            "trapezoid rule over μ<sub>p</sub> ± 12σ<sub>p</sub>. KL = 0 only where p = q. Drag the dashed lines to "
            "move the means."))
        self.refresh()

    def parameters(self) -> tuple[float, float, float, float]:
        """(μ_p, σ_p², μ_q, σ_q²), with p and q swapped when showing KL(q ‖ p)."""
        p = (self.mu_p.value(), self.sd_p.value() ** 2)
        q = (self.mu_q.value(), self.sd_q.value() ** 2)
        return (*q, *p) if self.reverse.isChecked() else (*p, *q)

    def refresh(self, *_) -> None:
        mu_p, var_p, mu_q, var_q = self.parameters()
        first, second = ("q", "p") if self.reverse.isChecked() else ("p", "q")
        closed = (gaussian_entropy(var_p), gaussian_cross_entropy(mu_p, var_p, mu_q, var_q),
                  gaussian_kl(mu_p, var_p, mu_q, var_q))
        grid = integrate_gaussians(mu_p, var_p, mu_q, var_q)
        numeric = (grid.entropy, grid.cross_entropy, grid.kl)
        # the plot: both densities wherever either has mass, and the integrand of the KL being shown
        sds = (math.sqrt(var_p), math.sqrt(var_q))
        lo, hi = min(mu_p - 4 * sds[0], mu_q - 4 * sds[1]), max(mu_p + 4 * sds[0], mu_q + 4 * sds[1])
        x = np.linspace(lo, hi, 600)
        log_p, log_q = gaussian_log_density(x, mu_p, var_p), gaussian_log_density(x, mu_q, var_q)
        curves = {"p": (self.mu_p.value(), self.sd_p.value() ** 2), "q": (self.mu_q.value(), self.sd_q.value() ** 2)}
        for name, (mu, _) in curves.items():
            self.handles[name].blockSignals(True)
            self.handles[name].setValue(mu)
            self.handles[name].blockSignals(False)
        self.p_curve.setData(x, np.exp(gaussian_log_density(x, *curves["p"])))
        self.q_curve.setData(x, np.exp(gaussian_log_density(x, *curves["q"])))
        self.integrand.setData(x, np.exp(log_p) * (log_p - log_q))
        rows = (f"H({first})", f"H({first}, {second})", f"KL({first} ‖ {second}) = H({first}, {second}) − H({first})")
        table = "".join(f"<tr><td>{name}</td><td align='right'>{c:.6f}</td><td align='right'>{n:.6f}</td>"
                        f"<td align='right'>{abs(c - n):.1e}</td></tr>" for name, c, n in zip(rows, closed, numeric))
        pq = gaussian_kl(self.mu_p.value(), self.sd_p.value() ** 2, self.mu_q.value(), self.sd_q.value() ** 2)
        qp = gaussian_kl(self.mu_q.value(), self.sd_q.value() ** 2, self.mu_p.value(), self.sd_p.value() ** 2)
        self.values.setText(
            "<table cellspacing='6'><tr><th align='left'>nats</th><th>closed form</th><th>grid integral</th>"
            f"<th>|difference|</th></tr>{table}</table>"
            f"KL(p ‖ q) = {pq:.4f} but KL(q ‖ p) = {qp:.4f}: the KL is not symmetric.")
        self.closed, self.numeric = closed, numeric  # what the table shows, for tests


__all__ = ["EntropyPanel", "GaussiansPanel", "step_title"]
