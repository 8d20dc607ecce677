"""Plots for 2D points: a square plot over [−3, 3]² that can also be drawn on, points coloured by class,
arrows, contour lines.

The items are created once and updated with ``setData``; arrows and contours are each one
PlotDataItem (segments in pairs, contours separated by NaN), so thousands of segments draw fast.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextOption

from diffview.core.data.points import PLOT_LIMIT

DATA_COLOUR = (170, 170, 170, 70)  # the data, in the background
POINT_COLOUR = (90, 160, 255, 150)  # points of the current view
BRIGHT_COLOUR = (255, 176, 80, 230)  # current positions, highlights
TRUE_COLOUR = (255, 176, 80, 200)  # the true score
LEARNED_COLOUR = (120, 200, 255, 230)  # the learned score
# one colour per class, distinct on the dark background (a qualitative palette, repeated past ten classes)
CLASS_COLOURS = ((86, 180, 233), (255, 150, 60), (110, 220, 110), (240, 90, 110), (190, 140, 255),
                 (250, 225, 80), (60, 220, 200), (255, 140, 220), (170, 200, 90), (200, 160, 120))
NO_CLASS_COLOUR = (150, 150, 150)  # points without a class (label −1) in data that has classes


class PointsPlot(pg.PlotWidget):
    """A square plot spanning [−limit, limit]² with fixed axes. With ``draw_enabled`` a press or a drag of
    the left button sprays a few points (small jitter) around the cursor and emits them as ``drawn``."""

    drawn = Signal(object)  # float32 [k, 2] in plot coordinates

    def __init__(self, title: str = "", limit: float = PLOT_LIMIT, parent=None):
        super().__init__(parent)
        self.limit = limit
        self.plotItem.titleLabel.item.document().setDefaultTextOption(QTextOption(Qt.AlignHCenter))
        self.setTitle(title)
        self.setMouseEnabled(False, False)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setAspectLocked(True)
        self.setXRange(-limit, limit, padding=0.02)
        self.setYRange(-limit, limit, padding=0.02)
        self.showGrid(x=True, y=True, alpha=0.12)
        for side in ("left", "bottom"):
            self.getAxis(side).setStyle(tickLength=-4)
        self.setMinimumSize(200, 200)
        self.draw_enabled = False
        self.spray, self.jitter = 4, 0.06
        self._pressed = False
        self._rng = np.random.default_rng(0)

    def setTitle(self, title: str | None = None, **args) -> None:
        """The title in a size that suits small plots, wrapped to the plot's width: a long title takes another
        line instead of widening the plot past its widget (which would cut the plot off)."""
        self.plotItem.setTitle(title, **{"size": "10pt", **args})
        self._fit_title()

    def _fit_title(self) -> None:
        if getattr(self, "plotItem", None) is None:  # GraphicsView resizes once before the plot exists
            return
        label = self.plotItem.titleLabel
        label.item.setTextWidth(max(60.0, self.width() - 44.0))  # the title sits over the view box, right of the axis
        label.resizeEvent(None)  # re-centres the text and sets the label's size from its lines

    def resizeEvent(self, ev) -> None:
        self._fit_title()  # first, so the plot is laid out in the new width
        super().resizeEvent(ev)

    def scatter(self, colour=POINT_COLOUR, size: float = 3.0) -> pg.ScatterPlotItem:
        item = pg.ScatterPlotItem(size=size, pen=None, brush=pg.mkBrush(*colour))
        self.addItem(item)
        return item

    def lines(self, colour, width: float = 1.0, connect="pairs") -> pg.PlotDataItem:
        item = pg.PlotDataItem(pen=pg.mkPen(colour, width=width), connect=connect)
        self.addItem(item)
        return item

    # ------------------------------------------------------------------ drawing with the mouse
    def to_data(self, pos) -> tuple[float, float]:
        """A widget position (QPointF) in plot coordinates."""
        p = self.plotItem.vb.mapSceneToView(self.mapToScene(pos.toPoint()))
        return p.x(), p.y()

    def _spray(self, pos) -> None:
        x, y = self.to_data(pos)
        if abs(x) > self.limit or abs(y) > self.limit:
            return
        pts = np.array([x, y]) + self._rng.normal(0.0, self.jitter, (self.spray, 2))
        self.drawn.emit(np.clip(pts, -self.limit, self.limit).astype(np.float32))

    def mousePressEvent(self, ev) -> None:
        if self.draw_enabled and ev.button() == Qt.LeftButton:
            self._pressed = True
            self._spray(ev.position())
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        if self._pressed:
            self._spray(ev.position())
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:
        if self._pressed:
            self._pressed = False
            ev.accept()
            return
        super().mouseReleaseEvent(ev)


def class_colour(k: int, alpha: int = 255) -> tuple[int, int, int, int]:
    """Class k's colour (k < 0: no class, grey)."""
    return (*(CLASS_COLOURS[k % len(CLASS_COLOURS)] if k >= 0 else NO_CLASS_COLOUR), alpha)


