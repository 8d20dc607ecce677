"""The class to sample and the guidance scale S, for every tab that samples a class-conditional model.

``GuidanceControls`` is filled from a model's classes (``set_handle``, or ``set_classes`` with the names the
session knows without copying weights; () for an unconditional model, None while no model is known): a combo
box of the classes and the null class ∅, and S in 0…10 on a slider (0.1 resolution) with a spin box.
``label()`` is the class index to pass to ``iter_sample`` (None: unconditional), ``scale()`` its S. The
analysis tabs list ∅ first and start on it; the Sampling tab (``first_class=True``) starts on the first class.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QWidget

UNCONDITIONAL = "unconditional (∅)"
UNKNOWN = "—"
DEFAULT_SCALE = 3.0  # TrainConfig.guidance_scale's default (benchmarks/README.md)
MAX_SCALE = 10.0
TICKS = 10  # slider steps per unit of S: 0.1 resolution
LABEL_TIP = ("The class y of ε_c = ε_θ(x_t, t, y) in ε̃ = ε_u + S (ε_c − ε_u); ∅ samples the unconditional model "
             "ε_u = ε_θ(x_t, t, ∅) alone")
SCALE_TIP = ("Guidance scale S in ε̃ = ε_u + S (ε_c − ε_u) (Ho & Salimans 2021, eq. 6 with w = S − 1): S = 0 is the "
             "unconditional model, 1 the conditional one, above 1 pushes harder towards the class (sharper, less "
             "varied samples)")
NOT_CONDITIONAL = "The model is not class-conditional (trained without labels): there is no class to guide towards."
NO_MODEL_YET = "A class-conditional model's classes show here once there is a model (train, or open a run)."


class GuidanceControls(QGroupBox):
    """A class (or ∅) and a guidance scale S; disabled, with a note, for a model without classes."""

    changed = Signal()

    def __init__(self, parent=None, *, first_class: bool = False):
        super().__init__("Class and guidance", parent)
        self.first_class = first_class  # list the classes first and start on class 0, else ∅ first
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

    def set_handle(self, handle) -> None:
        """Fill from a ModelHandle (``class_names``; () for an unconditional model), or None: no model."""
        self.set_classes(None if handle is None else tuple(handle.class_names))

    def set_classes(self, names) -> None:
        """The model's class names (label i is names[i]); () an unconditional model, None not known yet. The
        chosen class is kept when the new model has a class of that name."""
        names = None if names is None else tuple(str(n) for n in names)
        if names == self.class_names and self.label_box.count():
            return
        kept = self.label_box.currentText()
        self.class_names = names
        self.label_box.blockSignals(True)
        self.label_box.clear()
        if names:
            items = [(name, i) for i, name in enumerate(names)]
            for text, data in (items + [(UNCONDITIONAL, None)] if self.first_class else
                               [(UNCONDITIONAL, None)] + items):
                self.label_box.addItem(text, data)
            self.label_box.setCurrentIndex(max(0, self.label_box.findText(kept)))
        else:
            self.label_box.addItem(UNKNOWN, None)
        self.label_box.blockSignals(False)
        self.setEnabled(bool(names))
        self.note.setText("" if names else NOT_CONDITIONAL if names == () else NO_MODEL_YET)
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
        if label is None:
            self.label_box.setCurrentIndex(max(0, self.label_box.findText(UNCONDITIONAL)))
        else:
            self.label_box.setCurrentIndex(self.label_box.findData(int(label)))

    def scale(self) -> float:
        """The guidance scale S (only used with a class)."""
        return float(self.spin.value())

    def describe(self, short: bool = False) -> str:
        """A few words for a status line (or, ``short``, a title): "" unconditional, else the class and S."""
        y = self.label()
        if y is None:
            return ""
        scale = f"S = {self.scale():g}" if short else f"guided at S = {self.scale():g}"
        return f"class {self.class_names[y]}, {scale}"


__all__ = ["DEFAULT_SCALE", "GuidanceControls", "UNCONDITIONAL"]
