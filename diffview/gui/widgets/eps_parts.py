"""The two predictions classifier-free guidance combines, ε_c and ε_u, and their difference, at one step.

``EpsPartsPanel`` draws ε_c and ε_u on a fixed range ±EPS_RANGE and ε_c − ε_u on its own symmetric range,
given in its title.
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QWidget

from diffview.core.io.export import to_uint8
from diffview.gui.widgets.images import ImageGrid

EPS_RANGE = 3.0  # ε ~ N(0, I): ±3 holds nearly all of it; black is −3, white +3


def eps_image(eps: torch.Tensor, limit: float) -> np.ndarray:
    """ε as uint8 images: −limit black, 0 mid-gray, +limit white (clipped beyond)."""
    return to_uint8(eps / limit)


class EpsPartsPanel(QWidget):
    """ε_c, ε_u and ε_c − ε_u at one step, side by side; ``shown`` holds the uint8 grids' images."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grids = [ImageGrid(""), ImageGrid(""), ImageGrid("")]
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.RichText)
        self.note.setStyleSheet("color: #9aa0a6; font-size: 11px;")
        self.shown: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.diff_range = 0.0
        grids = QHBoxLayout()
        for g in self.grids:
            grids.addWidget(g)
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow(grids)
        layout.addRow(self.note)

    def set_note(self, text: str) -> None:
        self.note.setText(text)

    def set_parts(self, eps_c: torch.Tensor, eps_u: torch.Tensor, t: int, class_name: str, scale: float) -> None:
        """Draw ε_c and ε_u at ±EPS_RANGE and ε_c − ε_u at ±its largest |value|."""
        diff = eps_c - eps_u
        self.diff_range = float(diff.abs().max()) or 1.0
        self.shown = (eps_image(eps_c, EPS_RANGE), eps_image(eps_u, EPS_RANGE), eps_image(diff, self.diff_range))
        for grid, images in zip(self.grids, self.shown):
            grid.set_images(images)
        # Short titles (a long one widens the grid past its widget); the note under the panel says the rest.
        self.grids[0].set_title(f"ε<sub>c</sub> (y = {class_name}), ±{EPS_RANGE:g}")
        self.grids[1].set_title(f"ε<sub>u</sub> (∅), ±{EPS_RANGE:g}")
        self.grids[2].set_title(f"ε<sub>c</sub> − ε<sub>u</sub>, ±{self.diff_range:.3g}")
        self.set_note(f"At t = {t}: ε<sub>c</sub> = ε<sub>θ</sub>(x<sub>t</sub>, t, y), ε<sub>u</sub> = "
                      f"ε<sub>θ</sub>(x<sub>t</sub>, t, ∅), and their difference, which S = {scale:g} scales in "
                      "ε̃ = ε<sub>u</sub> + S (ε<sub>c</sub> − ε<sub>u</sub>). Gray is 0; each title's ±r runs from "
                      "black (−r) to white (+r): ±3 for ε, the difference's own largest |value| for it.")


__all__ = ["EPS_RANGE", "EpsPartsPanel", "eps_image"]
