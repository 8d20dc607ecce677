"""Samplers side by side: DDPM with T steps, DDPM respaced, DDIM with k steps at several η, every
one from the same x_T, each grid labelled with its wall time (``analysis.compare_samplers``)."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.samplers import SamplerResult, SamplerSpec, compare_samplers
from diffview.core.io.export import make_grid, save_grid, to_uint8
from diffview.core.sampling import noise_from_seed
from diffview.gui.views.job_view import JobView
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.text import T_INDEX_NOTE

COLUMNS = 3


def parse_etas(text: str) -> list[float]:
    """"0, 0.5, 1" → [0.0, 0.5, 1.0]; each η must lie in [0, 1]."""
    etas = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            eta = float(part)
            if not 0.0 <= eta <= 1.0:
                raise ValueError(f"η must lie in 0..1, got {eta}")
            etas.append(eta)
    return etas or [0.0]


def sampler_specs(T: int, k: int, etas: list[float], ddpm_full: bool = True, few: int = 10) -> list[SamplerSpec]:
    """DDPM with all T steps (optional), DDPM respaced to k, DDIM with k steps at each η, and DDIM η=0
    with ``few`` steps (0 = none)."""
    k = max(1, min(k, T))
    specs = [SamplerSpec(f"DDPM, {T} steps", "ddpm", T)] if ddpm_full else []
    if k < T or not ddpm_full:
        specs.append(SamplerSpec(f"DDPM respaced, {k} steps", "ddpm", k))
    specs += [SamplerSpec(f"DDIM η={eta:g}, {k} steps", "ddim", k, eta) for eta in etas]
    if 0 < few < k:
        specs.append(SamplerSpec(f"DDIM η=0, {few} steps", "ddim", few, 0.0))
    return specs


class CompareView(JobView):
    CANCELLING = "Cancelling after this sampler…"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.x_T: torch.Tensor | None = None
        self.specs: list[SamplerSpec] = []
        self.results: list[SamplerResult] = []
        self.grids: list[ImageGrid] = []

        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(16)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.k = QSpinBox()
        self.k.setRange(1, 10_000)
        self.k.setValue(50)
        self.etas = QLineEdit("0, 1")
        self.etas.setToolTip("DDIM η values, comma separated: 0 is deterministic, 1 adds DDPM's ancestral noise")
        self.ddpm_full = QCheckBox("DDPM with all T steps")
        self.ddpm_full.setChecked(True)
        self.few = QSpinBox()
        self.few.setRange(0, 1000)
        self.few.setValue(10)
        self.few.setToolTip("Also DDIM η=0 with this few steps (0: off)")
        self.guidance = GuidanceControls()  # every sampler guided alike
        self.button = QPushButton("Run samplers")
        self.button.clicked.connect(self.start_or_cancel)
        self.export = QPushButton("Export side by side (PNG)…")
        self.export.setEnabled(False)
        self.export.clicked.connect(self._export)
        self.status = QLabel("Every sampler starts from one x_T drawn from the seed.")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Steps k", self.k)
        form.addRow("DDIM η list", self.etas)
        form.addRow("Few-step DDIM", self.few)
        form.addRow(self.ddpm_full)
        form.addRow(self.guidance)
        form.addRow(self.button)
        form.addRow(self.export)
        form.addRow(self.status)

        self.grid_layout = QGridLayout()
        right = QVBoxLayout()
        right.addLayout(self.grid_layout, 1)
        self.arrange(form, right, 300,
            "DDPM: x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z, respaced to k steps with "
            "β′ = 1 − ᾱ<sub>t</sub>/ᾱ<sub>t′</sub> (Nichol &amp; Dhariwal 2021);<br>"
            "DDIM: x<sub>t′</sub> = √ᾱ<sub>t′</sub> x̂<sub>0</sub> + √(1−ᾱ<sub>t′</sub>−σ²) ε<sub>θ</sub> + σ z, "
            "σ = η √((1−ᾱ<sub>t′</sub>)/(1−ᾱ<sub>t</sub>)) √(1−ᾱ<sub>t</sub>/ᾱ<sub>t′</sub>) (Song et al. 2021, eq. 12, 16). "
            + T_INDEX_NOTE)

    def start(self) -> bool:
        if self.busy:
            return False
        try:
            etas = parse_etas(self.etas.text())
        except ValueError as e:
            self.set_status(f"η list: {e}")
            return False
        handle = self.current_model()
        if handle is None:
            return False
        model, schedule, objective, label = handle.model, handle.schedule, handle.objective, handle.label
        T = schedule.timesteps
        self.specs = sampler_specs(T, self.k.value(), etas, self.ddpm_full.isChecked(), self.few.value())
        seed = self.seed.value()
        self.x_T, _ = noise_from_seed(handle.sample_shape(self.n.value()), seed)
        self.results = []
        self._make_grids(len(self.specs))
        for grid, spec in zip(self.grids, self.specs):
            grid.set_title(f"{spec.label}: waiting…")
        x_T, guide, guiding = self.x_T, self.guide(), self.guidance.describe()

        def work(emit, cancelled):
            model.eval()
            for res in compare_samplers(model, x_T, schedule, self.specs, objective=objective,
                                        clip_x0=handle.clip_x0, seed=seed, stop=cancelled, **guide):
                emit(res)
            return None

        self.button.setText("Cancel")
        self.export.setEnabled(False)
        self.set_status(f"Running {len(self.specs)} samplers on {label}, all from one x_T (seed {seed})"
                        + (f", every one {guiding}" if guiding else "") + "…")
        self.run_job(work, "diffview-samplers", self._on_result, self._on_done)
        return True

    def _make_grids(self, n: int) -> None:
        for g in self.grids:
            self.grid_layout.removeWidget(g)
            g.deleteLater()
        self.grids = [ImageGrid("") for _ in range(n)]
        for i, g in enumerate(self.grids):
            self.grid_layout.addWidget(g, i // COLUMNS, i % COLUMNS)

    @Slot(object)
    def _on_result(self, res: SamplerResult) -> None:
        i = len(self.results)
        self.results.append(res)
        images = to_uint8(res.samples)
        self.grids[i].set_images(images)
        self.grids[i].set_title(f"{res.spec.label}: {res.seconds:.2f} s")
        self.set_status(f"{len(self.results)} of {len(self.specs)} samplers done…")

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self.button.setText("Run samplers")
        self.export.setEnabled(bool(self.results))
        if error:
            return
        times = ", ".join(f"{r.spec.label} {r.seconds:.2f} s" for r in self.results)
        done = "Cancelled" if cancelled and len(self.results) < len(self.specs) else "Done"
        self.set_status(f"{done}: {times}. The same x_T went into every sampler.")

    def export_to(self, path: str):
        """The finished grids side by side in one PNG, the samplers in order."""
        grids = [make_grid(to_uint8(r.samples)) for r in self.results]
        h = max(g.shape[0] for g in grids)
        padded = [np.pad(g, ((0, h - g.shape[0]), (0, 8), (0, 0))) for g in grids]
        strip = np.concatenate(padded, axis=1)
        labels = "; ".join(f"{r.spec.label} ({r.seconds:.2f} s)" for r in self.results)
        return save_grid(strip.transpose(2, 0, 1)[None], path, nrow=1, scale=2,
                         metadata={"samplers": labels, "seed": self.seed.value()})

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export samplers side by side", "samplers.png", "PNG images (*.png)")
        if not path:
            return
        try:
            written = self.export_to(path)
        except OSError as e:
            self.message.emit("error", f"Could not write {path}: {e.strerror or e}")
            return
        self.message.emit("info", f"Wrote {written}")
