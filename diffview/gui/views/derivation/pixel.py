"""The bound's terms on the user's model at one pixel: q(x_{t−1} | x_t, x_0) and p_θ(x_{t−1} | x_t) as two 1-D
Gaussians, then their KL rewritten step by step (DDPM eqs. 5–8, 12, 14). It draws a ``PixelTerms`` (the core's
numbers: ``core.analysis.derivation.pixel_terms``); the view computes it on a worker."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from diffview.core.analysis.derivation import LN2, PixelTerms, gaussian_log_density, posterior_coefficients
from diffview.core.diffusion import p_log_variance
from diffview.gui.views.derivation.gaussians import P_COLOUR, Q_COLOUR, step_title
from diffview.gui.widgets.text import readout

OBJECTIVE_WORDS = {"eps": "ε", "x0": "x<sub>0</sub>", "v": "v"}
VARIANCE_WORDS = {"fixed_small": "β̃<sub>t</sub> (fixed_small)", "fixed_large": "β<sub>t</sub> (fixed_large)",
                  "learned": "learned", "learned_range": "learned (improved DDPM eq. 15)"}


def _gray(a: np.ndarray) -> np.ndarray:
    """[C, H, W] in [−1, 1] as an image array for pyqtgraph (H, W) or (H, W, 3), 0…255."""
    img = np.clip((a + 1.0) * 127.5, 0, 255)
    return img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)


def eps_weights(schedule, variance: str) -> np.ndarray | None:
    # λ_t = β_t² / (2σ²_t α_t (1 − ᾱ_t))   (DDPM eq. 12's weight), for a fixed σ²_t; None for a learned one
    """λ_t over t = 0…T−1 for a fixed reverse variance, from the core's σ²_t (p_log_variance)."""
    if variance not in ("fixed_small", "fixed_large"):
        return None
    t = torch.arange(schedule.timesteps)
    var = torch.exp(p_log_variance(t, torch.zeros(schedule.timesteps, dtype=torch.float64), schedule, variance))
    lam = schedule.betas**2 / (2.0 * var * schedule.alphas * (1.0 - schedule.alphas_cumprod))
    return lam.numpy()


