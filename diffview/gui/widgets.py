"""Small building blocks the views share: an image grid item, a labelled readout, a caption, a timestep
control, and a frame player."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox, QWidget

from ..core.export import make_grid

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
        self.setMinimumSize(160, 160)

    def set_images(self, images: np.ndarray, nrow: int | None = None) -> None:
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


# Appended to every caption that uses the paper's subscripts, so one convention for t holds across the app.
T_INDEX_NOTE = ("t is the 0-based timestep index 0…T−1 of every control and readout; "
                "the paper numbers steps 1…T, so index t is the paper's step t+1.")


def caption(text: str) -> QLabel:
    """The formula a view plots, set small under it (rich text allowed)."""
    label = QLabel(text)
    label.setTextFormat(Qt.RichText)
    label.setWordWrap(True)
    label.setStyleSheet("color: #9aa0a6; font-size: 11px; padding: 2px 4px;")
    label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
    return label


def readout() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.RichText)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setStyleSheet("font-family: monospace; font-size: 12px; padding: 4px;")
    return label


class TimestepControl(QWidget):
    """"t" with a slider and a spin box that move together over 0..maximum; ``changed`` carries a new t
    (only when t changes, so two controls may follow each other without echoing back and forth)."""

    changed = Signal(int)

    def __init__(self, maximum: int = 999, label: str = "t", parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setToolTip("Timestep t (0-based): drag, or use the arrow keys")
        self.spin = QSpinBox()
        self.spin.setToolTip("Timestep t")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(label))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self._value = 0
        self.set_maximum(maximum)
        self.slider.valueChanged.connect(self.setValue)
        self.spin.valueChanged.connect(self.setValue)

    def value(self) -> int:
        return self._value

    def maximum(self) -> int:
        return self.slider.maximum()

    def setValue(self, t: int) -> None:  # noqa: N802 (Qt's naming, so it connects like a Qt setter)
        """Move both to t (clamped) and emit ``changed`` if t changed."""
        t = max(0, min(int(t), self.maximum()))
        if t == self._value:
            return
        self._value = t
        for w in (self.slider, self.spin):
            if w.value() != t:
                w.blockSignals(True)
                w.setValue(t)
                w.blockSignals(False)
        self.changed.emit(t)

    def set_maximum(self, maximum: int) -> int:
        """A new range 0..maximum without emitting; returns t, clamped into it."""
        t = self._value = min(self._value, maximum)
        for w in (self.slider, self.spin):
            w.blockSignals(True)
            w.setRange(0, maximum)
            w.setValue(t)
            w.blockSignals(False)
        self.slider.setPageStep(max(1, (maximum + 1) // 20))
        return t


class FramePlayer(QWidget):
    """A slider over recorded frames 0..n−1 with Play / Pause and a label; ``frame`` carries the index shown."""

    frame = Signal(int)

    def __init__(self, interval_ms: int = 40, play_text: str = "▶ Play", parent=None):
        super().__init__(parent)
        self.play_text = play_text
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self.frame)
        self.play = QPushButton(play_text)
        self.play.setCheckable(True)
        self.play.toggled.connect(self._toggle)
        self.label = QLabel()
        self.label.setMinimumWidth(120)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._advance)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.play)
        layout.addWidget(self.label)

    def set_frames(self, n: int) -> None:
        """n frames, showing the last."""
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(n - 1)
        self.frame.emit(self.slider.value())

    def stop(self) -> None:
        self.play.setChecked(False)
        self.timer.stop()

    def _toggle(self, on: bool) -> None:
        self.play.setText("⏸ Pause" if on else self.play_text)
        if on:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self.timer.start()
        else:
            self.timer.stop()

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play.setChecked(False)
        else:
            self.slider.setValue(self.slider.value() + 1)
