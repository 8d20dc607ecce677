"""The 2D tab's panels: each draws one result of the session and holds no state beyond what it shows.

Forward (x_t of the data coloured by class, and drawing), reverse trajectories, the score field beside a
class's guided score, guided samples of each class, annealed Langevin beside DDPM, and the distances
readout (with the buttons that measure them).
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from diffview.core.data.points import PLOT_LIMIT
from diffview.gui.views.lab2d.session import CLASS_N, FINAL_N, GRID, TRAJ_N, TRAJ_STEPS
from diffview.gui.widgets.players import FramePlayer
from diffview.gui.widgets.plot_style import Placeholder
from diffview.gui.widgets.points_canvas import (
    BRIGHT_COLOUR,
    DATA_COLOUR,
    LEARNED_COLOUR,
    TRUE_COLOUR,
    ClassScatter,
    PointsPlot,
    arrow_segments,
    class_colour,
    class_legend,
    paths_with_gaps,
)
from diffview.gui.widgets.text import T_INDEX_NOTE, caption, readout

EMPTY = np.zeros((0, 2))
FORWARD_TITLE = "Forward: x<sub>t</sub> of 2,000 data points"
NB_T, NB_S = "t&nbsp;=&nbsp;", "S&nbsp;=&nbsp;"  # "t = ", "S = " kept on one line when a title wraps


def failed_text(err: str) -> str:
    return f"<span style='color:#ff8080'>failed: {html.escape(err)}</span>"


def _legend_label() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.RichText)
    label.setWordWrap(True)
    label.setStyleSheet("font-size: 11px;")
    return label


class _Panel(QWidget):
    """A plot (or a row of them), an optional player under it, then its formula's caption."""

    def arrange(self, plots, player, formula: str) -> QVBoxLayout:
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addLayout(plots) if isinstance(plots, QHBoxLayout) else box.addWidget(plots, 1)
        if player is not None:
            box.addWidget(player)
        box.addWidget(caption(formula))
        return box


class ForwardPanel(_Panel):
    """x_t = q_sample(x_0) of the shown points at t over the data, each coloured by its x_0's class, with a
    legend; in draw mode, a drag adds points."""

    drawn = Signal(object)  # points, plot coordinates

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = PointsPlot(FORWARD_TITLE)
        self.plot.drawn.connect(self.drawn)
        self.data = self.plot.scatter(DATA_COLOUR, 3)
        self.points = ClassScatter(self.plot)
        self.legend = _legend_label()
        box = self.arrange(self.plot, None,
                           "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε, ε ~ N(0, I) drawn "
                           "once, coloured by the class of x<sub>0</sub>; grey: the data x<sub>0</sub>. Draw mode: "
                           "drag on this plot to add points. " + T_INDEX_NOTE)
        box.insertWidget(1, self.legend)

    def set_classes(self, labels: np.ndarray | None, names) -> None:
        """The class of each shown point (built once per dataset) and the legend naming the classes."""
        self.points.set_labels(labels, names)
        self.legend.setText(class_legend(names, labels is not None and bool((labels < 0).any())) if names else "")
        self.legend.setVisible(bool(names))

    def set_drawing(self, drawing: bool) -> None:
        self.plot.draw_enabled = drawing
        self.plot.setTitle("Draw: drag on this plot to add points" if drawing else FORWARD_TITLE)

    def show_points(self, x0: np.ndarray, xt: np.ndarray, t: int) -> None:
        self.data.setData(pos=x0)
        self.points.set_positions(xt)
        self.data.setVisible(t > 0)


