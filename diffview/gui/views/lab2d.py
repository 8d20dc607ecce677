"""2D diffusion: a small MLP trains on points in seconds, and every piece of the maths can be seen.

Left, the data (five built-ins, or points drawn with the mouse) and training. Right, under one
timestep slider: the forward process on the points, reverse DDPM trajectories, the learned score
field (beside the true density's level sets for gaussians8), and annealed Langevin dynamics beside
ancestral DDPM from the same x_T, with the sliced Wasserstein distance of each to the data.
Everything heavy runs on worker threads (the TrainingController, BackgroundTask); this only draws.
"""

from __future__ import annotations

import html
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffview.core.analysis.lab2d import (
    langevin_vs_ddpm,
    reverse_trajectories,
    sampler_distances,
    score_field,
    score_grid,
)
from diffview.core.data.points import (
    PLOT_LIMIT,
    PointDataset,
    distance_to_data,
    load_points,
    save_points_csv,
    standardise,
)
from diffview.core.data.toy2d import TOY_DATASETS
from diffview.core.diffusion import q_sample
from diffview.core.schedule import SCHEDULES, NoiseSchedule, make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.trainer import Trainer
from diffview.gui.controller import TrainingController
from diffview.gui.widgets.players import FramePlayer, TimestepControl
from diffview.gui.widgets.points_canvas import (
    BRIGHT_COLOUR,
    DATA_COLOUR,
    LEARNED_COLOUR,
    TRUE_COLOUR,
    PointsPlot,
    arrow_segments,
    contour_lines,
    paths_with_gaps,
)
from diffview.gui.widgets.text import T_INDEX_NOTE, caption, readout
from diffview.gui.workers.tasks import BackgroundTask
from diffview.gui.workers.threads import use_worker_torch_threads

DRAW = "Draw your own"
FORWARD_N = 2000  # points in the forward and Langevin plots
TRAJ_N = 300  # reverse trajectories drawn
TRAJ_STEPS = 100  # DDPM steps (respaced) of the trajectories
GRID = 20  # score arrows per axis
FINAL_N = 10_000  # points for the final distances
MIN_DRAWN = 20


class Cancelled(Exception):
    pass


def _failed(err: str) -> str:
    return f"<span style='color:#ff8080'>failed: {html.escape(err)}</span>"


