"""Qt helpers shared by the GUI tests (imported by them only: the core tests run without Qt)."""

from PySide6.QtCore import QEvent, QObject


class LayoutRequests(QObject):
    """Counts the LayoutRequest events one widget receives: how often Qt lays it out again."""

    def __init__(self, widget):
        super().__init__()
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.LayoutRequest:
            self.count += 1
        return False
