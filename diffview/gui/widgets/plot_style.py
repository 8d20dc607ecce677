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