class Lab2DView(QWidget):
    message = Signal(str, str)  # (level, text), for the main window's log

    def __init__(self, runs_root: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.runs_root = Path(runs_root) if runs_root else Path(tempfile.gettempdir()) / "diffview-2d"
        self.schedule: NoiseSchedule = make_schedule("cosine", 1000)
        self.dataset: PointDataset | None = None
        self.drawn = np.zeros((0, 2), np.float32)  # raw drawn points, plot coordinates
        self.forward_x0 = self.forward_noise = None
        self.model = self.model_schedule = None
        self.objective = "v"
        self.trainer: Trainer | None = None
        self.train_overrides: dict = {}  # TrainConfig settings on top of the 2D defaults (tests use tiny ones)
        self.floor: float | None = None
        self.trajectory: np.ndarray | None = None  # [S + 1, TRAJ_N, 2]
        self.traj_ts: list[int] = []
        self.langevin: dict | None = None
        self.score_result: dict | None = None
        self.final_distances: dict | None = None
        self._tasks: set[BackgroundTask] = set()
        self._cancel = threading.Event()
        self._score_busy = self._score_again = False
        self.controller = TrainingController(self)

        self._build_controls()
        self._build_plots()
        layout = QHBoxLayout(self)
        layout.addWidget(self.controls)
        layout.addLayout(self.right, 1)

        self.controller.steps.connect(self._on_steps)
        self.controller.preview.connect(self._on_preview)
        self.controller.message.connect(self.message)
        self.controller.state_changed.connect(self._on_state)
        self.controller.finished.connect(self._on_finished)
        self.set_schedule(self.schedule)
        self.set_source(TOY_DATASETS[1])  # moons

    # ------------------------------------------------------------------ layout
    def _build_controls(self) -> None:
        self.controls = QWidget()
        self.controls.setFixedWidth(250)
        form = QFormLayout(self.controls)
        form.setContentsMargins(4, 4, 4, 4)
        self.source = QComboBox()
        self.source.addItems([*TOY_DATASETS, DRAW])
        self.source.setCurrentText(TOY_DATASETS[1])
        self.source.currentTextChanged.connect(self.set_source)
        form.addRow("Data", self.source)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear_drawing)
        self.drawn_label = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.clear_button)
        row.addWidget(self.drawn_label, 1)
        self.draw_row = QWidget()
        self.draw_row.setLayout(row)
        form.addRow(self.draw_row)
        self.steps = QSpinBox()
        self.steps.setRange(10, 100_000)
        self.steps.setSingleStep(500)
        self.steps.setValue(1500)
        form.addRow("Steps", self.steps)
        self.train_button, self.stop_button = QPushButton("Train"), QPushButton("Stop")
        self.train_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.controller.stop)
        self.stop_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.train_button)
        row.addWidget(self.stop_button)
        form.addRow(row)
        self.progress, self.distance_label = readout(), readout()
        self.progress.setText("not trained yet")
        self.distance_label.setWordWrap(True)
        form.addRow(self.progress)
        form.addRow(self.distance_label)
        self.sample_button = QPushButton("Sample trajectories")
        self.sample_button.setToolTip(f"DDPM ({TRAJ_STEPS} steps, respaced) from {TRAJ_N} points of N(0, I)")
        self.sample_button.clicked.connect(self.sample_trajectories)
        form.addRow(self.sample_button)
        title = QLabel("<b>Annealed Langevin</b>")
        form.addRow(title)
        self.step_size = QDoubleSpinBox()
        self.step_size.setRange(0.001, 5.0)
        self.step_size.setDecimals(3)
        self.step_size.setSingleStep(0.05)
        self.step_size.setValue(0.5)
        self.step_size.setToolTip("δ: the step at level t is δ·(1−ᾱ_t)")
        self.steps_per_level, self.levels = QSpinBox(), QSpinBox()
        self.steps_per_level.setRange(1, 200)
        self.steps_per_level.setValue(10)
        self.levels.setRange(2, 1000)
        self.levels.setValue(50)
        form.addRow("Step size δ", self.step_size)
        form.addRow("Steps per level", self.steps_per_level)
        form.addRow("Levels", self.levels)
        self.langevin_button = QPushButton("Run Langevin vs DDPM")
        self.langevin_button.clicked.connect(self.run_langevin)
        self.final_button = QPushButton(f"Distances on {FINAL_N:,} points")
        self.final_button.setToolTip("DDPM and annealed Langevin on 10,000 points each, against the data")
        self.final_button.clicked.connect(self.measure_final)
        form.addRow(self.langevin_button)
        form.addRow(self.final_button)
        self.compare_button = QPushButton(f"Compare samplers on {FINAL_N:,} points")
        self.compare_button.setToolTip("DDPM with T steps and respaced, DDIM at η = 0 and 1, from one x_T: each "
                                       "one's distance to the data and wall time")
        self.compare_button.clicked.connect(self.compare_samplers)
        form.addRow(self.compare_button)
        self.readout = readout()
        self.readout.setWordWrap(True)
        form.addRow(self.readout)

    def _build_plots(self) -> None:
        self.right = QVBoxLayout()
        self.timestep = TimestepControl()
        self.t_slider, self.t_spin = self.timestep.slider, self.timestep.spin
        self.timestep.changed.connect(self._timestep_moved)
        self.alpha_label = QLabel()
        top = QHBoxLayout()
        top.addWidget(self.timestep, 1)
        top.addWidget(self.alpha_label)
        self.right.addLayout(top)

        self.forward_plot = PointsPlot("Forward: x<sub>t</sub> of 2,000 data points")
        self.forward_plot.drawn.connect(self.add_drawn)
        self.forward_data = self.forward_plot.scatter(DATA_COLOUR, 3)
        self.forward_points = self.forward_plot.scatter()
        self.traj_plot = PointsPlot(f"Reverse DDPM trajectories ({TRAJ_N} points)")
        self.traj_data = self.traj_plot.scatter(DATA_COLOUR, 3)
        self.traj_paths = self.traj_plot.lines((90, 160, 255, 16), connect="finite")
        self.traj_now = self.traj_plot.scatter(BRIGHT_COLOUR, 4)
        self.score_plot = PointsPlot("Score field at t")
        self.score_points = self.score_plot.scatter(DATA_COLOUR, 2)
        self.contours = self.score_plot.lines((120, 230, 140, 170), connect="finite")
        self.true_arrows = self.score_plot.lines(TRUE_COLOUR, 1.2)
        self.learned_arrows = self.score_plot.lines(LEARNED_COLOUR, 1.2)
        self.lang_plot = PointsPlot("Annealed Langevin")
        self.ddpm_plot = PointsPlot("DDPM, same x<sub>T</sub>")
        self.lang_points = self.lang_plot.scatter(LEARNED_COLOUR)
        self.ddpm_points = self.ddpm_plot.scatter()
        for plot in (self.lang_plot, self.ddpm_plot):
            plot.setMinimumSize(150, 150)

        self.traj_player, self.lang_player = FramePlayer(40), FramePlayer(80)
        self.traj_player.frame.connect(self._show_traj_frame)
        self.lang_player.frame.connect(self._show_lang_frame)
        self.traj_slider, self.traj_label = self.traj_player.slider, self.traj_player.label
        self.lang_slider, self.lang_label = self.lang_player.slider, self.lang_player.label
        self.lang_text = QLabel()
        self.lang_text.setTextFormat(Qt.RichText)
        self.lang_text.setStyleSheet("font-family: monospace; font-size: 11px;")

        def cell(widgets, row, text):
            box = QVBoxLayout()
            box.setSpacing(2)
            box.addLayout(widgets) if isinstance(widgets, QHBoxLayout) else box.addWidget(widgets, 1)
            if row is not None:
                box.addWidget(row)
            box.addWidget(caption(text))
            return box

        pair = QHBoxLayout()
        pair.addWidget(self.lang_plot)
        pair.addWidget(self.ddpm_plot)
        grid = QGridLayout()
        grid.addLayout(cell(self.forward_plot, None,
                            "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε, ε ~ N(0, I) drawn once;"
                            " grey: the data x<sub>0</sub>. Draw mode: drag on this plot to add points. " + T_INDEX_NOTE), 0, 0)
        grid.addLayout(cell(self.traj_plot, self.traj_player,
                            "x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z from "
                            "x<sub>T</sub> ~ N(0, I): paths faint, current positions bright"), 0, 1)
        grid.addLayout(cell(self.score_plot, None,
                            "<span style='color:#78c8ff'>s<sub>θ</sub>(x,t) = −ε<sub>θ</sub>(x,t)/√(1−ᾱ<sub>t</sub>)"
                            "</span> on a 20×20 grid, arrows normalised to one length (direction only); gaussians8: "
                            "<span style='color:#78e68c'>level sets of log p<sub>t</sub></span> and "
                            "<span style='color:#ffb050'>the true score ∇log p<sub>t</sub></span>"), 1, 0)
        lang_box = cell(pair, self.lang_player, "x ← x + (δ<sub>t</sub>/2) s<sub>θ</sub>(x, t) + √δ<sub>t</sub> z,  "
                                        "δ<sub>t</sub> = δ(1−ᾱ<sub>t</sub>), at each level t; beside DDPM at the "
                                        "same levels")
        lang_box.insertWidget(2, self.lang_text)
        grid.addLayout(lang_box, 1, 1)
        for i in (0, 1):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self.right.addLayout(grid, 1)

    # ------------------------------------------------------------------ data
    def set_source(self, name: str) -> None:
        drawing = name == DRAW
        self.forward_plot.draw_enabled = drawing
        self.draw_row.setVisible(drawing)
        self.forward_plot.setTitle("Draw: drag on this plot to add points" if drawing
                                   else "Forward: x<sub>t</sub> of 2,000 data points")
        self.dataset = None if drawing else load_points(name)[0]
        self._data_changed()

    def add_drawn(self, points: np.ndarray) -> None:
        self.drawn = np.concatenate([self.drawn, np.asarray(points, np.float32)])
        self._data_changed()

    def clear_drawing(self) -> None:
        self.drawn = np.zeros((0, 2), np.float32)
        self._data_changed()

    def _shown_points(self) -> torch.Tensor:
        if self.source.currentText() == DRAW:
            return torch.from_numpy(self.drawn)
        return self.dataset.points

    def _data_changed(self) -> None:
        pts = self._shown_points()[:FORWARD_N]
        self.forward_x0 = pts
        self.forward_noise = torch.randn(pts.shape, generator=torch.Generator().manual_seed(0))
        self.drawn_label.setText(f"{len(self.drawn):,} points drawn")
        data = pts.numpy()
        for item in (self.forward_data, self.traj_data, self.score_points):
            item.setData(pos=data)
        self._refresh_forward()

    def training_dataset(self) -> tuple[PointDataset, str]:
        """The dataset Train uses and the cfg.dataset naming it (drawn points are standardised and saved)."""
        if self.source.currentText() != DRAW:
            return self.dataset, self.dataset.name
        if len(self.drawn) < MIN_DRAWN:
            raise ValueError(f"draw at least {MIN_DRAWN} points first (drag on the left plot)")
        pts = standardise(torch.from_numpy(self.drawn))
        path = self.runs_root / "drawn" / f"drawn-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        save_points_csv(pts, path)
        self.message.emit("info", f"Saved {len(pts):,} drawn points (centred and scaled) to {path}")
        return PointDataset(pts, path.stem), str(path)

    # ------------------------------------------------------------------ timestep and schedule
    def set_schedule(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self._timestep_moved(self.timestep.set_maximum(schedule.timesteps - 1))

    @property
    def t(self) -> int:
        return self.timestep.value()

    def set_timestep(self, t: int) -> None:
        self.timestep.setValue(t)

    def _timestep_moved(self, t: int) -> None:
        self.alpha_label.setText(f"ᾱ<sub>t</sub> = {float(self.schedule.alphas_cumprod[t]):.4f}")
        self._refresh_forward()
        self.request_score()

    def forward_points_at(self, t: int) -> torch.Tensor:
        return q_sample(self.forward_x0, t, self.schedule, self.forward_noise)

    def _refresh_forward(self) -> None:
        if self.forward_x0 is None:
            return
        self.forward_points.setData(pos=self.forward_points_at(self.t).numpy())
        self.forward_data.setVisible(self.t > 0)

    # ------------------------------------------------------------------ training
    def start_training(self) -> None:
        if self.controller.running:
            return
        try:
            dataset, source = self.training_dataset()
            name = self.schedule.name if self.schedule.name in SCHEDULES else "cosine"
            # One torch thread: the MLP's matrices are too small to gain from two, and two OpenMP threads on a busy
            # 2-core machine were measured 24× slower per step (0.87 s against 0.037 s on moons).
            cfg = TrainConfig.for_dataset(source, **{"threads": 1, "steps": self.steps.value(), "schedule": name,
                                                     "timesteps": self.schedule.timesteps, **self.train_overrides})
            self.trainer = Trainer(cfg, None, dataset=dataset)
        except ValueError as e:
            self.message.emit("error", str(e))
            self.progress.setText(f"<span style='color:#ff8080'>{e}</span>")
            return
        self.floor = distance_to_data(dataset.points[: cfg.preview_n], dataset)[1]
        self.progress.setText("starting…")
        self._clear_results()
        self.controller.start(self.trainer)

    def _clear_results(self) -> None:
        """A new run: the previous run's samples and distances no longer apply."""
        self.trajectory = self.langevin = self.final_distances = None
        for item in (self.traj_now, self.lang_points, self.ddpm_points):
            item.setData(pos=np.zeros((0, 2)))
        self.traj_paths.setData([], [])
        for label in (self.distance_label, self.lang_text, self.readout, self.traj_label, self.lang_label):
            label.setText("")

    def _on_steps(self, events: list) -> None:
        ev = events[-1]
        self.progress.setText(f"step {ev.step:,} / {ev.total_steps:,}<br>loss {ev.loss:.4f}")

    def _on_preview(self, ev) -> None:
        if ev.distance is None:
            return
        n = len(ev.points) if ev.points is not None else 0
        self.distance_label.setText(f"step {ev.step:,}: SW distance to data {ev.distance:.4f}<br>"
                                    f"floor {self.floor:.4f} ({n:,} points, DDPM {ev.sample_steps} steps)")
        self._take_snapshot()

    def _on_state(self, state: str) -> None:
        running = state != "idle"
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.source.setEnabled(not running)

    def _on_finished(self, done) -> None:
        self.progress.setText(self.progress.text() + f"<br>{done.reason}")
        if done.reason != "failed" and not self._cancel.is_set() and self._take_snapshot():
            self.sample_trajectories()

    def _take_snapshot(self) -> bool:
        if self.trainer is None or self.trainer.model is None or self.trainer.step == 0:
            return False
        self.set_model(self.trainer.snapshot_model(ema=True), self.trainer.schedule, self.trainer.config.objective)
        return True

    def set_model(self, model, schedule: NoiseSchedule, objective: str) -> None:
        """The model the views sample from (a CPU copy; the trainer's snapshot)."""
        self.model, self.model_schedule, self.objective = model, schedule, objective
        self.request_score()

    # ------------------------------------------------------------------ background work
    def _run(self, fn, on_done, name: str, button: QPushButton | None = None, show_error=None) -> None:
        """Run ``fn`` on a worker; ``button`` stays disabled until it ends. If it fails, ``show_error(reason)``
        puts the reason where its result would have gone (and leaves the view ready for another run)."""
        if self._cancel.is_set():  # shut down: start nothing new
            return

        def failed(err: str) -> None:
            if self._cancel.is_set():
                return
            self.message.emit("error", err)
            if show_error is not None:
                show_error(err)

        def job():  # beside training: the worker's own OpenMP team must not take every core
            use_worker_torch_threads()
            return fn()

        task = BackgroundTask(job, on_done, failed, self, name=name)
        self._tasks.add(task)
        task.finished.connect(lambda: self._tasks.discard(task))
        if button is not None:
            button.setEnabled(False)
            task.finished.connect(lambda: button.setEnabled(True))
        task.start()

    def _check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def request_score(self) -> None:
        """Compute the score field at the slider's t; rapid requests coalesce to the latest."""
        if self.model is None and self.source.currentText() != "gaussians8":
            return
        if self._score_busy:
            self._score_again = True
            return
        if self._cancel.is_set():
            return
        self._score_busy, self._score_again = True, False
        model, obj, t = self.model, self.objective, self.t
        sched = self.model_schedule if model is not None else self.schedule  # the true density needs only ᾱ_t
        true = self.source.currentText() == "gaussians8"

        def job():
            out = score_field(model, sched, obj, t, score_grid(GRID), true_gaussians8=true)
            if out["logp"] is not None:
                logp, axis = out["logp"], out["axis"]
                levels = logp.max() - np.array([1.0, 2.5, 4.5, 7.0])  # density at e^−1 … e^−7 of its peak
                out["contours"] = contour_lines(logp, axis, axis, levels)
            else:
                out["contours"] = None
            return out

        self._run(job, self._score_done, "diffview-score", show_error=self._score_failed)

    def _score_failed(self, err: str) -> None:
        self._score_busy = False
        self.score_plot.setTitle(f"Score field at t = {self.t}: failed ({html.escape(err)})")
        if self._score_again:
            self.request_score()

    def _score_done(self, out: dict) -> None:
        self._score_busy = False
        self.score_result = out
        length = 0.8 * (2 * PLOT_LIMIT - 0.3) / (GRID - 1)
        for item, key in ((self.learned_arrows, "score"), (self.true_arrows, "true")):
            item.setData(*arrow_segments(out["grid"], out[key], length)) if out[key] is not None else item.setData([], [])
        self.contours.setData(*out["contours"]) if out["contours"] is not None else self.contours.setData([], [])
        self.score_points.setData(pos=self.forward_points_at(out["t"]).numpy())
        self.score_plot.setTitle(f"Score field at t = {out['t']}"
                                 + ("" if out["score"] is not None else " (true score only: not trained yet)"))
        if self._score_again:
            self.request_score()

    def sample_trajectories(self) -> None:
        if self.model is None:
            self.message.emit("error", "Train first: the trajectories are sampled from the trained model.")
            return
        model, sched, obj = self.model, self.model_schedule, self.objective

        def job():
            return reverse_trajectories(model, sched, obj, n=TRAJ_N, steps=TRAJ_STEPS, check=self._check)

        self._run(job, self._trajectories_done, "diffview-trajectories", self.sample_button,
                  lambda err: self.traj_label.setText(_failed(err)))

    def _trajectories_done(self, result) -> None:
        self.trajectory, self.traj_ts = result
        self.traj_paths.setData(*paths_with_gaps(self.trajectory))
        self.traj_player.set_frames(len(self.trajectory))

    def _show_traj_frame(self, k: int) -> None:
        if self.trajectory is None:
            return
        self.traj_now.setData(pos=self.trajectory[k])
        S = len(self.trajectory) - 1
        where = "x<sub>T</sub>" if k == 0 else "x<sub>0</sub>" if self.traj_ts[k - 1] < 0 else \
            f"x<sub>t</sub>, t = {self.traj_ts[k - 1]}"
        self.traj_label.setText(f"step {k} of {S}: {where}")

    def _langevin_job(self, n: int, frames: bool):
        model, sched, obj = self.model, self.model_schedule, self.objective
        step, per, levels = self.step_size.value(), self.steps_per_level.value(), self.levels.value()
        dataset = self.trainer._dataset if self.trainer is not None else self.dataset

        def job():
            return langevin_vs_ddpm(model, sched, obj, dataset, n=n, levels=levels, steps_per_level=per,
                                    step_size=step, frames=frames, check=self._check)

        return job

    def run_langevin(self) -> None:
        if self.model is None:
            self.message.emit("error", "Train first: Langevin dynamics follows the learned score.")
            return
        self.lang_text.setText("running…")
        self._run(self._langevin_job(FORWARD_N, True), self._langevin_done, "diffview-langevin", self.langevin_button,
                  lambda err: self.lang_text.setText(_failed(err)))

    def _langevin_done(self, out: dict) -> None:
        self.langevin = out
        self.lang_player.set_frames(out["levels"] + 1)
        self.lang_text.setText(f"SW distance to data ({out['n']:,} points): <span style='color:#78c8ff'>Langevin "
                               f"{out['lang_d']:.4f}</span> · DDPM {out['ddpm_d']:.4f} · floor {out['floor']:.4f}")

    def _show_lang_frame(self, k: int) -> None:
        if self.langevin is None:
            return
        self.lang_points.setData(pos=self.langevin["lang"][k])
        self.ddpm_points.setData(pos=self.langevin["ddpm"][k])
        L = self.langevin["levels"]
        where = "x<sub>T</sub>" if k == 0 else f"t = {self.langevin['ts'][k - 1]}"
        self.lang_label.setText(f"level {k} of {L}, {where}")

    def measure_final(self) -> None:
        if self.model is None:
            self.message.emit("error", "Train first: the distances are of the trained model's samples.")
            return
        self.readout.setText(f"sampling {FINAL_N:,} points with DDPM and Langevin…")
        self._run(self._langevin_job(FINAL_N, False), self._final_done, "diffview-distances", self.final_button,
                  lambda err: self.readout.setText(_failed(err)))

    def _final_done(self, out: dict) -> None:
        self.final_distances = out
        self.readout.setText(f"SW distance to data:<br>DDPM {out['ddpm_d']:.4f} · Langevin {out['lang_d']:.4f}<br>"
                             f"floor {out['floor']:.4f} ({out['n']:,} points; {out['levels']} levels, "
                             f"{out['per']} steps each, δ = {out['step']:g})")

    def compare_samplers(self) -> None:
        if self.model is None:
            self.message.emit("error", "Train first: the samplers draw from the trained model.")
            return
        model, sched, obj = self.model, self.model_schedule, self.objective
        dataset = self.trainer._dataset if self.trainer is not None else self.dataset
        self.readout.setText(f"running every sampler on {FINAL_N:,} points…")
        self._run(lambda: sampler_distances(model, sched, obj, dataset, n=FINAL_N, check=self._check),
                  self._compare_done, "diffview-samplers", self.compare_button,
                  lambda err: self.readout.setText(_failed(err)))

    def _compare_done(self, out: dict) -> None:
        self.sampler_table = out
        rows = "<br>".join(f"{label}: {d:.4f} ({seconds:.1f} s)" for label, d, seconds in out["rows"])
        self.readout.setText(f"SW distance to data, one x<sub>T</sub>:<br>{rows}<br>floor {out['floor']:.4f} "
                             f"({out['n']:,} points)")

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, ms: int = 60_000) -> None:
        """Stop training and cancel the workers, and wait for them (closing the window). Nothing new starts after."""
        self._cancel.set()
        self.traj_player.stop()
        self.lang_player.stop()
        self.controller.stop()
        self.controller.wait(ms)
        for task in list(self._tasks):
            task.wait(ms)