def class_legend(names, unlabelled: bool = False) -> str:
    """Rich text naming the classes, each after a dot of its colour (and "no class" in grey)."""
    entries = [(class_colour(k), html.escape(str(name))) for k, name in enumerate(names)]
    if unlabelled:
        entries.append((class_colour(-1), "no class"))
    return " ".join(f"<span style='color:rgb({r},{g},{b})'>●</span>&nbsp;{name}" for (r, g, b, _), name in entries)


class ClassScatter:
    """Points coloured by class on ``plot``: one ScatterPlotItem per class and one for the points without a
    class, made once per set of classes; ``set_labels`` groups the points once, ``set_positions`` moves them.
    Without classes every point is drawn in ``plain``."""

    def __init__(self, plot: PointsPlot, size: float = 3.0, alpha: int = 150, plain=POINT_COLOUR):
        self.plot, self.size, self.alpha, self.plain = plot, size, alpha, plain
        self.names: tuple[str, ...] | None = None
        self.items: list[pg.ScatterPlotItem] = []  # class 0 … K−1, then the points without a class
        self.groups: list[np.ndarray] = []  # each item's indices into the points

    def set_labels(self, labels: np.ndarray | None, names) -> None:
        """The class of each point (−1: none; None: no point has one) and the class names."""
        names = tuple(str(n) for n in names)
        if names != self.names:
            for item in self.items:
                self.plot.removeItem(item)
            colours = [class_colour(k, self.alpha) for k in range(len(names))]
            colours.append(class_colour(-1, self.alpha) if names else self.plain)
            self.items = [self.plot.scatter(c, self.size) for c in colours]
            self.names = names
        k = len(names)
        lab = np.full(0, -1) if labels is None else np.asarray(labels)
        self.groups = [np.flatnonzero(lab == c) for c in range(k)]
        self.groups.append(np.flatnonzero((lab < 0) | (lab >= k)) if labels is not None else None)

    def set_positions(self, pos: np.ndarray) -> None:
        """The points [N, 2], in the order of the labels given to ``set_labels``."""
        for item, idx in zip(self.items, self.groups):
            item.setData(pos=pos if idx is None else pos[idx])

    def clear(self) -> None:
        for item in self.items:
            item.setData(pos=np.zeros((0, 2)))


def arrow_segments(origins: np.ndarray, vectors: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Arrows of equal ``length`` along ``vectors`` [N, 2] from ``origins`` [N, 2], as x, y for
    ``connect="pairs"``: per arrow 6 points (shaft origin→tip, then two barbs tip→barb)."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    d = np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
    o = np.asarray(origins, dtype=np.float64)
    tip = o + length * d
    c, s = np.cos(np.radians(28)), np.sin(np.radians(28))
    back = -0.35 * length * d
    barb1 = tip + np.stack([c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1]], 1)
    barb2 = tip + np.stack([c * back[:, 0] + s * back[:, 1], -s * back[:, 0] + c * back[:, 1]], 1)
    pts = np.stack([o, tip, tip, barb1, tip, barb2], 1).reshape(-1, 2)
    return pts[:, 0], pts[:, 1]


def contour_lines(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, levels) -> tuple[np.ndarray, np.ndarray]:
    """Level sets of ``values`` [len(xs), len(ys)] (first axis x) at ``levels``, as x, y with NaN between lines."""
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    out_x, out_y = [], []
    for level in levels:
        for line in pg.functions.isocurve(values, float(level), connected=True):
            arr = np.asarray(line, dtype=np.float64)
            # isocurve's coordinates put sample i at i + 0.5
            out_x.append(np.append(xs[0] + (arr[:, 0] - 0.5) * dx, np.nan))
            out_y.append(np.append(ys[0] + (arr[:, 1] - 0.5) * dy, np.nan))
    if not out_x:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(out_x), np.concatenate(out_y)


def paths_with_gaps(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories ``frames`` [S, N, 2] as one polyline per point, NaN-separated (for connect="finite")."""
    paths = np.transpose(frames, (1, 0, 2)).astype(np.float64)  # [N, S, 2]
    gaps = np.full((paths.shape[0], 1, 2), np.nan)
    flat = np.concatenate([paths, gaps], 1).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


__all__ = ["PointsPlot", "arrow_segments", "contour_lines", "paths_with_gaps"]
