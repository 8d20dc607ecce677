"""Data: the training images as the model sees them (after resize, crop and channels), and the
dataset report: how many images were used, which files were skipped and why, and the classes
with how many images each (a conditional model trains on them)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffview.core.data.images import DatasetReport
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.text import caption

SHOWN = 100
CLASS_ROWS_SHOWN = 6  # rows of the class table in view; more scroll


class DataView(QWidget):
    """``session``: an AppSession whose data this shows as it loads (or call ``set_dataset``)."""

    def __init__(self, session=None, parent=None):
        super().__init__(parent)
        self.grid = ImageGrid("training images as the model sees them")
        self.summary = QLabel("No dataset loaded.")
        self.summary.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #ffb050; font-weight: bold;")
        self.warning.hide()
        self.classes_title = QLabel("No classes (unlabelled)")
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["Class", "Images"])
        self.classes.verticalHeader().hide()
        self.classes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.classes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.classes.hide()
        self.skipped = QPlainTextEdit()
        self.skipped.setReadOnly(True)
        self.skipped.setPlaceholderText("Every file was used.")
        side = QVBoxLayout()
        side.addWidget(self.summary)
        side.addWidget(self.classes_title)
        side.addWidget(self.classes)
        side.addWidget(self.warning)
        side.addWidget(QLabel("Skipped files"))
        side.addWidget(self.skipped, 1)
        row = QHBoxLayout()
        row.addWidget(self.grid, 3)
        row.addLayout(side, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(caption("Pixels are scaled to [−1, 1] (x / 127.5 − 1): the range the forward process "
                                 "starts from and x̂<sub>0</sub> is clipped to."))
        if session is not None:
            session.data_changed.connect(lambda _: self.set_dataset(session.preview, session.report))

    def set_dataset(self, images_uint8: np.ndarray, report: DatasetReport) -> None:
        self.grid.set_images(images_uint8[:SHOWN], nrow=10)
        kind = "grayscale" if report.channels == 1 else "RGB"
        self.grid.set_title(f"{min(SHOWN, report.used)} of {report.used:,} images, "
                            f"{report.image_size}×{report.image_size} {kind}")
        self.summary.setText(report.summary().splitlines()[0])
        self.warning.setVisible(bool(report.warnings))
        self.warning.setText("\n".join(report.warnings))
        self.skipped.setPlainText("\n".join(f"{path}: {why}" for path, why in report.skipped))
        self._show_classes(report)

    def _show_classes(self, report: DatasetReport) -> None:
        """The classes with their image counts, and how many images have none; "No classes" when unlabelled."""
        classes = report.classes
        self.classes.setRowCount(len(classes))
        for row, (name, count) in enumerate(classes):
            self.classes.setItem(row, 0, QTableWidgetItem(name))
            number = QTableWidgetItem(f"{count:,}")
            number.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.classes.setItem(row, 1, number)
        rows = self.classes.verticalHeader().defaultSectionSize() * min(len(classes), CLASS_ROWS_SHOWN)
        self.classes.setFixedHeight(self.classes.horizontalHeader().sizeHint().height() + rows + 4)
        self.classes.setVisible(bool(classes))
        if not classes:
            self.classes_title.setText("No classes (unlabelled)")
            return
        title = f"{len(classes):,} class{'' if len(classes) == 1 else 'es'}"
        unlabelled = report.used - sum(count for _, count in classes)
        if unlabelled > 0:
            title += f" ({unlabelled:,} image{'' if unlabelled == 1 else 's'} without a class)"
        self.classes_title.setText(title)
