"""Loss from the bound: the derivation from entropy to DDPM's ε-loss, walked panel by panel in its order.

Left, on distributions set by hand: ① the entropy of a 0–1 variable; ② two Gaussians' entropy, cross-entropy
and KL, each in closed form beside its numerical integral. Right, on the user's model: ③ at one pixel of one
image, the true posterior q(x_{t−1} | x_t, x_0) and the model's p_θ(x_{t−1} | x_t) as two Gaussians, then ④ their
KL (the core's ``normal_kl``, summing to ``vlb_terms``), ⑤ its means' part (eq. 8), ⑥ that part in ε (eq. 12)
and ⑦ L_simple (eq. 14). The model call runs on a worker (``core.analysis.derivation.pixel_terms``).
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from diffview.core.analysis.derivation import PixelTerms, pixel_terms
from diffview.gui.views.derivation.gaussians import EntropyPanel, GaussiansPanel
from diffview.gui.views.derivation.pixel import PixelPanel
from diffview.gui.views.job_view import JobView, float_images
from diffview.gui.widgets.players import TimestepControl
from diffview.gui.widgets.text import T_INDEX_NOTE, caption

DEBOUNCE_MS = 120
RETRY_MS, RETRIES = 500, 20  # asking again for a model whose weights are being copied
OWN = "the model's own"


class KLTimestep(TimestepControl):
    MINIMUM = 1  # index 0 is the decoder L_0, not a KL between Gaussians


class DerivationView(JobView):
    """The "Loss from the bound" tab; ``terms`` is the last ``PixelTerms`` computed (None before)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.terms: PixelTerms | None = None
        self.computed_with: dict = {}
        self._again = False
        self._retries = RETRIES
        self.entropy = EntropyPanel()
        self.gaussians = GaussiansPanel()
        self.pixel = PixelPanel(self)

        self.image = QSpinBox()
        self.image.setRange(0, 0)
        self.image.setToolTip("Which training image (its index in the loaded dataset)")
        self.timestep = KLTimestep(999)
        self.timestep.setValue(100)
        self.row, self.col, self.channel = QSpinBox(), QSpinBox(), QSpinBox()
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The seed of ε: one draw for every t, so scrubbing t noises the same way")
        self.variance = QComboBox()
        self.variance.addItems([OWN, "fixed_small", "fixed_large"])
        self.variance.setToolTip("p_θ's variance σ²_t: the model's own (what its sampler and the Bound tab use), "
                                 "β̃_t or β_t")
        self.clip = QCheckBox("clip x̂₀ to [−1, 1]")
        self.clip.setChecked(True)
        self.clip.setToolTip("As the sampler and the Bound tab do; unclipped, ⑤ and ⑥ agree at every pixel")
        self.button = QPushButton("Newest weights")
        self.button.setToolTip("Compute again with the newest weights of the model being trained")
        self.status = QLabel("Train for a few steps or open a run: this side shows the bound on your model.")
        self.status.setWordWrap(True)

        controls = QGridLayout()
        controls.addWidget(QLabel("image"), 0, 0)
        controls.addWidget(self.image, 0, 1)
        controls.addWidget(QLabel("pixel row, col, channel"), 0, 2)
        pix = QHBoxLayout()
        for box in (self.row, self.col, self.channel):
            pix.addWidget(box)
        self.channel.setToolTip("channel")
        controls.addLayout(pix, 0, 3)
        controls.addWidget(QLabel("ε seed"), 0, 4)
        controls.addWidget(self.seed, 0, 5)
        controls.addWidget(self.timestep, 1, 0, 1, 4)
        controls.addWidget(QLabel("p<sub>θ</sub> variance"), 1, 4)
        controls.addWidget(self.variance, 1, 5)
        controls.addWidget(self.clip, 2, 0, 1, 2)
        controls.addWidget(self.button, 2, 2)
        controls.addWidget(self.status, 2, 3, 1, 3)

        # page 1: ① and ② side by side; page 2: the controls over ③ (pictures) beside ④–⑦ (numbers)
        first = QWidget()
        row = QHBoxLayout(first)
        row.addWidget(self.entropy, 2)
        row.addWidget(self.gaussians, 3)
        second = QWidget()
        page = QVBoxLayout(second)
        page.addLayout(controls)
        numbers = QScrollArea()
        numbers.setWidget(self.pixel.readouts)
        numbers.setWidgetResizable(True)
        numbers.setFrameShape(QScrollArea.NoFrame)
        halves = QSplitter(Qt.Horizontal)
        halves.addWidget(self.pixel.figures)
        halves.addWidget(numbers)
        halves.setStretchFactor(0, 1)
        halves.setStretchFactor(1, 1)
        page.addWidget(halves, 1)
        self.pages = QTabWidget()
        self.pages.addTab(first, "① – ②  entropy, cross-entropy and KL between Gaussians")
        self.pages.addTab(second, "③ – ⑦  the bound on your model, at one pixel")
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages, 1)
        layout.addWidget(caption(
            "Read ① → ⑦: entropy, cross-entropy and KL; the bound as a sum of KLs between Gaussians; each KL's "
            "means' part (eq. 8); that part in ε (eq. 12); and the weight dropped to get L<sub>simple</sub> "
            "(eq. 14). D is the number of pixels × channels. " + T_INDEX_NOTE))

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self.start)
        for signal in (self.image.valueChanged, self.timestep.changed, self.seed.valueChanged,
                       self.variance.currentIndexChanged, self.clip.toggled):
            signal.connect(self.debounce.start)
        self.button.clicked.connect(self.start)
        for box in (self.row, self.col, self.channel):
            box.valueChanged.connect(self._pixel_changed)
        self.pixel.pixel_clicked.connect(self.select_pixel)

    # ------------------------------------------------------------------ computing
    def start(self) -> bool:
        """Compute the pixel terms of the chosen image, t and ε with the current model; False if it cannot now
        (busy: it runs again when the current job ends; no model or no matching images: the status says)."""
        if self.busy:
            self._again = True
            return False
        handle = self.current_model()
        if handle is None:
            if self._retries > 0 and self.isVisible():  # a live run's weights are being copied: ask again soon
                self._retries -= 1
                QTimer.singleShot(RETRY_MS, self.start)
            return False
        self._retries = RETRIES
        dataset, _ = self.current_dataset()
        shape = handle.shape
        if dataset is None or getattr(dataset, "kind", "images") != "images":
            self.set_status("Load the images the model was trained on: this side needs an image.")
            return False
        if dataset.channels != shape.channels or dataset.image_size != shape.size:
            self.set_status(f"The model takes {shape} images but the loaded dataset has {dataset.channels}×"
                            f"{dataset.image_size}×{dataset.image_size}: load the run's dataset.")
            return False
        schedule = handle.schedule
        self.timestep.set_maximum(schedule.timesteps - 1)  # emits nothing
        for box, top in ((self.image, len(dataset)), (self.row, shape.size), (self.col, shape.size),
                         (self.channel, shape.channels)):
            box.blockSignals(True)  # a clamped value is what this computation uses: no second one
            box.setMaximum(top - 1)
            box.blockSignals(False)
        i, t, seed = self.image.value(), self.timestep.value(), self.seed.value()
        variance = None if self.variance.currentText() == OWN else self.variance.currentText()
        clip, objective, model = self.clip.isChecked(), handle.objective, handle.model
        x0 = float_images(dataset.images_uint8(torch.tensor([i])))
        self.computed_with = {"image": i, "t": t, "seed": seed, "variance": variance, "clip_x0": clip,
                              "objective": objective, "model": handle.label, "schedule": schedule, "x0": x0}

        def work(emit, cancelled):
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            model.eval()
            return pixel_terms(model, x0, t, schedule, noise, objective=objective, clip_x0=clip, variance=variance)

        self.set_status(f"Computing at t = {t} with {handle.label}…")
        self.run_job(work, "diffview-derivation", None, self._on_done)
        return True

    def _on_done(self, terms, error: str, cancelled: bool) -> None:
        if not error and terms is not None:
            first, self.terms = self.terms is None, terms
            w = self.computed_with
            if first:  # start where the model is most wrong: the pixel with the largest KL
                c, row, col = (int(i) for i in np.unravel_index(int(np.argmax(terms.kl)), terms.kl.shape))
                for box, v in ((self.channel, c), (self.row, row), (self.col, col)):
                    box.blockSignals(True)
                    box.setValue(v)
                    box.blockSignals(False)
                self.pixel.pixel = (c, row, col)
            self.pixel.show_terms(terms, w["schedule"], w["objective"])
            self.set_status(f"Image {w['image']} at t = {terms.t}, {w['model']}."
                            + (" The pixel with the largest KL is picked: click another." if first else ""))
        if self._again:
            self._again = False
            self.debounce.start()

    def _pixel_changed(self, _=None) -> None:
        self.pixel.show_pixel(self.channel.value(), self.row.value(), self.col.value())

    def select_pixel(self, row: int, col: int) -> None:
        """Show the terms at (row, col) of the current channel (a click on an image does this)."""
        for box, v in ((self.row, row), (self.col, col)):
            box.blockSignals(True)
            box.setValue(v)
            box.blockSignals(False)
        self._pixel_changed()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.terms is None and not self.busy:
            QTimer.singleShot(0, self.start)


__all__ = ["DerivationView"]
