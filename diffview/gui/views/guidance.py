"""A guidance sweep: classes as rows, guidance scales S as columns, every row from one x_T, and a judge
classifier's accuracy and spread for each S (``analysis.guidance_sweep``, ``analysis.judge``).

One Job trains the judge (on the first sweep over a dataset; it is kept for the next), then samples a column
of the grid per S and scores it; cells show as their column arrives, and Cancel stops between model calls.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from diffview.core.analysis.guidance import SWEEP_SCALES, SweepCell, guidance_sweep
from diffview.core.analysis.judge import Judge, judge_scores, train_judge
from diffview.core.io.export import make_grid
from diffview.core.sampling import SAMPLER_NAMES
from diffview.gui.views.job_view import JobView
from diffview.gui.widgets.sampler_choice import SamplerCombo

GAP = 4  # pixels between cells
GAP_VALUE = 70  # their gray
WAITING_VALUE = 25  # a cell not sampled yet
PROGRESS_SECONDS = 0.1  # progress items at most this often
MAX_SCALE = 100.0  # TrainConfig.guidance_scale's bound


def parse_scales(text: str) -> list[float]:
    """"0, 1, 2.5" → [0.0, 1.0, 2.5]; each S in 0…MAX_SCALE, at least one."""
    scales = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    bad = [s for s in scales if not 0.0 <= s <= MAX_SCALE]
    if bad:
        raise ValueError(f"S must lie in 0…{MAX_SCALE:g}, got {bad[0]:g}")
    if not scales:
        raise ValueError("give at least one guidance scale S")
    return scales


def parse_classes(text: str, names: tuple[str, ...]) -> list[int]:
    """"all" (or nothing) → every class; else class names or indices, comma separated → their indices."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts or [p.lower() for p in parts] == ["all"]:
        return list(range(len(names)))
    out = []
    for p in parts:
        if p in names:
            out.append(names.index(p))
        elif p.isdigit() and int(p) < len(names):
            out.append(int(p))
        else:
            raise ValueError(f"no class {p!r}; the classes are {', '.join(names)}")
    return out


