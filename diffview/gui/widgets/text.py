"""A formula caption, a monospace readout, live readouts (a line, a box), and the sentence that says what t means."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QSizePolicy, QTextBrowser

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


def readout_line(text: str = "", monospace: bool = True) -> QLineEdit:
    """One line that changes while a run trains (its step, loss and ETA; which preview is shown): selectable,
    not editable. Unlike a QLabel its size does not follow its text, so rewriting it repaints the line alone;
    a QLabel's new text makes the layout around it recompute: the whole window's, 25-40 ms on the GUI thread."""
    line = QLineEdit(text)
    line.setReadOnly(True)
    line.setFrame(False)
    line.setFocusPolicy(Qt.ClickFocus)
    font = "font-family: monospace; font-size: 12px; " if monospace else ""
    line.setStyleSheet(font + "padding: 4px; background: transparent;")
    return line


class LiveReadout(QTextBrowser):
    """A few lines of rich text rewritten while a run trains (a 2D run's step and loss, its distance to the
    data), with a QLabel's ``setText``/``text``. Its height is fixed and its size never follows its text, so
    a new text repaints the box alone; a QLabel's made Qt lay out the whole window again every 0.1 s."""

    def __init__(self, lines: int = 3, parent=None):
        super().__init__(parent)
        self._text = ""
        self.setFrameShape(QFrame.NoFrame)
        self.setOpenLinks(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAsNeeded)  # a long error scrolls, never cut
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.ClickFocus)
        self.setStyleSheet("font-family: monospace; font-size: 12px; background: transparent;")
        self.document().setDocumentMargin(4)
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 12)

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name)
        self._text = text
        self.setHtml(text)

    def text(self) -> str:
        """The rich text last set, as ``QLabel.text()`` gives it."""
        return self._text
