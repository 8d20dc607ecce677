"""The class to sample and the guidance scale S, for the tabs that sample a class-conditional model.

``GuidanceControls`` is filled from a model's classes (``set_handle``, or ``set_classes`` with the names the
session knows without copying weights): a class combo box that starts with the null class ∅ (unconditional),
and S. ``label()`` is the class index to pass to ``iter_sample`` (None: unconditional), ``scale()`` its S.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel

UNCONDITIONAL = "unconditional (∅)"
UNKNOWN = "—"
DEFAULT_SCALE = 3.0  # TrainConfig.guidance_scale's default
SCALE_TIP = ("Classifier-free guidance (Ho & Salimans 2021, eq. 6): ε̃ = ε(x_t, ∅) + S (ε(x_t, y) − ε(x_t, ∅)). "
             "S = 0 is the unconditional model, 1 the conditional one, above 1 pushes harder towards the class "
             "(sharper, less varied samples)")
NOT_CONDITIONAL = "The model is unconditional (trained without class labels): there is no class to choose."
NO_MODEL_YET = "The classes show once there is a model (train, or open a run)."


class GuidanceControls(QGroupBox):
    """A class (or ∅) and a guidance scale S; disabled with a short note for a model without classes."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Class (classifier-free guidance)", parent)
        self.class_names: tuple[str, ...] | None = None  # None: not known yet
        self.label_box = QComboBox()
        self.label_box.setToolTip("Sample this class of a class-conditional model, or ∅: unconditionally")
        self.scale_box = QDoubleSpinBox()
        self.scale_box.setRange(0.0, 10.0)
        self.scale_box.setSingleStep(0.5)
        self.scale_box.setDecimals(1)
        self.scale_box.setValue(DEFAULT_SCALE)
        self.scale_box.setToolTip(SCALE_TIP)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9aa0a6; font-size: 11px;")
        form = QFormLayout(self)
        form.addRow("Class y", self.label_box)
        form.addRow("Guidance S", self.scale_box)
        form.addRow(self.note)
        self.label_box.currentIndexChanged.connect(self._label_changed)
        self.scale_box.valueChanged.connect(lambda _: self.changed.emit())
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
            self.label_box.addItem(UNCONDITIONAL, None)
            for i, name in enumerate(names):
                self.label_box.addItem(name, i)
            i = self.label_box.findText(kept)
            self.label_box.setCurrentIndex(max(0, i))
        else:
            self.label_box.addItem(UNKNOWN, None)
        self.label_box.blockSignals(False)
        self.setEnabled(bool(names))
        self.note.setText("" if names else NOT_CONDITIONAL if names == () else NO_MODEL_YET)
        self.note.setVisible(not names)
        self._label_changed()

    def _label_changed(self, *_) -> None:
        self.scale_box.setEnabled(self.label() is not None)  # S only guides towards a class
        self.changed.emit()

    @property
    def conditional(self) -> bool:
        return bool(self.class_names)

    def label(self) -> int | None:
        """The chosen class index, or None: unconditional (∅, or a model without classes)."""
        return self.label_box.currentData() if self.conditional else None

    def scale(self) -> float:
        """The guidance scale S (only used with a class)."""
        return float(self.scale_box.value())

    def set_label(self, label: int | None) -> None:
        """Choose the class index ``label`` (None: ∅)."""
        self.label_box.setCurrentIndex(0 if label is None else label + 1)

    def describe(self, short: bool = False) -> str:
        """A few words for a status line (or, ``short``, a title): "" unconditional, else the class and S."""
        y = self.label()
        if y is None:
            return ""
        scale = f"S = {self.scale():g}" if short else f"guided at S = {self.scale():g}"
        return f"class {self.class_names[y]}, {scale}"


__all__ = ["DEFAULT_SCALE", "GuidanceControls", "UNCONDITIONAL"]
