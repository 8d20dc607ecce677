"""The 2D tab's state, free of widgets: its data, its trainer (through a TrainingController), the model
snapshot the plots sample from, and the jobs that compute what the panels draw.

The MLP trains in a child process, as the app's image runs do (``benchmarks/gui_latency.py --cases lab2d``:
on a worker thread of the app it trained at 64-74% of headless speed, its small steps fighting the GUI
thread for the interpreter, and the event loop stalled 29 ms at the 99th percentile).

Each computation is a :class:`~diffview.gui.workers.jobs.Job` of the session's :class:`Jobs`: the core
function gets a ``check`` that raises once the job is cancelled, so it stops between model calls. A
result arrives as a signal (``score_ready``, ``trajectories_ready``…); a failure as ``failed(job,
message)`` and a ``message`` for the log, leaving the session ready for the next run. ``busy(job,
running)`` says when each job starts and ends (its button waits meanwhile).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from diffview.core.analysis.lab2d import (
    class_samples,
    langevin_vs_ddpm,
    reverse_trajectories,
    sampler_distances,
    score_field,
    score_grid,
)
from diffview.core.data.points import PointDataset, distance_to_data, save_points_csv, standardise
from diffview.core.data.source import load_source
from diffview.core.data.toy2d import TOY_DATASETS
from diffview.core.diffusion import q_sample
from diffview.core.guidance import is_conditional
from diffview.core.schedule import SCHEDULES, NoiseSchedule, make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.process import TrainingProcess
from diffview.gui.controller import TrainingController
from diffview.gui.widgets.points_canvas import contour_lines
from diffview.gui.workers.jobs import Jobs

DRAW = "Draw your own"
FORWARD_N = 2000  # points in the forward and Langevin plots
TRAJ_N = 300  # reverse trajectories drawn
TRAJ_STEPS = 100  # DDPM steps (respaced) of the trajectories
GRID = 20  # score arrows per axis
FINAL_N = 10_000  # points for the final distances
CLASS_N = 500  # guided samples drawn per class
MIN_DRAWN = 20


class Cancelled(Exception):
    pass


def _checker(cancelled):
    """The ``check`` the core's 2D functions call between model calls: raises once the job is cancelled."""
    def check() -> None:
        if cancelled():
            raise Cancelled("cancelled")
    return check