class TrajectoryPanel(_Panel):
    """Reverse DDPM paths from x_T, faint, with the positions at the player's frame bright."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = PointsPlot(f"Reverse DDPM trajectories ({TRAJ_N} points)")
        self.data = self.plot.scatter(DATA_COLOUR, 3)
        self.paths = self.plot.lines((90, 160, 255, 16), connect="finite")
        self.now = self.plot.scatter(BRIGHT_COLOUR, 4)
        self.player = FramePlayer(40)
        self.player.frame.connect(self._show_frame)
        self.slider, self.label = self.player.slider, self.player.label
        self.trajectory: np.ndarray | None = None
        self.ts: list[int] = []
        self.arrange(self.plot, self.player,
                     "x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z from "
                     "x<sub>T</sub> ~ N(0, I): paths faint, current positions bright")

    def show_trajectory(self, trajectory: np.ndarray, ts: list[int]) -> None:
        self.trajectory, self.ts = trajectory, ts
        self.paths.setData(*paths_with_gaps(trajectory))
        self.player.set_frames(len(trajectory))

    def clear(self) -> None:
        self.trajectory = None
        self.now.setData(pos=EMPTY)
        self.paths.setData([], [])
        self.label.setText("")

    def _show_frame(self, k: int) -> None:
        if self.trajectory is None:
            return
        self.now.setData(pos=self.trajectory[k])
        S = len(self.trajectory) - 1
        where = "x<sub>T</sub>" if k == 0 else "x<sub>0</sub>" if self.ts[k - 1] < 0 else \
            f"x<sub>t</sub>, t = {self.ts[k - 1]}"
        self.label.setText(f"step {k} of {S}: {where}")


class ScorePanel(_Panel):
    """The learned score's directions on a grid at t (for gaussians8 beside the true score and log-density),
    and beside it the guided score towards the chosen class at S, over that class's points."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = PointsPlot("Unconditional score at t")
        self.points = self.plot.scatter(DATA_COLOUR, 2)
        self.contours = self.plot.lines((120, 230, 140, 170), connect="finite")
        self.true_arrows = self.plot.lines(TRUE_COLOUR, 1.2)
        self.learned_arrows = self.plot.lines(LEARNED_COLOUR, 1.2)
        self.guided_plot = PointsPlot("Guided score")
        self.guided_points = self.guided_plot.scatter(DATA_COLOUR, 2)
        self.class_points = self.guided_plot.scatter(class_colour(0, 150), 3)
        self.guided_arrows = self.guided_plot.lines(class_colour(0, 230), 1.2)
        self.guided_note = Placeholder(self.guided_plot.getPlotItem().getViewBox(),
                                       "Tick <b>Conditional</b> and press <b>Train</b>: the guided score needs a "
                                       "class-conditional model.")
        pair = QHBoxLayout()
        for plot in (self.plot, self.guided_plot):
            plot.setMinimumSize(150, 150)
            pair.addWidget(plot)
        self.arrange(pair, None,
                     "<span style='color:#78c8ff'>s<sub>θ</sub>(x,t) = −ε<sub>θ</sub>(x,t)/√(1−ᾱ<sub>t</sub>)"
                     "</span> on a 20×20 grid, arrows normalised to one length (direction only); gaussians8: "
                     "<span style='color:#78e68c'>level sets of log p<sub>t</sub></span> and "
                     "<span style='color:#ffb050'>the true score ∇log p<sub>t</sub></span>. Right: "
                     "s̃ = −ε̃/√(1−ᾱ<sub>t</sub>), ε̃ = ε<sub>u</sub> + S (ε<sub>c</sub> − ε<sub>u</sub>), "
                     "over the class's points (coloured)")

    def show_field(self, out: dict, points_at_t: np.ndarray, labels: np.ndarray | None = None,
                   class_names=()) -> None:
        """``out`` from core.analysis.lab2d.score_field; ``labels`` the class of each of ``points_at_t``."""
        length = 0.8 * (2 * PLOT_LIMIT - 0.3) / (GRID - 1)
        for item, key in ((self.learned_arrows, "score"), (self.true_arrows, "true"), (self.guided_arrows, "guided")):
            item.setData(*(arrow_segments(out["grid"], out[key], length) if out[key] is not None else ([], [])))
        self.contours.setData(*(out["contours"] if out["contours"] is not None else ([], [])))
        self.points.setData(pos=points_at_t)
        t = out["t"]
        self.plot.setTitle(f"Unconditional score ∇log p<sub>t</sub>(x), {NB_T}{t}"
                           + ("" if out["score"] is not None else " (true score only: not trained yet)"))
        k = out["label"]
        self.guided_note.item.setVisible(out["guided"] is None)
        if out["guided"] is None:
            self.guided_points.setData(pos=EMPTY)
            self.class_points.setData(pos=EMPTY)
            self.guided_plot.setTitle("Guided score: " + ("not trained yet" if out["score"] is None else
                                                          "train with Conditional ticked"))
            return
        colour = class_colour(k)
        self.guided_arrows.setPen(colour[:3], width=1.2)
        self.class_points.setBrush(*class_colour(k, 150))
        mine = np.zeros(len(points_at_t), bool) if labels is None else labels == k
        self.guided_points.setData(pos=points_at_t[~mine])
        self.class_points.setData(pos=points_at_t[mine])
        name = class_names[k] if k < len(class_names) else str(k)
        self.guided_plot.setTitle(f"Guided score for class {html.escape(name)} at {NB_S}{out['scale']:g}, {NB_T}{t}")

    def show_error(self, t: int, err: str) -> None:
        for plot in (self.plot, self.guided_plot):
            plot.setTitle(f"Score at t = {t}: failed ({html.escape(err)})")


