"""Quality against cost: one curve per sampler of its distance against its number of network evaluations (NFE),
on a log NFE axis, with the 2D metric's floor as a dashed line (core.analysis.samplers.quality_by_nfe)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

from diffview.core.analysis.samplers import REFERENCE_STEPS
from diffview.core.sampling import SAMPLER_NAMES

COLOURS = {"ddpm": "#e0a030", "ddim": "#5aa0e6", "heun": "#70c070", "dpmpp-2m": "#e06070"}
IMAGE_AXIS = "RMS to the reference (grey levels)"  # the caption and title name the 250-step reference
POINTS_AXIS = "sliced Wasserstein to the data"


class QualityPlot(pg.PlotWidget):
    """``start(metric)`` clears it; ``add_point(sampler, nfe, distance)`` extends that sampler's curve;
    ``set_floor(d)`` draws the 2D metric's floor."""

    def __init__(self, parent=None):
        super().__init__(parent, title="Quality against NFE")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLogMode(x=True)
        self.setLabel("bottom", "network evaluations (NFE)")
        self.setMinimumSize(320, 220)
        self.legend = self.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.data: dict[str, tuple[list[int], list[float]]] = {}
        self.floor: pg.InfiniteLine | None = None
        self.start("reference")

    def start(self, metric: str) -> None:
        """Empty curves, the y-axis of ``metric`` ("reference" for images, "data" for 2D points)."""
        for curve in self.curves.values():
            self.removeItem(curve)
        self.legend.clear()
        self.curves, self.data = {}, {}
        if self.floor is not None:
            self.removeItem(self.floor)
            self.floor = None
        self.setLabel("left", IMAGE_AXIS if metric == "reference" else POINTS_AXIS)
        reference = f"Distance to DPM-Solver++(2M) with {REFERENCE_STEPS} steps from one x<sub>T</sub>, against NFE"
        self.setTitle(reference if metric == "reference" else "Distance to the data against NFE (dashed: its floor)")

    def add_point(self, sampler: str, nfe: int, distance: float) -> None:
        xs, ys = self.data.setdefault(sampler, ([], []))
        xs.append(nfe)
        ys.append(distance)
        if sampler not in self.curves:
            colour = COLOURS.get(sampler, "#d0d0d0")
            self.curves[sampler] = self.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                                             symbolBrush=colour, name=SAMPLER_NAMES.get(sampler, sampler))
        self.curves[sampler].setData(xs, ys)

    def set_floor(self, floor: float) -> None:
        if self.floor is None:
            self.floor = pg.InfiniteLine(angle=0, pen=pg.mkPen("#9aa0a6", width=1.5, style=Qt.PenStyle.DashLine),
                                         label="floor (two draws of the data)",
                                         labelOpts={"position": 0.8, "color": "#9aa0a6"})
            self.addItem(self.floor)
        self.floor.setValue(floor)