class PixelPanel(QObject):
    """Steps ③–⑦ at one pixel, in two halves to lay out: ``figures`` (③) and ``readouts`` (④–⑦);
    ``pixel_clicked(row, col)`` when an image is clicked."""

    pixel_clicked = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.terms: PixelTerms | None = None
        self.pixel = (0, 0, 0)
        self.images = pg.GraphicsLayoutWidget()
        self.images.setMinimumHeight(150)
        self.boxes, self.items, self.marks = [], [], []
        for col, title in enumerate(("x<sub>0</sub>", "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + "
                                     "√(1−ᾱ<sub>t</sub>) ε", "KL per pixel (click one)")):
            box = self.images.addViewBox(row=0, col=col, lockAspect=True, invertY=True, enableMouse=False)
            box.setMenuEnabled(False)
            item = pg.ImageItem(axisOrder="row-major")
            box.addItem(item)
            mark = pg.ScatterPlotItem(symbol="s", size=12, pen=pg.mkPen("#ff4040", width=2), brush=None)
            box.addItem(mark)
            self.images.addLabel(title, row=1, col=col, size="9pt")
            self.boxes.append(box)
            self.items.append(item)
            self.marks.append(mark)
        self.images.scene().sigMouseClicked.connect(self._clicked)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "x<sub>t−1</sub> at this pixel")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # the pixel's own values, never ×0.001
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(-10, 10))
        self.q_curve = self.plot.plot(pen=pg.mkPen(P_COLOUR, width=4), antialias=True,
                                      name="q(x<sub>t−1</sub> | x<sub>t</sub>, x<sub>0</sub>): mean μ̃<sub>t</sub>, "
                                           "variance β̃<sub>t</sub>")
        self.p_curve = self.plot.plot(pen=pg.mkPen(Q_COLOUR, width=2, style=Qt.DashLine), antialias=True,
                                      name="p<sub>θ</sub>(x<sub>t−1</sub> | x<sub>t</sub>): mean μ<sub>θ</sub>, "
                                           "variance σ²<sub>t</sub>")
        self.plot.setMinimumHeight(150)
        self.weights = pg.PlotWidget(title="λ<sub>t</sub>, the weight eq. 14 drops (log scale)")
        self.weights.setMenuEnabled(False)
        self.weights.setMouseEnabled(False, False)
        self.weights.setLogMode(y=True)
        self.weights.setLabel("bottom", "t")
        self.weights.setFixedHeight(150)
        self.weight_curve = self.weights.plot(pen=pg.mkPen("#50d890", width=2))
        self.weight_mark = self.weights.plot(pen=None, symbol="o", symbolBrush="#ffb050", symbolSize=8)
        self._weights_for = None

        self.gaussians = readout()
        self.gaussians.setWordWrap(True)
        self.steps = {}
        # two halves the view lays out side by side: the pictures (③) and the chain of numbers (④–⑦)
        self.figures, self.readouts = QWidget(), QWidget()
        figures = QVBoxLayout(self.figures)
        figures.setContentsMargins(0, 0, 0, 0)
        figures.addWidget(step_title(
            "③", "The bound is a sum of KLs (DDPM eq. 5): L<sub>t−1</sub> = KL(q(x<sub>t−1</sub>|x<sub>t</sub>,"
                 "x<sub>0</sub>) ‖ p<sub>θ</sub>(x<sub>t−1</sub>|x<sub>t</sub>)), and at each pixel both are 1-D "
                 "Gaussians (eqs. 6–7):"))
        figures.addWidget(self.images, 2)
        figures.addWidget(self.plot, 3)
        figures.addWidget(self.gaussians)
        numbers = QVBoxLayout(self.readouts)
        numbers.setContentsMargins(0, 0, 0, 0)
        for key, number, text in (
                ("kl", "④", "Their KL, in closed form (the core's normal_kl), per pixel and in bits/dim "
                            "(÷ D ln 2):"),
                ("eq8", "⑤", "The means' part: KL = ‖μ̃<sub>t</sub> − μ<sub>θ</sub>‖² / (2σ²<sub>t</sub>) + C, "
                             "C from the variances alone (DDPM eq. 8):"),
                ("eq12", "⑥", "In ε: μ<sub>θ</sub> = (x<sub>t</sub> − β<sub>t</sub>/√(1−ᾱ<sub>t</sub>) "
                              "ε<sub>θ</sub>) / √α<sub>t</sub> makes the means' part β<sub>t</sub>² / (2σ²<sub>t</sub> "
                              "α<sub>t</sub> (1−ᾱ<sub>t</sub>)) ‖ε − ε<sub>θ</sub>‖² (DDPM eq. 12):"),
                ("simple", "⑦", "DDPM drops the weight λ<sub>t</sub>: L<sub>simple</sub> = ‖ε − ε<sub>θ</sub>‖² "
                                "(eq. 14), the loss Algorithm 1 trains on:")):
            value = readout()
            value.setWordWrap(True)
            self.steps[key] = value
            numbers.addWidget(step_title(number, text))
            numbers.addWidget(value)
        numbers.addWidget(self.weights)
        numbers.addStretch(1)

    # ------------------------------------------------------------------ drawing
    def show_terms(self, terms: PixelTerms, schedule, objective: str) -> None:
        self.terms, self.schedule, self.objective = terms, schedule, objective
        self.items[0].setImage(_gray(terms.x0), levels=(0, 255), autoLevels=False)
        self.items[1].setImage(_gray(np.clip(terms.x_t, -1, 1)), levels=(0, 255), autoLevels=False)
        kl = terms.kl.max(axis=0)
        self.items[2].setImage(kl, levels=(0.0, max(float(kl.max()), 1e-12)), autoLevels=False)
        self.items[2].setColorMap(pg.colormap.get("inferno"))
        for box in self.boxes:
            box.autoRange(padding=0.01)
        key = (id(schedule), terms.variance)
        if key != self._weights_for:
            self._weights_for = key
            lam = eps_weights(schedule, terms.variance)
            self.weights.setVisible(lam is not None)
            if lam is not None:
                self.weight_curve.setData(np.arange(1, len(lam), dtype=float), lam[1:])
        self.show_pixel(*self.pixel)

    def show_pixel(self, c: int, row: int, col: int) -> None:
        self.pixel = (c, row, col)
        terms = self.terms
        if terms is None:
            return
        for mark in self.marks:
            mark.setData([col + 0.5], [row + 0.5])
        at = (c, row, col)
        q_mean, p_mean = float(terms.q_mean[at]), float(terms.p_mean[at])
        q_var, p_var = math.exp(terms.q_logvar), math.exp(float(terms.p_logvar[at]))
        sd = math.sqrt(max(q_var, p_var))
        x = np.linspace(min(q_mean, p_mean) - 4 * sd, max(q_mean, p_mean) + 4 * sd, 500)
        self.q_curve.setData(x, np.exp(gaussian_log_density(x, q_mean, q_var)))
        self.p_curve.setData(x, np.exp(gaussian_log_density(x, p_mean, p_var)))
        self.weight_mark.setData([float(terms.t)], [float(terms.weight[at])])
        self.gaussians.setText(self._gaussians_text(at, q_mean, q_var, p_mean, p_var))
        self._steps_text(at)

    def _gaussians_text(self, at, q_mean, q_var, p_mean, p_var) -> str:
        terms = self.terms
        a, b = posterior_coefficients(terms.t, self.schedule, torch.zeros(()))
        x0, xt, x0_hat = (float(v[at]) for v in (terms.x0, terms.x_t, terms.x0_pred))
        clip = " (clipped to [−1, 1], as the sampler and the Bound tab do)" if terms.clip_x0 else " (not clipped)"
        return (f"pixel (channel {at[0]}, row {at[1]}, column {at[2]}) at t = {terms.t}:<br>"
                f"<span style='color:{P_COLOUR}'>q</span>: μ̃<sub>t</sub> = {a:.4f}·x<sub>0</sub> + "
                f"{b:.4f}·x<sub>t</sub> = {a:.4f}·({x0:+.4f}) + {b:.4f}·({xt:+.4f}) = {q_mean:+.5f},  "
                f"β̃<sub>t</sub> = {q_var:.3e}<br>"
                f"<span style='color:{Q_COLOUR}'>p<sub>θ</sub></span>: μ<sub>θ</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, "
                f"x̂<sub>0</sub>), x̂<sub>0</sub> = {x0_hat:+.4f} from the model's "
                f"{OBJECTIVE_WORDS.get(self.objective, self.objective)}{clip} = {p_mean:+.5f},  σ²<sub>t</sub> = "
                f"{p_var:.3e}, {VARIANCE_WORDS.get(terms.variance, terms.variance)}")

    def _steps_text(self, at) -> None:
        terms, d = self.terms, self.terms.dims
        kl, bpd, eq8, c = (float(v[at]) for v in (terms.kl, terms.bpd, terms.eq8, terms.variance_part))
        image_bpd = float(terms.bpd.sum())
        self.steps["kl"].setText(
            f"KL = {kl:.6g} nats at this pixel → {kl:.4g} / ({d} · ln 2) = {bpd:.4g} bits/dim;<br>"
            f"Σ over the D = {d} pixels: L<sub>t−1</sub> = <b>{image_bpd:.6f} bits/dim</b> for this image "
            f"(the Bound tab's term at t, with this ε)")
        if terms.equal_variances:
            why = "σ²<sub>t</sub> = β̃<sub>t</sub>, so C = 0 and the means' part is the whole KL"
        elif terms.variance in ("fixed_small", "fixed_large"):
            why = ("σ²<sub>t</sub> ≠ β̃<sub>t</sub>, so C ≠ 0 (eq. 8's constant, ½(β̃/σ² − 1 − log(β̃/σ²))); "
                   "it does not depend on θ")
        else:
            why = "a learned σ²<sub>t</sub> ≠ β̃<sub>t</sub>: C depends on θ too"
        self.steps["eq8"].setText(f"(μ̃ − μ<sub>θ</sub>)² / (2σ²) = {eq8:.6g},  C = {c:.6g};  their sum "
                                  f"{eq8 + c:.6g} nats = ④'s KL. Here {why}.")
        eps, eps_hat, lam = (float(v[at]) for v in (terms.eps, terms.eps_pred, terms.weight))
        raw = float((terms.q_mean[at] - terms.p_mean_raw[at]) ** 2 / (2 * math.exp(float(terms.p_logvar[at]))))
        conv = "" if self.objective == "eps" else (f" (the model predicts {OBJECTIVE_WORDS[self.objective]}; "
                                                   "ε<sub>θ</sub> is that prediction turned into ε)")
        note = ("" if not terms.clip_x0 else
                (" x̂<sub>0</sub> was clipped at this pixel, so this (unclipped) form differs from ⑤ here."
                 if terms.clipped[at] else " x̂<sub>0</sub> is inside [−1, 1] here, so ⑤ and ⑥ agree."))
        self.steps["eq12"].setText(
            f"λ<sub>t</sub> = {lam:.4g};  ε = {eps:+.4f}, ε<sub>θ</sub> = {eps_hat:+.4f}{conv}:  "
            f"λ<sub>t</sub> (ε − ε<sub>θ</sub>)² = {float(terms.eq12[at]):.6g} nats "
            f"(= the means' part with x̂<sub>0</sub> unclipped, {raw:.6g}).{note}")
        self.steps["simple"].setText(
            f"(ε − ε<sub>θ</sub>)² = {float(terms.simple[at]):.6g} here; mean over the image {terms.simple.mean():.5f} "
            f"(its ε-loss at this t and ε). Without λ<sub>t</sub> every t counts alike; in the bound the "
            f"small t weigh most (plot below). Σ λ<sub>t</sub>(ε − ε<sub>θ</sub>)² / (D ln 2) = "
            f"{float(terms.eq12.sum()) / (d * LN2):.6f} bits/dim.")

    def _clicked(self, event) -> None:
        for box in self.boxes:
            if box.sceneBoundingRect().contains(event.scenePos()) and self.terms is not None:
                p = box.mapSceneToView(event.scenePos())
                _, h, w = self.terms.kl.shape
                row, col = int(math.floor(p.y())), int(math.floor(p.x()))
                if 0 <= row < h and 0 <= col < w:
                    self.pixel_clicked.emit(row, col)
                return


__all__ = ["PixelPanel", "eps_weights"]