class ClassSamplesPanel(_Panel):
    """CLASS_N guided samples of each class coloured by class, beside as many unconditional ones in grey."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.guided_plot = PointsPlot("Guided samples of each class")
        self.uncond_plot = PointsPlot("Unconditional samples")
        self.data = [plot.scatter(DATA_COLOUR, 3) for plot in (self.guided_plot, self.uncond_plot)]
        self.samples = ClassScatter(self.guided_plot, 2.5, 170)
        self.uncond = self.uncond_plot.scatter((215, 215, 215, 150), 2.5)
        self.text = _legend_label()
        pair = QHBoxLayout()
        for plot in (self.guided_plot, self.uncond_plot):
            plot.setMinimumSize(150, 150)
            pair.addWidget(plot)
        box = self.arrange(pair, None, f"{CLASS_N} DDPM samples ({TRAJ_STEPS} steps) of each class y with ε̃ = "
                                       "ε<sub>u</sub> + S (ε<sub>c</sub> − ε<sub>u</sub>); beside them as many "
                                       "unconditional ones (ε<sub>u</sub>, grey) from the same x<sub>T</sub>; "
                                       "faint: the data")
        box.insertWidget(1, self.text)

    def set_data(self, x0: np.ndarray) -> None:
        for item in self.data:
            item.setData(pos=x0)

    def show_result(self, out: dict, class_names) -> None:
        self.samples.set_labels(out["labels"], class_names)
        self.samples.set_positions(out["guided"])
        self.uncond.setData(pos=out["uncond"])
        self.guided_plot.setTitle(f"Guided samples, {out['n']:,} per class, {NB_S}{out['scale']:g}")
        self.uncond_plot.setTitle(f"Unconditional samples ({len(out['uncond']):,})")
        self.text.setText(class_legend(class_names))

    def clear(self) -> None:
        self.samples.clear()
        self.uncond.setData(pos=EMPTY)
        self.guided_plot.setTitle("Guided samples of each class")
        self.uncond_plot.setTitle("Unconditional samples")
        self.text.setText("")


class LangevinPanel(_Panel):
    """Annealed Langevin beside DDPM from the same x_T, level by level, with their distances to the data."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lang_plot = PointsPlot("Annealed Langevin")
        self.ddpm_plot = PointsPlot("DDPM, same x<sub>T</sub>")
        self.lang_points = self.lang_plot.scatter(LEARNED_COLOUR)
        self.ddpm_points = self.ddpm_plot.scatter()
        for plot in (self.lang_plot, self.ddpm_plot):
            plot.setMinimumSize(150, 150)
        self.notes = [Placeholder(plot.getPlotItem().getViewBox(), "Press <b>Run Langevin vs DDPM</b> once the "
                                  "model has trained (<b>Train</b>).") for plot in (self.lang_plot, self.ddpm_plot)]
        self.player = FramePlayer(80)
        self.player.frame.connect(self._show_frame)
        self.slider, self.label = self.player.slider, self.player.label
        self.text = QLabel()
        self.text.setTextFormat(Qt.RichText)
        self.text.setStyleSheet("font-family: monospace; font-size: 11px;")
        self.result: dict | None = None
        pair = QHBoxLayout()
        pair.addWidget(self.lang_plot)
        pair.addWidget(self.ddpm_plot)
        box = self.arrange(pair, self.player, "x ← x + (δ<sub>t</sub>/2) s<sub>θ</sub>(x, t) + √δ<sub>t</sub> z,  "
                                              "δ<sub>t</sub> = δ(1−ᾱ<sub>t</sub>), at each level t; beside DDPM at "
                                              "the same levels")
        box.insertWidget(2, self.text)

    def show_result(self, out: dict) -> None:
        self.result = out
        for note in self.notes:
            note.hide()
        self.player.set_frames(out["levels"] + 1)
        self.text.setText(f"SW distance to data ({out['n']:,} points): <span style='color:#78c8ff'>Langevin "
                          f"{out['lang_d']:.4f}</span> · DDPM {out['ddpm_d']:.4f} · floor {out['floor']:.4f}")

    def clear(self) -> None:
        self.result = None
        for note in self.notes:
            note.show()
        for item in (self.lang_points, self.ddpm_points):
            item.setData(pos=EMPTY)
        self.text.setText("")
        self.label.setText("")

    def _show_frame(self, k: int) -> None:
        if self.result is None:
            return
        self.lang_points.setData(pos=self.result["lang"][k])
        self.ddpm_points.setData(pos=self.result["ddpm"][k])
        where = "x<sub>T</sub>" if k == 0 else f"t = {self.result['ts'][k - 1]}"
        self.label.setText(f"level {k} of {self.result['levels']}, {where}")


