"""Memorisation: each generated image beside its nearest training image (L2 in pixel space), sorted
by distance, near-copies framed in red (``analysis.nearest_training_images``, Carlini et al. 2023)."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
)

from diffview.core.analysis.memorise import Neighbours, nearest_training_images
from diffview.core.io.export import to_uint8
from diffview.core.sampling import SAMPLER_NAMES, nfe
from diffview.gui.views.job_view import JobView, float_images
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.sampler_choice import SamplerCombo

RED, GREY = (235, 60, 60), (70, 72, 76)
K_NEAREST, RATIO = 50, 1 / 3


SEARCH_CHUNK = 2048  # training images decoded and compared at a time: a streamed folder is never all in memory


def pair_image(sample: np.ndarray, neighbour: np.ndarray, flagged: bool, scale: int) -> np.ndarray:
    """[sample | neighbour] as RGB uint8 [H, W, 3], framed red when flagged, enlarged ``scale`` times."""
    a, b = (np.repeat(x, 3, 0) if x.shape[0] == 1 else x for x in (sample, neighbour))
    c, h, w = a.shape
    gap = np.full((3, h, max(1, w // 8)), 30, np.uint8)
    pair = np.concatenate([a, gap, b], axis=2).transpose(1, 2, 0)
    pair = pair.repeat(scale, 0).repeat(scale, 1)
    border = 3 if flagged else 1
    framed = np.empty((pair.shape[0] + 2 * border, pair.shape[1] + 2 * border, 3), np.uint8)
    framed[:] = RED if flagged else GREY
    framed[border:-border, border:-border] = pair
    return np.ascontiguousarray(framed)


def _pixmap(rgb: np.ndarray) -> QPixmap:
    h, w, _ = rgb.shape
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy())


class MemoriseView(JobView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.samples_source = None  # callable() -> uint8 [N, C, H, W] of the Sampling tab's last samples, or None
        self.samples: np.ndarray | None = None  # uint8 [N, C, H, W]
        self.neighbours: Neighbours | None = None
        self.order: np.ndarray | None = None  # sample indices, nearest first
        self.near_copies = 0

        self.n = QSpinBox()
        self.n.setRange(1, 1024)
        self.n.setValue(64)
        self.sampler = SamplerCombo()
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(50)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.guidance = GuidanceControls()  # samples of one class, to search the training set for
        self.generate = QPushButton("Generate and search")
        self.generate.setToolTip("Sample N images with the chosen sampler and find each one's nearest training image")
        self.generate.clicked.connect(self.start_or_cancel)
        self.use_last = QPushButton("Search the Sampling tab's samples")
        self.use_last.clicked.connect(self._use_last)
        self.status = QLabel("Generate samples, then see how close each is to the training set.")
        self.status.setWordWrap(True)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("font-weight: bold;")
        form = QFormLayout()
        form.addRow("Samples N", self.n)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", self.seed)
        form.addRow(self.guidance)
        form.addRow(self.generate)
        form.addRow(self.use_last)
        form.addRow(self.status)
        form.addRow(self.summary)

        self.list = QListWidget()
        self.list.setViewMode(QListView.IconMode)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setMovement(QListView.Static)
        self.list.setSpacing(4)
        self.list.setUniformItemSizes(True)
        self.list.setStyleSheet("QListWidget { background: #1e1f22; color: #d0d0d0; font-size: 11px; }")
        header = QLabel("each pair: generated sample | its nearest training image, nearest pairs first; "
                        "red frame = near copy")
        self.empty = QLabel("Press <b>Generate and search</b> to fill this, or draw samples in the Sampling tab "
                            "and press <b>Search the Sampling tab's samples</b>.<br>" + self.NEEDS_MODEL)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setStyleSheet("QLabel { background: #1e1f22; color: #aab4c2; padding: 40px; }")
        self.pages = QStackedWidget()  # the words until the first pairs, then the pairs
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self.list)
        right = QVBoxLayout()
        right.addWidget(header)
        right.addWidget(self.pages, 1)
        self.arrange(form, right, 300,
            "d = ‖x̂ − x<sub>nn</sub>‖₂ in pixel space (images in [−1, 1]), RMS in 0..255 levels;  near copy: "
            f"d &lt; ⅓ · mean d to the {K_NEAREST} nearest training images (Carlini et al. 2023)")

    # ------------------------------------------------------------------ running
    def _busy_buttons(self, busy: bool) -> None:
        self.generate.setText("Cancel" if busy else "Generate and search")
        self.use_last.setEnabled(not busy)

    def _use_last(self) -> None:
        samples = self.samples_source() if self.samples_source is not None else None
        if samples is None:
            self.set_status("The Sampling tab has no samples yet: sample there first, or Generate here.")
            return
        self.analyse(np.asarray(samples))

    def _training_images(self, like: tuple[int, ...]):
        dataset, _ = self.current_dataset()
        if dataset is None:
            raise ValueError("No dataset is loaded: there is no training set to search.")
        if dataset.data_shape != tuple(like):
            raise ValueError(f"The samples are {'×'.join(map(str, like))} but the training images are "
                             f"{'×'.join(map(str, dataset.data_shape))}: load the run's dataset.")
        return dataset

    def start(self) -> bool:
        """Generate N samples with the current model, then search the training set."""
        if self.busy:
            return False
        handle = self.current_model()
        if handle is None:
            return False
        try:
            dataset = self._training_images(handle.sample_shape(1)[1:])
        except ValueError as e:
            self.set_status(str(e))
            return False
        n, steps, seed = self.n.value(), min(self.steps.value(), handle.schedule.timesteps), self.seed.value()
        sampler = self.sampler.key()
        guide, guiding = self.guide(), self.guidance.describe()

        def work(emit, cancelled):
            handle.model.eval()
            final = handle.sample(n, sampler=sampler, steps=steps, seed=seed, stop=cancelled, **guide)
            if final is None:
                return None
            samples = to_uint8(final)
            emit(("sampled", len(dataset)))
            return self._search(samples, dataset, cancelled)

        self.set_status(f"Sampling {n} images from {handle.label} ({SAMPLER_NAMES[sampler]}, {steps} steps, "
                        f"{nfe(sampler, steps, handle.schedule)} NFE"
                        + (f", {guiding}" if guiding else "") + ")…")
        self._busy_buttons(True)
        self.run_job(work, "diffview-memorisation", self._on_item, self._on_done)
        return True

    def analyse(self, samples: np.ndarray) -> bool:
        """Search the training set for each of these uint8 samples [N, C, H, W]."""
        if self.busy:
            return False
        try:
            dataset = self._training_images(samples.shape[1:])
        except ValueError as e:
            self.set_status(str(e))
            return False
        self.set_status(f"Searching {len(dataset):,} training images for {len(samples)} samples…")
        self._busy_buttons(True)
        self.run_job(lambda emit, cancelled: self._search(samples, dataset, cancelled), "diffview-memorisation",
                     self._on_item, self._on_done)
        return True

    @staticmethod
    def _search(samples: np.ndarray, dataset, cancelled=None):
        """(samples, Neighbours, the nearest training images uint8), or None if cancelled; the dataset is read
        ``SEARCH_CHUNK`` images at a time, a streamed one decoding only those."""
        nb = nearest_training_images(float_images(samples), dataset, k=K_NEAREST, ratio=RATIO, chunk=SEARCH_CHUNK,
                                     stop=cancelled)
        if nb is None:
            return None
        nearest = [dataset.images_uint8(nb.index[i:i + SEARCH_CHUNK]) for i in range(0, len(nb.index), SEARCH_CHUNK)]
        return samples, nb, torch.cat(nearest).numpy()

    @Slot(object)
    def _on_item(self, item) -> None:
        self.set_status(f"Searching {item[1]:,} training images for the nearest of each sample…")

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self._busy_buttons(False)
        if error:
            return
        if result is None:
            self.set_status("Cancelled.")
            return
        self.show_neighbours(*result)

    # ------------------------------------------------------------------ showing
    def show_neighbours(self, samples: np.ndarray, nb: Neighbours, nearest: np.ndarray) -> None:
        self.samples, self.neighbours = samples, nb
        self.order = np.argsort(nb.distance, kind="stable")
        self.near_copies = int(nb.near_copy.sum())
        size = samples.shape[-1]
        scale = max(1, 64 // size)
        self.list.clear()
        self.pages.setCurrentWidget(self.list)
        for rank, i in enumerate(self.order):
            flagged = bool(nb.near_copy[i])
            rgb = pair_image(samples[i], nearest[i], flagged, scale)
            item = QListWidgetItem(QIcon(_pixmap(rgb)),
                                   f"{'NEAR COPY ' if flagged else ''}d = {nb.distance[i]:.2f}\n"
                                   f"RMS {nb.rms[i]:.1f}, train #{nb.index[i]}")
            item.setTextAlignment(Qt.AlignHCenter)
            if flagged:
                item.setForeground(Qt.red)
            item.setToolTip(f"sample {i}: nearest training image #{nb.index[i]}, L2 distance {nb.distance[i]:.4f}, "
                            f"RMS {nb.rms[i]:.2f} of 255 levels")
            self.list.addItem(item)
        if len(self.order):
            rgb_w = (2 * size + max(1, size // 8)) * scale + 6
            self.list.setIconSize(QSize(rgb_w, size * scale + 6))
        n = len(samples)
        self.summary.setText(f"{self.near_copies} of {n} samples are near-copies (distance &lt; ⅓ of the mean distance "
                             f"to the {K_NEAREST} nearest; Carlini et al. 2023). Median distance "
                             f"{np.median(nb.distance):.2f}, median RMS {np.median(nb.rms):.1f} levels.")
        self.summary.setTextFormat(Qt.RichText)
        self.set_status(f"Searched {n} samples; nearest pairs first.")
