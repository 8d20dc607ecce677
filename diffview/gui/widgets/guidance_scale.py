"""The class to sample and the guidance scale S (a slider and a spin box), and a panel that shows the two
predictions guidance combines, ε_c and ε_u, and their difference.

``ClassAndScale`` is filled from a model's classes (``set_classes``; () for an unconditional model, None
while no model is known): a combo box of the classes and ∅, and S in 0…10 at 0.1 resolution. ``label()`` is
the class index to pass to ``iter_sample`` (None: unconditional), ``scale()`` its S. ``EpsPartsPanel`` draws
ε_c, ε_u (a fixed range ±EPS_RANGE) and ε_c − ε_u (its own symmetric range, given in its title).
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QWidget,
)

from diffview.core.io.export import to_uint8
from diffview.gui.widgets.images import ImageGrid

UNCONDITIONAL = "unconditional (∅)"
DEFAULT_SCALE = 3.0  # TrainConfig.guidance_scale's default
MAX_SCALE = 10.0
TICKS = 10  # slider steps per unit of S: 0.1 resolution
EPS_RANGE = 3.0  # ε ~ N(0, I): ±3 holds nearly all of it; black is −3, white +3
LABEL_TIP = ("The class y of ε_c = ε_θ(x_t, t, y) in ε̃ = ε_u + S (ε_c − ε_u); ∅ samples the unconditional model "
             "ε_u = ε_θ(x_t, t, ∅) alone")
SCALE_TIP = ("Guidance scale S in ε̃ = ε_u + S (ε_c − ε_u) (Ho & Salimans 2021, eq. 6 with w = S − 1): S = 0 is the "
             "unconditional model, 1 the conditional one, above 1 pushes harder towards the class (sharper, less "
             "varied samples)")
NOT_CONDITIONAL = "The model is not class-conditional (trained without labels): there is no class to guide towards."
NOT_KNOWN = "A class-conditional model's classes show here once there is a model (train, or open a run)."


class ClassAndScale(QGroupBox):
    """A class (or ∅) and a guidance scale S; disabled, with a note, for a model without classes."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Class and guidance", parent)
        self.class_names: tuple[str, ...] | None = None  # None: not known yet
        self.label_box = QComboBox()
        self.label_box.setToolTip(LABEL_TIP)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, int(MAX_SCALE * TICKS))
        self.slider.setPageStep(TICKS)
        self.slider.setToolTip(SCALE_TIP)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, MAX_SCALE)
        self.spin.setSingleStep(0.1)
        self.spin.setDecimals(1)
        self.spin.setToolTip(SCALE_TIP)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9aa0a6; font-size: 11px;")
        scale = QWidget()
        row = QHBoxLayout(scale)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        form = QFormLayout(self)
        form.addRow("Class y", self.label_box)
        form.addRow("Guidance S", scale)
        form.addRow(self.note)
        self.slider.valueChanged.connect(lambda v: self.spin.setValue(v / TICKS))
        self.spin.valueChanged.connect(self._scale_changed)
        self.label_box.currentIndexChanged.connect(self._label_changed)
        self.set_scale(DEFAULT_SCALE)
        self.set_classes(None)

    def set_classes(self, names) -> None:
        """The model's class names (label i is names[i]); () an unconditional model, None not known yet. The
        chosen class is kept when the new model has a class of that name; the first class is chosen else."""
        names = None if names is None else tuple(str(n) for n in names)
        if names == self.class_names and self.label_box.count():
            return
        kept = self.label_box.currentText()
        self.class_names = names
        self.label_box.blockSignals(True)
        self.label_box.clear()
        for i, name in enumerate(names or ()):
            self.label_box.addItem(name, i)
        self.label_box.addItem(UNCONDITIONAL, None)
        self.label_box.setCurrentIndex(max(0, self.label_box.findText(kept)))
        self.label_box.blockSignals(False)
        self.setEnabled(bool(names))
        self.note.setText("" if names else NOT_CONDITIONAL if names == () else NOT_KNOWN)
        self.note.setVisible(not names)
        self._label_changed()

    def set_scale(self, scale: float) -> None:
        """Move S (clamped to 0…MAX_SCALE) on both the slider and the spin box."""
        self.spin.setValue(min(max(float(scale), 0.0), MAX_SCALE))

    def _scale_changed(self, value: float) -> None:
        ticks = round(value * TICKS)
        if self.slider.value() != ticks:
            self.slider.blockSignals(True)
            self.slider.setValue(ticks)
            self.slider.blockSignals(False)
        self.changed.emit()

    def _label_changed(self, *_) -> None:
        guided = self.label() is not None  # S only guides towards a class
        self.slider.setEnabled(guided)
        self.spin.setEnabled(guided)
        self.changed.emit()

    @property
    def conditional(self) -> bool:
        return bool(self.class_names)

    def label(self) -> int | None:
        """The chosen class index, or None: unconditional (∅, or a model without classes)."""
        return self.label_box.currentData() if self.conditional else None

    def set_label(self, label: int | None) -> None:
        """Choose the class index ``label`` (None: ∅)."""
        self.label_box.setCurrentIndex(self.label_box.count() - 1 if label is None else int(label))

    def scale(self) -> float:
        """The guidance scale S (only used with a class)."""
        return float(self.spin.value())


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


__all__ = ["DEFAULT_SCALE", "EPS_RANGE", "ClassAndScale", "EpsPartsPanel", "UNCONDITIONAL", "eps_image"]