class GuidanceView(JobView):
    CANCELLING = "Cancelling after this model call…"
    BUTTON = "Run sweep"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.judge: Judge | None = None
        self._judge_for = None  # (the dataset, judge steps) the judge was trained for
        self.cells: dict[tuple[int, int], SweepCell] = {}
        self.scores: dict[float, tuple[float, float]] = {}  # S -> (accuracy, spread)
        self.classes: list[int] = []
        self.class_names: tuple[str, ...] = ()
        self.scales: list[float] = []
        self.canvas: np.ndarray | None = None
        self.row_ticks: list[tuple[float, str]] = []  # the grid's axes: (pixel, class name) per row,
        self.column_ticks: list[tuple[float, str]] = []  # (pixel, "S = …") per column

        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("all")
        self.classes_edit.setToolTip("The classes to sample, one row each: names or indices, comma separated; "
                                     "empty or \"all\" for every class")
        self.classes_hint = QLabel()
        self.classes_hint.setWordWrap(True)
        self.classes_hint.setStyleSheet("color: #9aa0a6; font-size: 11px;")
        self.scales_edit = QLineEdit(", ".join(f"{s:g}" for s in SWEEP_SCALES))
        self.scales_edit.setToolTip("The guidance scales S, one column each, in ε̃ = ε_u + S (ε_c − ε_u): 0 is the "
                                    "unconditional model, 1 the conditional one, above 1 guided")
        self.per_cell = QSpinBox()
        self.per_cell.setRange(1, 16)
        self.per_cell.setValue(4)
        self.per_cell.setToolTip("Samples in each (class, S) cell, shown as a small square")
        self.sampler = SamplerCombo()
        self.sampler.setToolTip("DDIM with η = 0 is deterministic: from one x_T a column differs only by S")
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(25)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Row r starts from the x_T of seed + r, the same in every column")
        self.use_judge = QCheckBox("Score with a judge classifier")
        self.use_judge.setChecked(True)
        self.use_judge.setToolTip("A small classifier trained here on the loaded data's labelled images (once per "
                                  "dataset) scores every column: accuracy and spread")
        self.judge_steps = QSpinBox()
        self.judge_steps.setRange(10, 5000)
        self.judge_steps.setValue(300)
        self.judge_steps.setToolTip("Training steps of the judge (batches of 128; ~10–30 s on two CPU cores for "
                                    "28×28 digits)")
        self.button = QPushButton(self.BUTTON)
        self.button.clicked.connect(self.start_or_cancel)
        self.status = QLabel("Sweeps a class-conditional model's guidance scale S over its classes.")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Classes", self.classes_edit)
        form.addRow(self.classes_hint)
        form.addRow("Scales S", self.scales_edit)
        form.addRow("Samples per cell", self.per_cell)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", self.seed)
        form.addRow(self.use_judge)
        form.addRow("Judge steps", self.judge_steps)
        form.addRow(self.button)
        form.addRow(self.status)

        self.grid_plot = pg.PlotWidget()
        self.grid_plot.setMenuEnabled(False)
        self.grid_plot.setMouseEnabled(False, False)
        self.grid_plot.hideButtons()
        self.grid_plot.invertY(True)
        self.grid_plot.setAspectLocked(True)
        self.grid_plot.setLabel("bottom", "guidance scale S")
        self.grid_plot.setLabel("left", "class y")
        self.grid_plot.showAxis("top")
        self.grid_image = pg.ImageItem(axisOrder="row-major")
        self.grid_plot.addItem(self.grid_image)
        self.add_placeholder(self.grid_plot, "Run sweep", "It needs a class-conditional model: tick Conditional in "
                             "Settings and train (Ctrl+T), or open such a run (Ctrl+Shift+O).")
        self.accuracy_plot = self._curve_plot("judge accuracy", "fraction judged as their class y")
        self.spread_plot = self._curve_plot("spread of the judge's predictions", "entropy (bits)")
        self.accuracy_curve = self.accuracy_plot.plot([], [], pen=pg.mkPen("#5ab4ff", width=2), symbol="o",
                                                      symbolSize=7, symbolBrush="#5ab4ff", name="samples")
        self.spread_curve = self.spread_plot.plot([], [], pen=pg.mkPen("#ffb45a", width=2), symbol="o",
                                                  symbolSize=7, symbolBrush="#ffb45a", name="samples")
        # The judge's accuracy on real held-out images, dashed and named in the legend. (No such line for the
        # spread: over a class's ~100 real images it is not comparable with a cell's few samples.)
        self.real_accuracy = self.accuracy_plot.plot([], [], pen=pg.mkPen("#5ab4ff", style=Qt.DashLine),
                                                     name="real images")
        curves = QVBoxLayout()
        curves.addWidget(self.accuracy_plot)
        curves.addWidget(self.spread_plot)
        row = QHBoxLayout()
        row.addWidget(self.grid_plot, 3)
        row.addLayout(curves, 2)
        right = QVBoxLayout()
        right.addLayout(row, 1)
        self.arrange(form, right, 300,
            "Each row is one class y and starts from one x<sub>T</sub> (seed + row) in every column, and DDIM with "
            "η = 0 is deterministic: the columns differ only by S in ε̃ = ε<sub>u</sub> + S (ε<sub>c</sub> − "
            "ε<sub>u</sub>) (S = 0: the unconditional model, 1: the conditional one; Ho &amp; Salimans 2021). "
            "<b>The judge</b> is a small CNN (two 3×3 convolutions, a linear layer) trained here on the loaded "
            "data's own labelled images less a held-out tenth; the dashed line is its accuracy on that real "
            "held-out tenth. <b>Accuracy</b>: the fraction of a column's samples the judge assigns to their class. "
            "<b>Spread</b>: for each class, the entropy (bits) of the judge's predicted distribution averaged over "
            "that class's samples, then averaged over the classes; 0 when all of a class's samples are judged one "
            "class, log₂ K when they spread evenly over all K.")

    def _curve_plot(self, title: str, unit: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "guidance scale S")
        plot.setLabel("left", unit)
        plot.setMinimumSize(220, 170)
        plot.addLegend(offset=(-8, -8) if "accuracy" in title else (-8, 8), labelTextSize="8pt")
        return plot

    # ------------------------------------------------------------------ starting
    def show_classes(self, names) -> None:
        """The classes a sweep of the current model can have (a hint under the classes field)."""
        names = tuple(names or ())
        self.classes_hint.setText(f"{len(names)} classes: {', '.join(names)}" if names else
                                  "The model is not class-conditional: there is nothing to sweep.")

    def start(self) -> bool:
        if self.busy:
            return False
        handle = self.current_model()
        if handle is None:
            return False
        self.show_classes(handle.class_names)
        if not handle.conditional:
            self.set_status(f"{handle.label} is not class-conditional (trained without labels): there is no class "
                            "to guide towards. Train with Conditional on.")
            return False
        try:
            classes = parse_classes(self.classes_edit.text(), handle.class_names)
            scales = parse_scales(self.scales_edit.text())
        except ValueError as e:
            self.set_status(str(e))
            return False
        data, _ = self.current_dataset()
        judge, why = self._judge_plan(handle, data)
        judge_steps = self.judge_steps.value()
        per_cell, seed, sampler = self.per_cell.value(), self.seed.value(), self.sampler.key()
        steps = min(self.steps.value(), handle.schedule.timesteps)
        self.classes, self.scales, self.class_names = classes, scales, handle.class_names
        self.cells, self.scores = {}, {}
        self._reset_grid(handle.shape, per_cell)
        self._reset_curves(why, reused=judge is not None)

        def work(emit, cancelled):
            nonlocal judge
            last = [0.0]

            def throttled(kind):
                def progress(i, n):
                    if i == n or time.monotonic() - last[0] >= PROGRESS_SECONDS:
                        last[0] = time.monotonic()
                        emit((kind, i, n))
                return progress

            if judge is None and data is not None and not why:
                judge = train_judge(data, steps=judge_steps, progress=throttled("judge progress"), stop=cancelled)
                if judge is None:
                    return None
                emit(("judge", judge, (data, judge_steps)))
            column = []
            for cell in guidance_sweep(handle, classes, scales, per_cell, seed, sampler, steps, stop=cancelled,
                                       progress=throttled("progress")):
                column.append(cell)
                if len(column) == len(classes):
                    scores = None
                    if judge is not None:
                        labels = torch.tensor([c.label for c in column]).repeat_interleave(per_cell)
                        scores = judge_scores(judge, torch.cat([c.x0 for c in column]), labels)
                    emit(("column", column, scores))
                    column = []
            return None

        self.button.setText("Cancel")
        self.set_status(f"Sweeping S over {len(classes)} classes × {len(scales)} scales, {per_cell} per cell, "
                        f"{SAMPLER_NAMES[sampler]} {steps} steps, on {handle.label}…")
        self.run_job(work, "diffview-guidance", self._on_item, self._on_done)
        return True

    def _judge_plan(self, handle, data) -> tuple[Judge | None, str]:
        """(the judge to reuse or None to train one, "" or why there is no judge)."""
        if not self.use_judge.isChecked():
            return None, "no judge (off)"
        if data is None or getattr(data, "kind", None) != "images":
            return None, "no judge: no images are loaded to train it on"
        if tuple(data.class_names) != tuple(handle.class_names):
            return None, (f"no judge: the loaded data's classes ({', '.join(data.class_names) or 'none'}) are not "
                          "the model's; open the run's own data")
        if (data.channels, data.image_size) != (handle.shape.channels, handle.shape.size):
            return None, f"no judge: the loaded images are not {handle.shape} like the model's"
        if self.judge is not None and self._judge_for == (data, self.judge_steps.value()):
            return self.judge, ""
        return None, ""

    # ------------------------------------------------------------------ results
    def _on_item(self, item) -> None:
        kind = item[0]
        if kind == "judge progress":
            self.set_status(f"Training the judge on the loaded data: step {item[1]} of {item[2]}…")
        elif kind == "judge":
            self.judge, self._judge_for = item[1], item[2]
            self._show_real()
        elif kind == "progress":
            self.set_status(f"Sampling: model call {item[1]} of {item[2]}…")
        elif kind == "column":
            self._on_column(item[1], item[2])

    def _on_column(self, column: list[SweepCell], scores) -> None:
        for cell in column:
            self.cells[(cell.row, cell.column)] = cell
            self._paint(cell)
        self.grid_image.setImage(self._shown(), levels=(0, 255), autoLevels=False)
        if scores is not None:
            self.scores[column[0].scale] = scores
            xs = sorted(self.scores)
            self.accuracy_curve.setData(xs, [self.scores[s][0] for s in xs])
            self.spread_curve.setData(xs, [self.scores[s][1] for s in xs])

    def _on_done(self, result, error: str, cancelled: bool) -> None:
        self.button.setText(self.BUTTON)
        if error:
            return
        done = len(self.cells) == len(self.classes) * len(self.scales)
        what = "Done" if done else "Cancelled" if cancelled else "Stopped"
        scores = "; ".join(f"S = {s:g}: accuracy {a:.2f}, spread {h:.2f} bits" for s, (a, h) in
                           sorted(self.scores.items()))
        self.set_status(f"{what}: {len(self.cells)} of {len(self.classes) * len(self.scales)} cells."
                        + (f" {scores}." if scores else ""))

    # ------------------------------------------------------------------ drawing
    def _reset_grid(self, shape, per_cell: int) -> None:
        self.cell_columns = max(1, math.ceil(math.sqrt(per_cell)))
        rows_in_cell = math.ceil(per_cell / self.cell_columns)
        self.cell_h = rows_in_cell * (shape.size + 1) + 1
        self.cell_w = self.cell_columns * (shape.size + 1) + 1
        R, C = len(self.classes), len(self.scales)
        h, w = R * (self.cell_h + GAP) + GAP, C * (self.cell_w + GAP) + GAP
        self.canvas = np.full((h, w, shape.channels), GAP_VALUE, np.uint8)
        for r in range(R):
            for c in range(C):
                y, x = self.cell_origin(r, c)
                self.canvas[y:y + self.cell_h, x:x + self.cell_w] = WAITING_VALUE
        self.grid_image.setImage(self._shown(), levels=(0, 255), autoLevels=False)
        self.grid_image.setRect(0, 0, w, h)
        self.row_ticks = [(self.cell_origin(r, 0)[0] + self.cell_h / 2, self.class_names[k])
                          for r, k in enumerate(self.classes)]
        self.column_ticks = [(self.cell_origin(0, c)[1] + self.cell_w / 2, f"{s:g}")
                             for c, s in enumerate(self.scales)]
        self.grid_plot.getAxis("left").setTicks([self.row_ticks])
        self.grid_plot.getAxis("bottom").setTicks([self.column_ticks])
        self.grid_plot.getAxis("top").setTicks([[(x, f"S = {s}") for x, s in self.column_ticks]])
        self.grid_plot.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)

    def cell_origin(self, row: int, column: int) -> tuple[int, int]:
        """The pixel (y, x) of the grid where cell (row, column) starts."""
        return GAP + row * (self.cell_h + GAP), GAP + column * (self.cell_w + GAP)

    def _paint(self, cell: SweepCell) -> None:
        y, x = self.cell_origin(cell.row, cell.column)
        tile = make_grid(cell.images, nrow=self.cell_columns, padding=1, pad_value=0)
        self.canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile

    def _shown(self) -> np.ndarray:
        return self.canvas[..., 0] if self.canvas.shape[-1] == 1 else self.canvas

    def _reset_curves(self, why: str, reused: bool) -> None:
        self.accuracy_curve.setData([], [])
        self.spread_curve.setData([], [])
        xs = self.scales
        for plot in (self.accuracy_plot, self.spread_plot):
            plot.setXRange(min(xs) - 0.3, max(xs) + 0.3)
            plot.getAxis("bottom").setTicks([[(s, f"{s:g}") for s in xs]])
        self.accuracy_plot.setYRange(0, 1.02)
        self.spread_plot.setYRange(0, math.log2(max(2, len(self.class_names))) * 1.02)
        self.accuracy_plot.setTitle("judge accuracy" + (f" ({why})" if why else ""))
        self._show_real(visible=reused)  # a judge trained for this sweep shows its lines once trained

    def _show_real(self, visible: bool = True) -> None:
        """The judge's accuracy on the real held-out images, as a dashed line across the accuracy plot."""
        j = self.judge
        ok = visible and j is not None and not math.isnan(j.held_out_accuracy) and bool(self.scales)
        xs = [min(self.scales) - 0.3, max(self.scales) + 0.3] if ok else []
        self.real_accuracy.setData(xs, [j.held_out_accuracy] * len(xs) if ok else [])
        self.accuracy_plot.plotItem.legend.getLabel(self.real_accuracy).setText(
            f"{j.held_out} real held-out images: {j.held_out_accuracy:.2f}" if ok else "real images")

    def grid_array(self) -> np.ndarray | None:
        """The grid as shown: uint8 [H, W, C]."""
        return self.canvas


__all__ = ["GuidanceView", "parse_classes", "parse_scales"]