class DistancesPanel(QWidget):
    """The buttons that measure the samplers on FINAL_N points, and the readout of what they measured."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.final_button = QPushButton(f"Distances on {FINAL_N:,} points")
        self.final_button.setToolTip("DDPM and annealed Langevin on 10,000 points each, against the data")
        self.compare_button = QPushButton(f"Compare samplers on {FINAL_N:,} points")
        self.compare_button.setToolTip("DDPM with all T steps; at 50 and 10 network evaluations (NFE) each, DDPM, "
                                       "DDIM at η = 0 and 1, Heun and DPM-Solver++(2M), from one x_T: each one's "
                                       "distance to the data and wall time, compared at equal NFE")
        self.readout = readout()
        self.readout.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        for w in (self.final_button, self.compare_button, self.readout):
            box.addWidget(w)

    def show_final(self, out: dict) -> None:
        self.readout.setText(f"SW distance to data:<br>DDPM {out['ddpm_d']:.4f} · Langevin {out['lang_d']:.4f}<br>"
                             f"floor {out['floor']:.4f} ({out['n']:,} points; {out['levels']} levels, "
                             f"{out['per']} steps each, δ = {out['step']:g})")

    def show_samplers(self, out: dict) -> None:
        rows = "<br>".join(f"{label}: {d:.4f} ({seconds:.1f} s)" for label, d, seconds in out["rows"])
        self.readout.setText(f"SW distance to data, one x<sub>T</sub>:<br>{rows}<br>floor {out['floor']:.4f} "
                             f"({out['n']:,} points)")
