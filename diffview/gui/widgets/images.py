"""An image grid item: uint8 images [N, C, H, W] laid out once and updated in place."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from diffview.core.io.export import make_grid
from diffview.gui.widgets.plot_style import Placeholder

# Antialiasing is turned on per curve where it shows (smooth lines); raw, dense curves draw faster without it.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="#1e1f22", foreground="#d0d0d0")


class ImageGrid(pg.GraphicsLayoutWidget):
    """A grid of uint8 images [N, C, H, W], created once and updated with ``set_images``."""

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.title = pg.LabelItem(title, size="10pt")
        self.addItem(self.title, row=1, col=0)
        self._shape = None
        self.placeholder = Placeholder(self.view)  # words in the empty grid, until its first images
        self.setMinimumSize(160, 160)

    def set_placeholder(self, text: str) -> None:
        """Say inside the grid what fills it while it has no images (and again after ``clear_images``)."""
        self.placeholder.set_text(text)
        if self.item.image is not None:
            self.placeholder.hide()

    def clear_images(self) -> None:
        self.item.clear()
        self._shape = None
        self.placeholder.show()

    def set_images(self, images: np.ndarray, nrow: int | None = None) -> None:
        self.placeholder.hide()
        grid = make_grid(images, nrow=nrow, padding=1, pad_value=40)
        array = grid[..., 0] if grid.shape[-1] == 1 else grid
        self.item.setImage(array, levels=(0, 255), autoLevels=False)
        if self._shape != array.shape[:2]:
            self._shape = array.shape[:2]
            self.view.autoRange(padding=0.01)

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def current_array(self) -> np.ndarray | None:
        return self.item.image
