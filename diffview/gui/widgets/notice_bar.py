"""A non-modal bar across the top of the window that offers one action (napari's and browsers' notices):
"Reopen the last run, NAME?" with the action's button and a close button. It never blocks the window."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

__all__ = ["NoticeBar"]


class NoticeBar(QFrame):
    accepted = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("notice")
        self.setStyleSheet("#notice { background: #2d3f57; border-bottom: 1px solid #3f5a7d; } "
                           "#notice QLabel { color: #e8eef6; }")
        self.text = QLabel()
        self.button = QPushButton()
        self.button.clicked.connect(self._accept)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss (Esc)")
        self.close_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        row.addWidget(self.text, 1)
        row.addWidget(self.button)
        row.addWidget(self.close_button)
        self.hide()

    def offer(self, text: str, action: str, tip: str = "") -> None:
        self.text.setText(text)
        self.button.setText(action)
        self.button.setToolTip(tip)
        self.show()

    def _accept(self) -> None:
        self.hide()
        self.accepted.emit()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key_Escape:
            self.hide()
        else:
            super().keyPressEvent(event)
