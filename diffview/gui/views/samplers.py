"""Samplers at equal cost: DDPM, DDIM, Heun and DPM-Solver++(2M) at each budget of network evaluations (NFE),
every one from the same x_T; their quality against NFE in one plot and each one's samples at a chosen NFE
(``analysis.quality_by_nfe``). An image model is measured against the probability-flow ODE's own x_0 (a
250-step DPM-Solver++(2M) reference); a 2D model (an opened 2D run) against its data."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.samplers import (
    DEFAULT_BUDGETS,
    QualityCurves,
    QualityPoint,
    nfe_budgets,
    quality_by_nfe,
)
from diffview.core.data.points import scatter_image
from diffview.core.data.source import load_source
from diffview.core.io.export import make_grid, save_grid, to_uint8
from diffview.core.runs.handle import PointShape
from diffview.core.sampling import SAMPLER_NAMES, SAMPLERS, noise_from_seed
from diffview.gui.persistence import dialog_start, remember_folder
from diffview.gui.views.job_view import JobView
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.quality_plot import QualityPlot
from diffview.gui.widgets.sampler_choice import SPACING_TIPS
from diffview.gui.widgets.text import T_INDEX_NOTE

COLUMNS = 2
POINTS_N = 5000  # points a 2D model draws from x_T (the Images field is for image models)
SPACING_CHOICES = ("trailing", "linspace", "karras")


def parse_budgets(text: str) -> list[int]:
    """"5, 10, 20" → [5, 10, 20]; each a whole number ≥ 1."""
    budgets = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                budgets.append(int(part))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a whole number of evaluations") from None
            if budgets[-1] < 1:
                raise ValueError(f"a budget must be at least 1 evaluation, got {budgets[-1]}")
    if not budgets:
        raise ValueError("give at least one NFE budget, e.g. 5, 10, 20, 50")
    return budgets


class CompareView(JobView):
    CANCELLING = "Cancelling after this step…"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.points_source = None  # callable() -> the opened 2D run's dataset name (None: no 2D data)
        self.x_T: torch.Tensor | None = None
        self.curves: QualityCurves | None = None
        self.points: list[QualityPoint] = []
        self.samplers: list[str] = []
        self.reference_points = None  # a 2D run's data, drawn under its samples
        self.grids: dict[str, ImageGrid] = {}

        self.checks = {s: QCheckBox(SAMPLER_NAMES[s]) for s in SAMPLERS}
        for s, box in self.checks.items():
            box.setChecked(s != "ddpm")
        self.checks["ddpm"].setToolTip("Stochastic: measured against the data for a 2D model; an image model's "
                                       "ODE reference does not apply to it")
        self.spacing = QComboBox()
        self.spacing.addItems(SPACING_CHOICES)  # not leading: its chain would not start at x_T's timestep
        for i, name in enumerate(SPACING_CHOICES):
            self.spacing.setItemData(i, SPACING_TIPS[name], 3)  # Qt.ToolTipRole
        self.budgets = QLineEdit(", ".join(str(b) for b in DEFAULT_BUDGETS))
        self.budgets.setToolTip("NFE budgets, comma separated; each sampler takes the most steps within each")
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(16)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.grid_nfe = QComboBox()
        self.grid_nfe.setToolTip("The NFE budget whose samples the grids show")
        self.grid_nfe.currentIndexChanged.connect(lambda _: self._show_grids())
        self.guidance = GuidanceControls()  # every sampler guided alike
        self.button = QPushButton("Run samplers")
        self.button.clicked.connect(self.start_or_cancel)
        self.export = QPushButton("Export grids (PNG)…")
        self.export.setEnabled(False)
        self.export.clicked.connect(self._export)
        self.status = QLabel("Every sampler starts from one x_T drawn from the seed.")
        self.status.setWordWrap(True)
        boxes = QGridLayout()  # two a row: "DPM-Solver++(2M)" does not fit beside three others
        for i, box in enumerate(self.checks.values()):
            boxes.addWidget(box, i // 2, i % 2)
        form = QFormLayout()
        form.addRow(boxes)
        form.addRow("Spacing", self.spacing)
        form.addRow("NFE budgets", self.budgets)
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Grids at NFE", self.grid_nfe)
        form.addRow(self.guidance)
        form.addRow(self.button)
        form.addRow(self.export)
        form.addRow(self.status)

        self.plot = QualityPlot()
        self.add_placeholder(self.plot, "Run samplers")
        self.grid_layout = QGridLayout()
        right = QVBoxLayout()
        right.addWidget(self.plot, 1)
        right.addLayout(self.grid_layout, 1)
        self.arrange(form, right, 330,
            "Each sampler at each budget of network evaluations (NFE) takes the most steps that fit it, so they "
            "are compared at equal cost, never at equal steps (a Heun step that corrects costs two). "
            "Images: the RMS distance, in 0–255 grey levels, to DPM-Solver++(2M) with 250 steps from the same "
            "x<sub>T</sub>: how far each one lands from the probability-flow ODE's own x<sub>0</sub>. Only the ODE "
            "samplers (DDIM η = 0, Heun, DPM-Solver++(2M)) solve that ODE, so DDPM is left out there. "
            "2D points: the sliced Wasserstein distance to the data for every sampler, DDPM included, with its "
            "floor (two draws of the data apart, dashed). " + T_INDEX_NOTE)

    # ------------------------------------------------------------------ running
    def chosen(self) -> list[str]:
        return [s for s, box in self.checks.items() if box.isChecked()]

    def start(self) -> bool:
        if self.busy:
            return False
        try:
            budgets = parse_budgets(self.budgets.text())
        except ValueError as e:
            self.set_status(f"NFE budgets: {e}")
            return False
        handle = self.current_model(points=True)
        if handle is None:
            return False
        points = isinstance(handle.shape, PointShape)
        samplers, note = self.chosen(), ""
        if not points and "ddpm" in samplers:
            samplers.remove("ddpm")
            note = " DDPM left out: it is stochastic, so the ODE's reference does not apply to it."
        if not samplers:
            self.set_status("Tick at least one " + ("sampler." if points else "ODE sampler: DDIM, Heun, DPM-Solver++."))
            return False
        source = self.points_source() if points and self.points_source is not None else None
        if points and source is None:
            self.set_status(f"{handle.label} makes 2D points, but its data is not known: open its run folder.")
            return False
        model, schedule = handle.model, handle.schedule
        try:
            budgets = nfe_budgets(budgets, schedule.timesteps)
        except ValueError as e:
            self.set_status(f"NFE budgets: {e}")
            return False
        seed, spacing = self.seed.value(), self.spacing.currentText()
        self.x_T, _ = noise_from_seed(handle.sample_shape(POINTS_N if points else self.n.value()), seed)
        self.points, self.samplers, self.curves, self.reference_points = [], samplers, None, None
        self.plot.start("data" if points else "reference")
        self._make_grids(samplers)
        self.grid_nfe.blockSignals(True)
        self.grid_nfe.clear()
        self.grid_nfe.addItems([str(b) for b in budgets])
        self.grid_nfe.setCurrentIndex(len(budgets) - 1)
        self.grid_nfe.blockSignals(False)
        x_T, guide, guiding, objective = self.x_T, self.guide(), self.guidance.describe(), handle.objective
        clip = handle.clip_x0 and not points

        def work(emit, cancelled):
            model.eval()
            data = None
            if points:
                data = load_source(source)[0]
                emit(data.points[:2000].clone())
            return quality_by_nfe(model, x_T, schedule, samplers, budgets, objective=objective, clip_x0=clip,
                                  metric="data" if points else "reference", data=data, spacing=spacing, seed=seed,
                                  progress=lambda p, i, n: emit((p, i, n)), stop=cancelled, **guide)

        self.button.setText("Cancel")
        self.export.setEnabled(False)
        first = "" if points else "the 250-step reference first, then "
        self.set_status(f"Running {first}{len(samplers)} samplers at NFE {', '.join(map(str, budgets))} on "
                        f"{handle.label}, all from one x_T (seed {seed})"
                        + (f", every one {guiding}" if guiding else "") + f"…{note}")
        self.run_job(work, "diffview-samplers", self._on_item, self._on_done)
        return True

    def _make_grids(self, samplers: list[str]) -> None:
        for g in self.grids.values():
            self.grid_layout.removeWidget(g)
            g.deleteLater()
        self.grids = {s: ImageGrid(f"{SAMPLER_NAMES[s]}: waiting…") for s in samplers}
        for i, g in enumerate(self.grids.values()):
            self.grid_layout.addWidget(g, i // COLUMNS, i % COLUMNS)

    @Slot(object)
    def _on_item(self, item) -> None:
        if isinstance(item, torch.Tensor):  # a 2D run's data, drawn under its samples
            self.reference_points = item
            return
        point, done, total = item
        self.points.append(point)
        self.plot.add_point(point.sampler, point.nfe, point.distance)
        if point.floor is not None:
            self.plot.set_floor(point.floor)
        self._show_grids()
        self.set_status(f"{done} of {total} done: {SAMPLER_NAMES[point.sampler]} at NFE {point.nfe}, "
                        f"{point.distance:.3f} ({point.seconds:.2f} s)…")

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self.button.setText("Run samplers")
        self.curves = result
        if result is not None:
            self.points = list(result.points)  # items queued when it was cancelled are dropped: the result has all
            self.plot.start(result.metric)
            for p in self.points:
                self.plot.add_point(p.sampler, p.nfe, p.distance)
            if result.floor is not None:
                self.plot.set_floor(result.floor)
            self._show_grids()
        self.export.setEnabled(bool(self.points))
        if error or result is None:
            return
        lead = "Cancelled" if result.cancelled else "Done"
        if result.metric == "reference":
            what = (f"the reference (NFE {result.reference_nfe}) took {result.reference_seconds:.2f} s"
                    if result.reference is not None else "before the reference was done")
        else:
            what = f"floor {result.floor:.4f} on {result.compared:,} points" if result.floor is not None else "no point"
        self.set_status(f"{lead}: {len(result.points)} points; {what}. The same x_T went into every sampler.")

    # ------------------------------------------------------------------ the grids at one NFE
    def point_at(self, sampler: str, budget: int) -> QualityPoint | None:
        """The sampler's point at ``budget``, or at the largest budget below it (a budget that added no step)."""
        pts = [p for p in self.points if p.sampler == sampler and p.budget <= budget]
        return max(pts, key=lambda p: p.budget) if pts else None

    def _grid_image(self, point: QualityPoint) -> np.ndarray:
        if point.samples.ndim == 2:  # 2D points: a scatter over the data
            return scatter_image(point.samples, reference=self.reference_points)[None]
        return to_uint8(point.samples)

    def _show_grids(self) -> None:
        text = self.grid_nfe.currentText()
        if not text:
            return
        for sampler, grid in self.grids.items():
            p = self.point_at(sampler, int(text))
            if p is not None:
                grid.set_images(self._grid_image(p))
                grid.set_title(f"{SAMPLER_NAMES[sampler]}: NFE {p.nfe}, {p.seconds:.2f} s")

    def shown_points(self) -> list[QualityPoint]:
        text = self.grid_nfe.currentText()
        pts = [self.point_at(s, int(text)) for s in self.grids] if text else []
        return [p for p in pts if p is not None]

    def export_to(self, path: str):
        """The grids at the chosen NFE side by side in one PNG, the samplers in order."""
        return self._writer()(path)

    def _writer(self):
        """Writing the grids shown now to a path: the strip is made here, the file written by the caller."""
        shown = self.shown_points()
        if not shown:
            raise OSError("no grids to export yet")
        grids = [make_grid(self._grid_image(p)) for p in shown]
        h = max(g.shape[0] for g in grids)
        padded = [np.pad(g, ((0, h - g.shape[0]), (0, 8), (0, 0))) for g in grids]
        strip = np.concatenate(padded, axis=1)
        labels = "; ".join(f"{SAMPLER_NAMES[p.sampler]}: NFE {p.nfe}, {p.seconds:.2f} s, distance {p.distance:.4f}"
                           for p in shown)
        meta = {"samplers": labels, "seed": self.seed.value(), "spacing": self.spacing.currentText()}
        return lambda path: save_grid(strip.transpose(2, 0, 1)[None], path, nrow=1, scale=2, metadata=meta)

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the samplers' grids", dialog_start("samplers.png"),
                                              "PNG images (*.png)")
        remember_folder(path)
        if not path:
            return
        try:
            write = self._writer()
        except OSError as e:
            self.message.emit("error", f"Could not write {path}: {e}")
            return
        self.write_file(write, path, (self.export,))
