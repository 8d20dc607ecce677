"""The variational bound by timestep: L_T, each L_{t−1} and L_0 of the current model in bits/dim on
held-out images, over t, beside the training loss by t; the total is the model's NLL bound. Beside it, on
the same images, the probability-flow ODE's exact NLL (``bound_likelihood``, the view's own part).

The numbers are the core's (``analysis.vlb_by_timestep`` over ``losses.vlb_terms``), computed on
a worker thread with a progress bar, on demand or every N training steps.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.bound import VLBResult, vlb_by_timestep
from diffview.core.data.source import load_source
from diffview.gui.views.bound_likelihood import BUTTON, CAPTION, LikelihoodControls, likelihood_work, side_by_side
from diffview.gui.views.job_view import JobView, float_images
from diffview.gui.widgets.plot_style import Placeholder, light_grid
from diffview.gui.widgets.text import caption, readout

VARIANCE_WORDS = {"fixed_small": "σ²<sub>t</sub> = β̃<sub>t</sub>", "fixed_large": "σ²<sub>t</sub> = β<sub>t</sub>",
                  "learned_range": "learned (improved DDPM eq. 15)", "learned": "learned σ²<sub>t</sub>"}
HELD_OUT_SEED = 1  # the app loads built-in datasets with seed 0: another seed draws images never trained on


def evaluation_images(dataset, report, channels: int, size: int, n: int, seed: int = 0):
    """(x0 float [n, C, S, S] in [−1, 1], a sentence saying which images they are).

    A built-in dataset gives a fresh draw with another seed (held out); a folder has no held-out
    split, so a random subset of its training images is used and the sentence says so.
    """
    source = report.source if report is not None else ""
    if source.startswith("builtin:"):
        name = source.split(":", 1)[1]
        ds, _ = load_source(source, image_size=size, channels=channels, seed=HELD_OUT_SEED, n=n)
        return (float_images(ds.images_uint8(torch.arange(len(ds)))),
                f"{n} held-out {name} images (a fresh draw with seed {HELD_OUT_SEED}; training used seed 0)")
    if dataset is None:
        raise ValueError("No dataset is loaded: the bound needs images to evaluate.")
    if dataset.channels != channels or dataset.image_size != size:
        raise ValueError(f"The model takes {channels}×{size}×{size} images but the loaded dataset has "
                         f"{dataset.channels}×{dataset.image_size}×{dataset.image_size}: load the run's dataset.")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return (float_images(dataset.images_uint8(idx)),
            f"{len(idx)} random TRAINING images (a folder has no held-out split, so this is the bound on "
            "training data, not a test NLL)")


LOSS_PLACEHOLDER = ("The training loss by t appears here while a model trains: press <b>Train</b> (Ctrl+T).")

class BoundView(JobView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss_source = None  # callable() -> (bin centres, mean loss, bin width) of the training loss by t
        self.result: VLBResult | None = None
        self.x0: torch.Tensor | None = None
        self.images_note = ""
        self.seed = 0
        self._next_auto = 0
        self._last_bars = 0.0

        self.images = QSpinBox()
        self.images.setRange(1, 1024)
        self.images.setValue(64)
        self.all_t = QCheckBox("all T timesteps")
        self.k = QSpinBox()
        self.k.setRange(2, 10_000)
        self.k.setValue(50)
        self.k.setToolTip("L_0 and k − 1 evenly spaced L_t; their sum is rescaled to all T − 1 terms")
        self.all_t.toggled.connect(lambda on: self.k.setEnabled(not on))
        self.button = QPushButton("Compute the bound")
        self.button.clicked.connect(self.start_or_cancel)
        self.auto = QCheckBox("every N steps while training")
        self.every = QSpinBox()
        self.every.setRange(10, 10_000_000)
        self.every.setValue(1000)
        self.every.setSingleStep(100)
        self.log_y = QCheckBox("log y axis")
        self.log_y.setChecked(True)
        self.log_y.toggled.connect(self._log_toggled)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Press Compute to evaluate the current model's bound.")
        self.status.setWordWrap(True)
        self.values = readout()
        self.values.setWordWrap(True)
        self.ode = LikelihoodControls()
        self.ode.button.clicked.connect(self.likelihood_or_cancel)

        form = QFormLayout()
        form.addRow("Images", self.images)
        form.addRow("Timesteps k", self.k)
        form.addRow(self.all_t)
        form.addRow(self.button)
        form.addRow(self.progress)
        form.addRow(self.auto)
        form.addRow("N (steps)", self.every)
        form.addRow(self.log_y)
        form.addRow(self.status)
        form.addRow(self.values)
        self.ode.add_to(form)

        self.plots = pg.GraphicsLayoutWidget()
        self.p_vlb = self.plots.addPlot(row=0, col=0, title="VLB terms L<sub>t</sub> by timestep (bits/dim)")
        self.p_vlb.setLabel("bottom", "t (0-based index)")
        self.p_vlb.setLabel("left", "bits/dim")
        self.p_vlb.showGrid(x=True, y=True, alpha=0.2)
        self.p_vlb.setLogMode(y=True)
        self.p_vlb.addLegend(offset=(-10, 10))
        self.add_placeholder(self.p_vlb, "Compute the bound")
        self.curve = self.p_vlb.plot(pen=pg.mkPen("#5aa0ff", width=2), antialias=True, name="KL term at index t")
        self.l0_point = self.p_vlb.plot(pen=None, symbol="o", symbolBrush="#ffb050", symbolSize=9, name="L<sub>0</sub>")
        self.prior_point = self.p_vlb.plot(pen=None, symbol="s", symbolBrush="#50d890", symbolSize=9,
                                           name="L<sub>T</sub> (prior)")
        self.p_loss = self.plots.addPlot(row=1, col=0, title="training loss by timestep (from the Training tab)")
        self.p_loss.setLabel("bottom", "t")
        light_grid(self.p_loss)  # it redraws while training
        self.p_loss.setXLink(self.p_vlb)
        self.bars = pg.BarGraphItem(x=[], height=[], width=1, brush="#5aa0ff")
        self.p_loss.addItem(self.bars)
        self.loss_placeholder = Placeholder(self.p_loss.getViewBox(), LOSS_PLACEHOLDER)  # until training has data
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 2)

        right = QVBoxLayout()
        right.addWidget(self.plots, 1)
        right.addWidget(caption(CAPTION))
        self.arrange(form, right, 320,
            "L<sub>t−1</sub> = KL(q(x<sub>t−1</sub>|x<sub>t</sub>,x<sub>0</sub>) ‖ p<sub>θ</sub>(x<sub>t−1</sub>|x<sub>t</sub>)), "
            "L<sub>0</sub> = −log p<sub>θ</sub>(x<sub>0</sub>|x<sub>1</sub>), L<sub>T</sub> = KL(q(x<sub>T</sub>|x<sub>0</sub>) ‖ N(0, I)), "
            "in bits/dim;  −log p(x<sub>0</sub>) ≤ L<sub>T</sub> + Σ L<sub>t−1</sub> + L<sub>0</sub>  (DDPM eq. 5), "
            "the paper's steps 1…T.<br>The curve is drawn at the 0-based index t of every other tab: at index t "
            "the model sees the paper's x<sub>t+1</sub>, so the term there is the paper's L<sub>t</sub>; "
            "index 0 is the decoder L<sub>0</sub>, and L<sub>T</sub> sits at T.")

    # ------------------------------------------------------------------ computing
    def start(self) -> bool:
        """Start computing the bound of the current model; False if there is none or one is running."""
        if self.busy:
            return False
        handle = self.current_model()
        if handle is None:
            return False
        model, schedule, objective, label = handle.model, handle.schedule, handle.objective, handle.label
        channels, size = handle.shape.channels, handle.shape.size
        dataset, report = self.current_dataset()
        n, seed = self.images.value(), self.seed
        k = None if self.all_t.isChecked() or self.k.value() >= schedule.timesteps else self.k.value()

        def work(emit, cancelled):
            x0, note = evaluation_images(dataset, report, channels, size, n, seed)
            emit(("images", note))
            def progress(done, total):
                emit(("progress", done, total))
                return cancelled()

            model.eval()
            with torch.no_grad():
                result = vlb_by_timestep(model, x0, schedule, objective=objective, timesteps=k, seed=seed,
                                         progress=progress)
            return result, x0, note, schedule.timesteps

        self.button.setText("Cancel")
        self.ode.button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.set_status(f"Computing the bound of {label}…")
        self.run_job(work, "diffview-bound", self._on_item, self._on_done)
        return True

    @Slot(object)
    def _on_item(self, item) -> None:
        if item[0] == "progress":
            self.progress.setRange(0, item[2])
            self.progress.setValue(item[1])
        else:
            self.set_status(f"Evaluating on {item[1]}…")

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self.button.setText("Compute the bound")
        self.ode.button.setEnabled(True)
        if error:
            return
        if result is None or result[0] is None:
            self.set_status("Cancelled.")
            return
        self.result, self.x0, self.images_note, T = result
        self.show_result(self.result, T)
        self.set_status(f"On {self.images_note}.")

    def show_result(self, r: VLBResult, T: int) -> None:
        kl_t, kl = r.timesteps[1:], r.terms[1:]
        floor = 1e-12 if self.log_y.isChecked() else -np.inf  # a log axis cannot show 0
        self.curve.setData(kl_t.astype(float), np.maximum(kl, floor))
        self.l0_point.setData([0.0], [max(float(r.terms[0]), floor)])
        self.prior_point.setData([float(T)], [max(r.prior, floor)])
        kl_sum = r.total - r.prior - float(r.terms[0])
        how = (f"{len(r.timesteps)} of {T} timesteps, sum rescaled" if r.subsampled else f"all {T} timesteps")
        how += f"; p<sub>θ</sub> variance {VARIANCE_WORDS.get(r.variance, r.variance)}"
        self.values.setText(
            f"L<sub>T</sub> = {r.prior:.3g}<br>L<sub>0</sub> = {r.terms[0]:.4f}<br>"
            f"Σ L<sub>t−1</sub> = {kl_sum:.4f}<br><b>NLL ≤ {r.total:.4f} bits/dim</b><br>({how}; {r.images} images)")
        self.p_vlb.setTitle(f"VLB terms L<sub>t</sub> by timestep (bits/dim): total {r.total:.3f} bits/dim ({how})")
        self.refresh_loss()
        self.ode.values.setText(side_by_side(r, self.ode.result))

    def _log_toggled(self, on: bool) -> None:
        self.p_vlb.setLogMode(y=on)
        if self.result is not None:
            self.show_result(self.result, int(self.prior_point.xData[0]))

    # ------------------------------------------------------------------ the ODE likelihood
    def likelihood_or_cancel(self) -> None:
        """What the ODE likelihood button does: start it, or cancel it while it runs."""
        if self.busy:
            self.cancel()
            self.set_status(self.CANCELLING)
        else:
            self.start_likelihood()

    def start_likelihood(self) -> bool:
        """Start the ODE's NLL on the bound's images (the first ODE images of them); False if it cannot."""
        if self.busy:
            return False
        handle = self.current_model()
        if handle is None:
            return False
        channels, size = handle.shape.channels, handle.shape.size
        dataset, report = self.current_dataset()
        n, seed = self.images.value(), self.seed

        def images():
            return evaluation_images(dataset, report, channels, size, n, seed)

        work = likelihood_work(handle.model, handle.schedule, handle.objective, images, self.ode.settings(), seed)
        self.ode.button.setText("Cancel")
        self.button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.set_status(f"Integrating the probability-flow ODE of {handle.label}…")
        self.run_job(work, "diffview-ode-likelihood", self._on_item, self._on_likelihood_done)
        return True

    def _on_likelihood_done(self, result, error: str, cancelled: bool) -> None:
        self.ode.button.setText(BUTTON)
        self.button.setEnabled(True)
        if error:
            return
        if result is None or result[0] is None:
            self.set_status("Cancelled.")
            return
        self.ode.result, note = result
        self.ode.values.setText(side_by_side(self.result, self.ode.result))
        self.set_status(f"ODE likelihood on {note}.")

    # ------------------------------------------------------------------ the training loss, live
    def refresh_loss(self) -> None:
        self._last_bars = time.monotonic()
        if self.loss_source is None:
            return
        x, height, width = self.loss_source()
        self.bars.setOpts(x=x, height=height, width=width * 0.9)
        self.loss_placeholder.item.setVisible(not np.any(height))

    @Slot(list)
    def on_training_steps(self, events: list) -> None:
        """Refresh the loss bars now and then, and start the bound every N steps when asked."""
        if not events:
            return
        if self.isVisible() and time.monotonic() - self._last_bars > 1.0:
            self.refresh_loss()
        step = events[-1].step
        if self._next_auto == 0 or step < self._next_auto - self.every.value():  # a new run starts over
            self._next_auto = (step // self.every.value() + 1) * self.every.value()
        if self.auto.isChecked() and step >= self._next_auto and not self.busy:
            self._next_auto = (step // self.every.value() + 1) * self.every.value()
            self.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_loss()
