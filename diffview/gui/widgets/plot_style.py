"""A grid for the plots that redraw while training: pyqtgraph's ``GridItem`` inside the view box costs
about a millisecond a paint where the axes' own grid (``PlotItem.showGrid``) cost about ten per plot, measured on
the Training tab's loss plot (benchmarks/README.md, "The app while training")."""

from __future__ import annotations

import pyqtgraph as pg

__all__ = ["light_grid"]

GRID_PEN = (255, 255, 255, 38)  # the look of showGrid(alpha=0.15) on the dark background


def light_grid(plot: pg.PlotItem) -> pg.GridItem:
    """Add a faint grid of the axes' tick spacing behind ``plot``'s items and return it."""
    grid = pg.GridItem(textPen=None)
    grid.setPen(pg.mkPen(GRID_PEN))
    grid.setTickSpacing(x=[None, None], y=[None, None])  # two levels of lines (of 1 and ~10 a side), not three
    grid.setZValue(-100)
    plot.addItem(grid, ignoreBounds=True)
    return grid


class Placeholder:
    """Words inside an empty plot or image grid: what it needs and the one action that fills it (no tab opens
    as a blank panel). It sits in ``view``'s own coordinates, centred, whatever the data's range."""

    def __init__(self, view: pg.ViewBox, text: str = ""):
        self.view = view
        self.item = pg.TextItem(anchor=(0.5, 0.5), color="#aab4c2")
        self.item.setParentItem(view)
        self.item.setZValue(1000)
        view.sigResized.connect(self._place)
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self.text = text
        self.item.setHtml(f"<div style='text-align:center; font-size:10pt'>{text}</div>")
        self._place()
        self.item.setVisible(bool(text))

    def hide(self) -> None:
        self.item.setVisible(False)

    def show(self) -> None:
        self.item.setVisible(bool(self.text))

    @property
    def shown(self) -> bool:
        return self.item.isVisible()

    def _place(self) -> None:
        rect = self.view.boundingRect()
        self.item.setTextWidth(max(120.0, rect.width() * 0.85))
        self.item.setPos(rect.center())
