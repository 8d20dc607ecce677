"""2D diffusion: a small MLP trains on points in seconds, and every piece of the maths can be seen.

Left, the data (five built-ins, or points drawn with the mouse), training (class-conditional where the
data has classes) and the guidance controls. Right, under one timestep slider: the forward process on
the points coloured by class, reverse DDPM trajectories, guided samples of each class beside
unconditional ones, the learned score field (beside the true density's level sets for gaussians8) beside
the guided score of the chosen class, and annealed Langevin dynamics beside ancestral DDPM from the
same x_T, with the sliced Wasserstein distance of each to the data.
The tab's state, its trainer and its jobs are a :class:`~.session.Lab2DSession`; the panels only draw.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffview.core.data.toy2d import TOY_DATASETS
from diffview.core.schedule import NoiseSchedule
from diffview.gui.views.lab2d import session as lab2d_session
from diffview.gui.views.lab2d.panels import (
    ClassSamplesPanel,
    DistancesPanel,
    ForwardPanel,
    LangevinPanel,
    ScorePanel,
    TrajectoryPanel,
    failed_text,
)
from diffview.gui.views.lab2d.session import CLASS_N, DRAW, TRAJ_N, TRAJ_STEPS, Lab2DSession
from diffview.gui.widgets.players import TimestepControl
from diffview.gui.widgets.text import LiveReadout

CONDITIONAL_TIP = ("Learn p(x | class) and, through the null class ∅ (in place of the label with p = 0.1), p(x) in "
                   "one MLP; needs data with classes")


class Lab2DView(QWidget):
    message = Signal(str, str)  # (level, text), for the main window's log

    def __init__(self, runs_root: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.session = s = Lab2DSession(runs_root, self)
        self._running: set[str] = set()  # the jobs under way
        self._forward_due = False  # x_t changed while the tab was hidden
        self._build_controls()
        self._build_plots()
        layout = QHBoxLayout(self)
        # The controls scroll when the window is short, so they never set its minimum height.
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFixedWidth(self.controls.width() + scroll.verticalScrollBar().sizeHint().width())
        layout.addWidget(scroll)
        layout.addLayout(self.right, 1)

        s.message.connect(self.message)
        s.data_changed.connect(self._data_changed)
        s.results_cleared.connect(self._clear_results)
        s.busy.connect(self._busy)
        s.failed.connect(self._failed)
        s.score_ready.connect(self._show_score)
        s.model_changed.connect(self._model_changed)
        s.classes_ready.connect(lambda out: self.class_panel.show_result(out, s.model_classes))
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
        self.conditional = QCheckBox("Conditional (classifier-free guidance)")
        self.conditional.toggled.connect(lambda on: setattr(s, "conditional", on))
        form.addRow(self.conditional)
        self.train_button, self.stop_button = QPushButton("Train"), QPushButton("Stop")
        self.train_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(s.controller.stop)
        self.stop_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.train_button)
        row.addWidget(self.stop_button)
        form.addRow(row)
        self.progress, self.distance_label = LiveReadout(3), LiveReadout(4)
        self.progress.setText("not trained yet")
        form.addRow(self.progress)
        form.addRow(self.distance_label)
        self.sample_button = QPushButton("Sample trajectories")
        self.sample_button.setToolTip(f"DDPM ({TRAJ_STEPS} steps, respaced) from {TRAJ_N} points of N(0, I)")
        self.sample_button.clicked.connect(s.sample_trajectories)
        form.addRow(self.sample_button)
        form.addRow(QLabel("<b>Guidance</b>"))
        self.class_box = QComboBox()
        self.class_box.setToolTip("The class of the guided score field")
        self.scale = QDoubleSpinBox()
        self.scale.setRange(0.0, 10.0)
        self.scale.setSingleStep(0.5)
        self.scale.setValue(s.guidance_scale)
        self.scale.setToolTip("S: ε̃ = ε_u + S(ε_c − ε_u); 0 is unconditional, 1 conditional, above 1 guided (also "
                              "the S of a conditional run's previews)")
        self.class_box.setEnabled(False)
        self.class_box.currentIndexChanged.connect(self._guidance_changed)
        self.scale.valueChanged.connect(self._guidance_changed)
        form.addRow("Class", self.class_box)
        form.addRow("Scale S", self.scale)
        self.classes_button = QPushButton("Sample each class")
        self.classes_button.setToolTip(f"{CLASS_N} DDPM samples of each class guided at S, and as many "
                                       "unconditional ones from the same x_T")
        self.classes_button.setEnabled(False)
        self.classes_button.clicked.connect(s.sample_classes)
        form.addRow(self.classes_button)
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
        self.class_panel = ClassSamplesPanel()
        grid = QGridLayout()  # four plots a row: forward, trajectories, the class samples' pair; two pairs below
        for panel, row, column, span in ((self.forward_panel, 0, 0, 1), (self.traj_panel, 0, 1, 1),
                                         (self.class_panel, 0, 2, 2), (self.score_panel, 1, 0, 2),
                                         (self.lang_panel, 1, 2, 2)):
            grid.addWidget(panel, row, column, 1, span)
        for i in range(4):
            grid.setColumnStretch(i, 1)
        for i in (0, 1):
            grid.setRowStretch(i, 1)
        self.right.addLayout(grid, 1)
        self.job_buttons = {"trajectories": self.sample_button, "langevin": self.langevin_button,
                            "distances": self.distances.final_button, "samplers": self.distances.compare_button,
                            "classes": self.classes_button}
        self.job_labels = {"trajectories": self.traj_panel.label, "langevin": self.lang_panel.text,
                           "distances": self.distances.readout, "samplers": self.distances.readout,
                           "classes": self.class_panel.text}

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
        self.class_panel.set_data(data)
        self.forward_panel.set_classes(s.forward_labels, s.data_class_names)
        self.conditional.setEnabled(bool(s.data_class_names))
        self.conditional.setToolTip(CONDITIONAL_TIP + ("" if s.data_class_names else " (these points have none)"))
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
        """Redraw x_t; while the tab is hidden only marked as due (the Forward tab's slider moves this one's t,
        and 2,000 points redrawn per move cost that slider 20 ms), and drawn when the tab is shown."""
        s = self.session
        self._forward_due = not self.isVisible()
        if s.forward_x0 is not None and not self._forward_due:
            self.forward_panel.show_points(s.forward_x0.numpy(), s.forward_points_at(self.t).numpy(), self.t)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._forward_due:
            self._refresh_forward()

    # ------------------------------------------------------------------ training and jobs
    def start_training(self) -> None:
        if self.session.start_training(self.steps.value()):
            self.progress.setText("starting…")

    def _show_score(self, out: dict) -> None:
        s = self.session
        self.score_panel.show_field(out, s.forward_points_at(out["t"]).numpy(), s.forward_labels, s.model_classes)

    def _model_changed(self) -> None:
        """A new snapshot: the class picker lists its classes (kept as it is while they stay the same)."""
        names = list(self.session.model_classes)
        if names != [self.class_box.itemText(i) for i in range(self.class_box.count())]:
            self.class_box.blockSignals(True)
            self.class_box.clear()
            self.class_box.addItems(names)
            self.class_box.setCurrentIndex(min(self.session.label, len(names) - 1))
            self.class_box.blockSignals(False)
        self.class_box.setEnabled(bool(names))
        self.classes_button.setEnabled(bool(names) and "classes" not in self._running)

    def _guidance_changed(self, *_) -> None:
        self.session.set_guidance(max(self.class_box.currentIndex(), 0), self.scale.value())

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
        self.class_panel.clear()
        for label in (self.distance_label, self.distances.readout):
            label.setText("")

    def _busy(self, job: str, running: bool) -> None:
        (self._running.add if running else self._running.discard)(job)
        if job == "classes" and running:
            self.class_panel.text.setText(f"sampling {lab2d_session.CLASS_N:,} points of each class…")
        if job in self.job_buttons:
            self.job_buttons[job].setEnabled(not running and (job != "classes" or bool(self.session.model_classes)))

    def _failed(self, job: str, err: str) -> None:
        if job == "score":
            self.score_panel.show_error(self.t, err)
        elif job == "training":
            self.progress.setText(f"<span style='color:#ff8080'>{err}</span>")
        elif job in self.job_labels:  # a failed snapshot is said in the log alone
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
        self.conditional.setEnabled(not running and bool(self.session.data_class_names))

    def shutdown(self, ms: int = 60_000) -> None:
        """Stop training and the jobs, and wait for them (closing the window). Nothing new starts after."""
        self.traj_panel.player.stop()
        self.lang_panel.player.stop()
        self.session.shutdown(ms)