class Lab2DSession(QObject):
    message = Signal(str, str)  # (level, text), for the main window's log
    data_changed = Signal()  # the points shown (and forward_x0, forward_noise) changed
    results_cleared = Signal()  # a new training run: the previous run's samples and distances no longer apply
    busy = Signal(str, bool)  # (job, running): "trajectories", "classes", "langevin", "distances", "samplers"
    failed = Signal(str, str)  # (job, message), "score" included
    score_ready = Signal(dict)
    trajectories_ready = Signal()
    langevin_ready = Signal(dict)
    distances_ready = Signal(dict)
    samplers_ready = Signal(dict)
    classes_ready = Signal(dict)
    model_changed = Signal()  # a new model (snapshot) to sample from; its classes (model_classes) may differ

    def __init__(self, runs_root: str | Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.runs_root = Path(runs_root) if runs_root else Path(tempfile.gettempdir()) / "diffview-2d"
        self.schedule: NoiseSchedule = make_schedule("cosine", 1000)
        self.t = 0
        self.source = TOY_DATASETS[1]  # moons
        self.dataset: PointDataset | None = None
        self.drawn = np.zeros((0, 2), np.float32)  # raw drawn points, plot coordinates
        self.forward_x0 = self.forward_noise = None
        self.model = self.model_schedule = None
        self.objective = "v"
        self.model_classes: tuple[str, ...] = ()  # the model's classes; () for an unconditional model
        self.conditional = False  # Train learns p(x | class) (where the data has classes)
        self.label, self.guidance_scale = 0, 3.0  # the class and the scale S of the guided views
        self.forward_labels: np.ndarray | None = None  # the class of each forward_x0 point (−1: none)
        self.trainer: TrainingProcess | None = None  # the run in its child process (core/train/process.py)
        self.train_overrides: dict = {}  # TrainConfig settings on top of the 2D defaults (tests use tiny ones)
        self.floor: float | None = None
        self.trajectory: np.ndarray | None = None  # [S + 1, TRAJ_N, 2]
        self.traj_ts: list[int] = []
        self.langevin: dict | None = None
        self.score_result: dict | None = None
        self.final_distances: dict | None = None
        self.sampler_table: dict | None = None
        self.class_result: dict | None = None
        self.jobs = Jobs(self)
        self.score_busy = self._score_again = False
        self.controller = TrainingController(self)
        self.controller.message.connect(self.message)
        self.controller.preview.connect(self._on_preview)
        self.controller.finished.connect(self._on_finished)

    # ------------------------------------------------------------------ data
    def set_source(self, name: str) -> None:
        self.source = name
        self.dataset = None if name == DRAW else load_source(name)[0]
        self._data_changed()

    def add_drawn(self, points: np.ndarray) -> None:
        self.drawn = np.concatenate([self.drawn, np.asarray(points, np.float32)])
        self._data_changed()

    def clear_drawing(self) -> None:
        self.drawn = np.zeros((0, 2), np.float32)
        self._data_changed()

    @property
    def data_class_names(self) -> tuple[str, ...]:
        """The classes of the chosen points; () for drawn points and sets without classes."""
        return tuple(self.dataset.class_names) if self.source != DRAW and self.dataset.labels is not None else ()

    def _data_changed(self) -> None:
        pts = torch.from_numpy(self.drawn) if self.source == DRAW else self.dataset.points
        self.forward_x0 = pts[:FORWARD_N]
        labels = self.dataset.labels if self.data_class_names else None
        self.forward_labels = None if labels is None else torch.as_tensor(labels)[:FORWARD_N].numpy()
        self.forward_noise = torch.randn(self.forward_x0.shape, generator=torch.Generator().manual_seed(0))
        self.data_changed.emit()

    def training_dataset(self) -> tuple[PointDataset, str]:
        """The dataset Train uses and the cfg.dataset naming it (drawn points are standardised and saved)."""
        if self.source != DRAW:
            return self.dataset, self.dataset.name
        if len(self.drawn) < MIN_DRAWN:
            raise ValueError(f"draw at least {MIN_DRAWN} points first (drag on the left plot)")
        pts = standardise(torch.from_numpy(self.drawn))
        path = self.runs_root / "drawn" / f"drawn-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        save_points_csv(pts, path)
        self.message.emit("info", f"Saved {len(pts):,} drawn points (centred and scaled) to {path}")
        return PointDataset(pts, path.stem), str(path)

    def data_for_distances(self) -> PointDataset | None:
        """What the samples are measured against: the data trained on, else the chosen built-in."""
        return self.trainer.dataset if self.trainer is not None else self.dataset

    # ------------------------------------------------------------------ timestep and schedule
    def set_schedule(self, schedule: NoiseSchedule, t: int) -> None:
        self.schedule = schedule
        self.set_timestep(t)

    def set_timestep(self, t: int) -> None:
        self.t = t
        self.request_score()

    def forward_points_at(self, t: int) -> torch.Tensor:
        return q_sample(self.forward_x0, t, self.schedule, self.forward_noise)

    # ------------------------------------------------------------------ training
    def start_training(self, steps: int) -> bool:
        """Train an MLP on the current points for ``steps``; False (and the reason as an error message) if it
        cannot start."""
        if self.controller.running or self.jobs.closed:
            return False
        try:
            dataset, source = self.training_dataset()
            name = self.schedule.name if self.schedule.name in SCHEDULES else "cosine"
            # One torch thread: the MLP's matrices are too small to gain from two, and two OpenMP threads on a busy
            # 2-core machine were measured 24× slower per step (0.87 s against 0.037 s on moons).
            conditional = self.conditional and bool(self.data_class_names)  # previews guided at the chosen S
            cfg = TrainConfig.for_dataset(source, **{"threads": 1, "steps": steps, "schedule": name,
                                                     "timesteps": self.schedule.timesteps, "conditional": conditional,
                                                     "guidance_scale": self.guidance_scale, **self.train_overrides})
            self.trainer = TrainingProcess(cfg, None, dataset=dataset)
        except ValueError as e:
            self.message.emit("error", str(e))
            self.failed.emit("training", str(e))
            return False
        self.floor = distance_to_data(dataset.points[: cfg.preview_n], dataset)[1]
        self.trajectory = self.langevin = self.final_distances = self.class_result = None
        self.results_cleared.emit()
        self.controller.start(self.trainer)
        return True

    def _on_preview(self, ev) -> None:
        if ev.distance is not None:
            self._take_snapshot()

    def _on_finished(self, done) -> None:
        if done.reason != "failed" and not self.jobs.closed:
            self._take_snapshot(then=self._sample_finished)

    def _sample_finished(self) -> None:
        self.sample_trajectories()
        if self.model_classes:
            self.sample_classes()

    def _take_snapshot(self, then=None) -> bool:
        """Copy the run's EMA network on a worker (the child answers between two of its steps; a finished run's
        weights are already here), make it the model the plots sample from, then ``then()``; False if the run
        has no weights yet."""
        trainer = self.trainer
        if trainer is None or trainer.started is None or trainer.step == 0:
            return False
        cfg = trainer.config
        names = cfg.class_names if cfg.conditional else None

        def done(model) -> None:
            self.set_model(model, trainer.schedule, cfg.objective, names)
            if then is not None:
                then()

        self._run("snapshot", lambda check: trainer.snapshot_model(ema=True)[0], done)
        return True

    def set_model(self, model, schedule: NoiseSchedule, objective: str, class_names=None) -> None:
        """The model the plots sample from (a CPU copy; the trainer's snapshot), and a conditional one's class
        names (by default its class indices)."""
        self.model, self.model_schedule, self.objective = model, schedule, objective
        k = int(model.num_classes) if is_conditional(model) else 0
        self.model_classes = tuple(str(c) for c in (class_names or range(k)))[:k]
        self.label = min(self.label, max(k - 1, 0))
        self.model_changed.emit()
        self.request_score()

    def set_guidance(self, label: int, scale: float) -> None:
        """The class and the scale S of the guided score field and the class samples."""
        if (label, scale) != (self.label, self.guidance_scale):
            self.label, self.guidance_scale = int(label), float(scale)
            self.request_score()

    # ------------------------------------------------------------------ jobs
    def _run(self, kind: str, fn, on_done, after=None) -> None:
        """Run ``fn(check)`` as a job: ``on_done(result)`` on success, else ``failed(kind, reason)`` and the reason
        in the log (nothing once the session is shut down); then ``after()``. ``busy(kind, …)`` brackets it."""
        def done(result, error: str) -> None:
            self.busy.emit(kind, False)
            if error:
                if not self.jobs.closed:
                    self.message.emit("error", error)
                    self.failed.emit(kind, error)
            else:
                on_done(result)
            if after is not None:
                after()

        if self.jobs.start(lambda emit, cancelled: fn(_checker(cancelled)), f"diffview-{kind}",
                           on_done=done) is not None:
            self.busy.emit(kind, True)

    def request_score(self) -> None:
        """Compute the score field at t; rapid requests coalesce to the latest."""
        if self.model is None and self.source != "gaussians8":
            return
        if self.score_busy:
            self._score_again = True
            return
        if self.jobs.closed:
            return
        self.score_busy, self._score_again = True, False
        model, obj, t = self.model, self.objective, self.t
        sched = self.model_schedule if model is not None else self.schedule  # the true density needs only ᾱ_t
        true = self.source == "gaussians8"
        label, scale = (self.label if self.model_classes else None), self.guidance_scale

        def job(check):
            out = score_field(model, sched, obj, t, score_grid(GRID), true_gaussians8=true, label=label,
                              guidance_scale=scale)
            if out["logp"] is not None:
                logp, axis = out["logp"], out["axis"]
                levels = logp.max() - np.array([1.0, 2.5, 4.5, 7.0])  # density at e^−1 … e^−7 of its peak
                out["contours"] = contour_lines(logp, axis, axis, levels)
            else:
                out["contours"] = None
            return out

        self._run("score", job, self._score_done, after=self._score_over)

    def _score_done(self, out: dict) -> None:
        self.score_busy = False
        self.score_result = out
        self.score_ready.emit(out)

    def _score_over(self) -> None:
        self.score_busy = False
        if self._score_again:
            self.request_score()

    def sample_trajectories(self) -> None:
        if self.model is None:
            self.message.emit("error", "Train first: the trajectories are sampled from the trained model.")
            return
        model, sched, obj = self.model, self.model_schedule, self.objective

        def done(result) -> None:
            self.trajectory, self.traj_ts = result
            self.trajectories_ready.emit()

        self._run("trajectories", lambda check: reverse_trajectories(model, sched, obj, n=TRAJ_N, steps=TRAJ_STEPS,
                                                                     check=check), done)

    def sample_classes(self) -> bool:
        """CLASS_N samples of each class guided at S, and as many unconditional ones; False (and why) before
        there is a class-conditional model."""
        if not self.model_classes:
            self.message.emit("error", "Tick Conditional and train first: the samples are of each class.")
            return False
        model, sched, obj, scale = self.model, self.model_schedule, self.objective, self.guidance_scale

        def done(out: dict) -> None:
            self.class_result = out
            self.classes_ready.emit(out)

        self._run("classes", lambda check: class_samples(model, sched, obj, n_per_class=CLASS_N, scale=scale,
                                                         steps=TRAJ_STEPS, check=check), done)
        return True

    def _langevin_job(self, n: int, frames: bool, step_size: float, steps_per_level: int, levels: int):
        model, sched, obj, dataset = self.model, self.model_schedule, self.objective, self.data_for_distances()
        return lambda check: langevin_vs_ddpm(model, sched, obj, dataset, n=n, levels=levels,
                                              steps_per_level=steps_per_level, step_size=step_size, frames=frames,
                                              check=check)

    def run_langevin(self, step_size: float, steps_per_level: int, levels: int) -> bool:
        """Annealed Langevin beside DDPM on FORWARD_N points, every level kept; False before there is a model."""
        if self.model is None:
            self.message.emit("error", "Train first: Langevin dynamics follows the learned score.")
            return False

        def done(out: dict) -> None:
            self.langevin = out
            self.langevin_ready.emit(out)

        self._run("langevin", self._langevin_job(FORWARD_N, True, step_size, steps_per_level, levels), done)
        return True

    def measure_final(self, step_size: float, steps_per_level: int, levels: int) -> bool:
        """The sliced Wasserstein distances of DDPM and Langevin on FINAL_N points; False before there is a model."""
        if self.model is None:
            self.message.emit("error", "Train first: the distances are of the trained model's samples.")
            return False

        def done(out: dict) -> None:
            self.final_distances = out
            self.distances_ready.emit(out)

        self._run("distances", self._langevin_job(FINAL_N, False, step_size, steps_per_level, levels), done)
        return True

    def compare_samplers(self) -> bool:
        """Every sampler's distance to the data and wall time on FINAL_N points; False before there is a model."""
        if self.model is None:
            self.message.emit("error", "Train first: the samplers draw from the trained model.")
            return False
        model, sched, obj, dataset = self.model, self.model_schedule, self.objective, self.data_for_distances()

        def done(out: dict) -> None:
            self.sampler_table = out
            self.samplers_ready.emit(out)

        self._run("samplers", lambda check: sampler_distances(model, sched, obj, dataset, n=FINAL_N, check=check),
                  done)
        return True

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop training and cancel the jobs without waiting; nothing new starts after."""
        self.jobs.close()
        self.controller.stop()

    def shutdown(self, ms: int = 60_000) -> None:
        """``close()``, then wait for training and every job to end (closing the window)."""
        self.close()
        self.controller.wait(ms)
        self.jobs.wait(ms)
