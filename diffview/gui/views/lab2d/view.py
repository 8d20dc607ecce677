"""2D diffusion: a small MLP trains on points in seconds, and every piece of the maths can be seen.

Left, the data (five built-ins, or points drawn with the mouse) and training. Right, under one
timestep slider: the forward process on the points, reverse DDPM trajectories, the learned score
field (beside the true density's level sets for gaussians8), and annealed Langevin dynamics beside
ancestral DDPM from the same x_T, with the sliced Wasserstein distance of each to the data.
The tab's state, its trainer and its jobs are a :class:`~.session.Lab2DSession`; the panels only draw.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
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

from diffview.core.data.toy2d import TOY_DATASETS
from diffview.core.schedule import NoiseSchedule
from diffview.gui.views.lab2d import session as lab2d_session
from diffview.gui.views.lab2d.panels import (
    DistancesPanel,
    ForwardPanel,
    LangevinPanel,
    ScorePanel,
    TrajectoryPanel,
    failed_text,
)
from diffview.gui.views.lab2d.session import DRAW, TRAJ_N, TRAJ_STEPS, Lab2DSession
from diffview.gui.widgets.players import TimestepControl
from diffview.gui.widgets.text import readout


class Lab2DView(QWidget):
    message = Signal(str, str)  # (level, text), for the main window's log

    def __init__(self, runs_root: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.session = s = Lab2DSession(runs_root, self)
        self._build_controls()
        self._build_plots()
        layout = QHBoxLayout(self)
        layout.addWidget(self.controls)
        layout.addLayout(self.right, 1)

        s.message.connect(self.message)
        s.data_changed.connect(self._data_changed)
        s.results_cleared.connect(self._clear_results)
        s.busy.connect(self._busy)
        s.failed.connect(self._failed)
        s.score_ready.connect(lambda out: self.score_panel.show_field(out, s.forward_points_at(out["t"]).numpy()))
        s.trajectories_ready.connect(lambda: self.traj_panel.show_trajectory(s.trajectory, s.traj_ts))
        s.langevin_ready.connect(self.lang_panel.show_result)
        s.distances_ready.connect(self.distances.show_final)
        s.samplers_ready.connect(self.distances.show_samplers)
        s.controller.steps.connect(self._on_steps)
        s.controller.preview.connect(self._on_preview)
        s.controller.state_changed.connect(self._on_state)
        s.controller.finished.connect(lambda done: self.progress.setText(self.progress.text() + f"<br>{done.reason}"))
        self.set_schedule(s.schedule)
        self.set_source(TOY_DATASETS[1])  # moons

    # ------------------------------------------------------------------ layout
    def _build_controls(self) -> None:
        s = self.session
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
        self.clear_button.clicked.connect(s.clear_drawing)
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
        self.stop_button.clicked.connect(s.controller.stop)
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
        self.sample_button.clicked.connect(s.sample_trajectories)
        form.addRow(self.sample_button)
        form.addRow(QLabel("<b>Annealed Langevin</b>"))
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
        form.addRow(self.langevin_button)
        self.distances = DistancesPanel()
        self.distances.final_button.clicked.connect(self.measure_final)
        self.distances.compare_button.clicked.connect(self.compare_samplers)
        form.addRow(self.distances)

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
        self.forward_panel = ForwardPanel()
        self.forward_panel.drawn.connect(self.session.add_drawn)
        self.traj_panel, self.score_panel, self.lang_panel = TrajectoryPanel(), ScorePanel(), LangevinPanel()
        grid = QGridLayout()
        for panel, row, column in ((self.forward_panel, 0, 0), (self.traj_panel, 0, 1), (self.score_panel, 1, 0),
                                   (self.lang_panel, 1, 1)):
            grid.addWidget(panel, row, column)
        for i in (0, 1):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self.right.addLayout(grid, 1)
        self.job_buttons = {"trajectories": self.sample_button, "langevin": self.langevin_button,
                            "distances": self.distances.final_button, "samplers": self.distances.compare_button}
        self.job_labels = {"trajectories": self.traj_panel.label, "langevin": self.lang_panel.text,
                           "distances": self.distances.readout, "samplers": self.distances.readout}

    # ------------------------------------------------------------------ data, timestep and schedule
    def set_source(self, name: str) -> None:
        drawing = name == DRAW
        self.forward_panel.set_drawing(drawing)
        self.draw_row.setVisible(drawing)
        self.session.set_source(name)

    def _data_changed(self) -> None:
        s = self.session
        self.drawn_label.setText(f"{len(s.drawn):,} points drawn")
        data = s.forward_x0.numpy()
        for item in (self.traj_panel.data, self.score_panel.points):
            item.setData(pos=data)
        self._refresh_forward()

    def set_schedule(self, schedule: NoiseSchedule) -> None:
        t = self.timestep.set_maximum(schedule.timesteps - 1)
        self.session.schedule = schedule
        self._timestep_moved(t)

    @property
    def t(self) -> int:
        return self.timestep.value()

    def set_timestep(self, t: int) -> None:
        self.timestep.setValue(t)

    def _timestep_moved(self, t: int) -> None:
        self.alpha_label.setText(f"ᾱ<sub>t</sub> = {float(self.session.schedule.alphas_cumprod[t]):.4f}")
        self._refresh_forward()
        self.session.set_timestep(t)

    def _refresh_forward(self) -> None:
        s = self.session
        if s.forward_x0 is not None:
            self.forward_panel.show_points(s.forward_x0.numpy(), s.forward_points_at(self.t).numpy(), self.t)

    # ------------------------------------------------------------------ training and jobs
    def start_training(self) -> None:
        if self.session.start_training(self.steps.value()):
            self.progress.setText("starting…")

    def _langevin_settings(self) -> tuple[float, int, int]:
        return self.step_size.value(), self.steps_per_level.value(), self.levels.value()

    def run_langevin(self) -> None:
        if self.session.model is not None:
            self.lang_panel.text.setText("running…")
        self.session.run_langevin(*self._langevin_settings())

    def measure_final(self) -> None:
        if self.session.model is not None:
            self.distances.readout.setText(f"sampling {lab2d_session.FINAL_N:,} points with DDPM and Langevin…")
        self.session.measure_final(*self._langevin_settings())

    def compare_samplers(self) -> None:
        if self.session.model is not None:
            self.distances.readout.setText(f"running every sampler on {lab2d_session.FINAL_N:,} points…")
        self.session.compare_samplers()

    def _clear_results(self) -> None:
        self.traj_panel.clear()
        self.lang_panel.clear()
        for label in (self.distance_label, self.distances.readout):
            label.setText("")

    def _busy(self, job: str, running: bool) -> None:
        if job in self.job_buttons:
            self.job_buttons[job].setEnabled(not running)

    def _failed(self, job: str, err: str) -> None:
        if job == "score":
            self.score_panel.show_error(self.t, err)
        elif job == "training":
            self.progress.setText(f"<span style='color:#ff8080'>{err}</span>")
        else:
            self.job_labels[job].setText(failed_text(err))

    def _on_steps(self, events: list) -> None:
        ev = events[-1]
        self.progress.setText(f"step {ev.step:,} / {ev.total_steps:,}<br>loss {ev.loss:.4f}")

    def _on_preview(self, ev) -> None:
        if ev.distance is None:
            return
        n = len(ev.points) if ev.points is not None else 0
        self.distance_label.setText(f"step {ev.step:,}: SW distance to data {ev.distance:.4f}<br>"
                                    f"floor {self.session.floor:.4f} ({n:,} points, DDPM {ev.sample_steps} steps)")

    def _on_state(self, state: str) -> None:
        running = state != "idle"
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.source.setEnabled(not running)

    def shutdown(self, ms: int = 60_000) -> None:
        """Stop training and the jobs, and wait for them (closing the window). Nothing new starts after."""
        self.traj_panel.player.stop()
        self.lang_panel.player.stop()
        self.session.shutdown(ms)
