"""A timestep slider-and-spin control, and a frame player (a scrub slider with Play)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QWidget


class TimestepControl(QWidget):
    """"t" with a slider and a spin box that move together over MINIMUM..maximum; ``changed`` carries a new t
    (only when t changes, so two controls may follow each other without echoing back and forth)."""

    changed = Signal(int)
    MINIMUM = 0  # the lowest t; a subclass may add stops below 0 (the Noise & denoise tab's "none")

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
        t = max(self.MINIMUM, min(int(t), self.maximum()))
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
        """A new range MINIMUM..maximum without emitting; returns t, clamped into it."""
        t = self._value = max(self.MINIMUM, min(self._value, maximum))
        for w in (self.slider, self.spin):
            w.blockSignals(True)
            w.setRange(self.MINIMUM, maximum)
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
