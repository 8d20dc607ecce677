"""Training, live: the loss (raw and smoothed), the loss by timestep, the learning rate, throughput,
and the preview grids from a fixed seed with a slider to scrub back through them.

Plot items are made once and fed with ``setData``. While a run trains, the plots and the line of numbers
under them are redrawn (and painted, one plot per turn of the event loop) at most ``REDRAW_MS`` apart and
within ``DRAW_BUDGET`` of the GUI thread's time: a redraw that took 30 ms waits 3 s for the next. On a
machine whose every core trains, what the GUI thread draws is taken from the training, so the budget is
how little it may take (``benchmarks/gui_latency.py`` measures it).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QSlider, QVBoxLayout, QWidget

from diffview.core.train.loss_bins import T_BINS, TimestepBins
from diffview.core.train.trainer import PreviewEvent, StepEvent
from diffview.gui.widgets.algorithm import AlgorithmPanel, TrainingFollower
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.plot_style import light_grid
from diffview.gui.widgets.text import T_INDEX_NOTE, caption, readout_line

REDRAW_MS = 250
DRAW_BUDGET = 0.01  # the share of the GUI thread's time that live plots may take
SMOOTHING = 0.98
PREVIEW_TITLE = "samples from the EMA model (fixed seed)"


class TimedPlots(pg.GraphicsLayoutWidget):
    """The plots, adding up the GUI thread's time in every one of their paint events: the parts the view paints
    itself and the repaints Qt schedules after them (the axes and labels that moved, about as many again), so
    the draw budget counts all that drawing costs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.painted = 0.0  # seconds

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        start = time.monotonic()
        super().paintEvent(event)
        self.painted += time.monotonic() - start


class TrainingView(QWidget):
    """``session``: an AppSession whose training (live, or an opened run's history) this plots."""

    def __init__(self, session=None, parent=None):
        super().__init__(parent)
        self.plots = TimedPlots()
        self._painted_mark = 0.0  # self.plots.painted when the last live redraw was scheduled
        self.p_loss = self.plots.addPlot(row=0, col=0, colspan=2, title="loss (raw and smoothed)")
        self.p_loss.setLabel("bottom", "step")
        light_grid(self.p_loss)
        self.raw = self.p_loss.plot(pen=pg.mkPen((120, 160, 255, 90)))
        self.raw.setDownsampling(auto=True, method="peak")  # thousands of steps, a few hundred pixels
        self.raw.setClipToView(True)
        self.smooth = self.p_loss.plot(pen=pg.mkPen("#ffb050", width=2))  # antialiased: +10-20 ms a paint
        self.smooth.setDownsampling(auto=True, method="mean")
        self.p_t = self.plots.addPlot(row=1, col=0, title=f"loss by timestep t ({T_BINS} bins)")
        self.p_t.setLabel("bottom", "t")
        light_grid(self.p_t)
        self.bars = pg.BarGraphItem(x=[], height=[], width=1, brush="#5aa0ff")
        self.p_t.addItem(self.bars)
        self.p_lr = self.plots.addPlot(row=1, col=1, title="learning rate")
        self.p_lr.setLabel("bottom", "step")
        self.lr_curve = self.p_lr.plot(pen=pg.mkPen("#50d890", width=2))
        self.lr_curve.setDownsampling(auto=True, method="subsample")

        self.log_y = QCheckBox("log loss axis")
        self.log_y.toggled.connect(lambda on: self.p_loss.setLogMode(y=on))
        self.stats = readout_line()

        self.preview = ImageGrid(PREVIEW_TITLE)
        self.preview_slider = QSlider(Qt.Horizontal)
        self.preview_slider.setEnabled(False)
        self.preview_slider.setToolTip("Scrub through the preview grids to see the samples improve")
        self.preview_slider.valueChanged.connect(self._show_preview)
        self.preview_label = readout_line("No preview yet: the first comes at the preview interval.", monospace=False)

        right = QVBoxLayout()
        right.addWidget(self.preview, 1)
        right.addWidget(self.preview_slider)
        right.addWidget(self.preview_label)
        self.algorithm = AlgorithmPanel("train")  # Algorithm 1 as it runs (widgets/algorithm.py)
        self.algorithm_follower = TrainingFollower(self.algorithm)
        right.addWidget(self.algorithm)
        left = QVBoxLayout()
        left.addWidget(self.plots, 1)
        row = QHBoxLayout()
        row.addWidget(self.log_y)
        row.addWidget(self.algorithm.toggle)
        row.addStretch(1)
        left.addLayout(row)
        left.addWidget(self.stats)
        layout = QGridLayout(self)
        layout.addLayout(left, 0, 0)
        layout.addLayout(right, 0, 1)
        layout.setColumnStretch(0, 3)
        layout.setColumnStretch(1, 2)
        layout.addWidget(caption("L = E<sub>t, x<sub>0</sub>, ε</sub> ‖target − f<sub>θ</sub>(x<sub>t</sub>, t)‖², "
                                 "target ε (DDPM eq. 14), x<sub>0</sub>, or v = √ᾱ<sub>t</sub> ε − √(1−ᾱ<sub>t</sub>) x<sub>0</sub>"
                                 " (Salimans &amp; Ho 2022). Loss by t shows which noise levels the model still finds hard;"
                                 " the Bound tab puts the VLB terms beside it. " + T_INDEX_NOTE), 1, 0, 1, 2)
        self.reset(1000)
        self.session = session
        if session is not None:
            session.history_reset.connect(self.reset)
            session.run_opened.connect(self.show_run)
            session.schedule_changed.connect(self._schedule_changed)
            session.controller.steps.connect(self.add_steps)
            session.controller.preview.connect(self.add_preview)
            session.training_finished.connect(lambda _: self.redraw())
            for signal, slot in ((session.controller.started, self.algorithm_follower.started),
                                 (session.controller.steps, self.algorithm_follower.on_steps),
                                 (session.controller.finished, self.algorithm_follower.finished)):
                signal.connect(slot)

    def reset(self, timesteps: int) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.lrs: list[float] = []
        self.bins = TimestepBins(timesteps)
        self.previews: list[PreviewEvent] = []
        self.last: StepEvent | None = None
        self._next_draw = 0.0
        self.preview_slider.setEnabled(False)
        self.preview_label.setText("No preview yet: the first comes at the preview interval.")
        self.stats.setText("Not training. Press Train (Ctrl+T) to start.")
        self.redraw()

    def add_steps(self, events: list[StepEvent]) -> None:
        for ev in events:
            self.steps.append(ev.step)
            self.losses.append(ev.loss)
            self.smoothed.append(_smooth_one(self.smoothed[-1] if self.smoothed else ev.loss, ev.loss))
            self.lrs.append(ev.lr)
            self.bins.add(ev.timesteps, ev.losses)
            self.last = ev
        now = time.monotonic()
        if now >= self._next_draw:
            self.redraw(paint=True)

    def set_history(self, rows: list[dict], total_steps: int) -> None:
        """A run's logged metric lines at once (opening a run), as ``add_steps`` would plot them one by one."""
        losses = [float(r["loss"]) for r in rows]
        self.steps = [int(r["step"]) for r in rows]
        self.losses = losses
        self.smoothed = smoothed(losses)
        self.lrs = [float(r.get("lr", 0.0)) for r in rows]
        if rows:
            r = rows[-1]
            self.last = StepEvent(r["step"], r["loss"], np.zeros(0, np.float32), np.zeros(0, np.int64),
                                  r.get("lr", 0.0), r.get("images_per_sec", 0.0), r.get("elapsed", 0.0), 0.0,
                                  total_steps)
        self.redraw()

    def show_run(self, opened) -> None:
        """An opened run's logged history and its preview grids (an OpenedRun)."""
        self.set_history(opened.metrics, opened.run.config.steps)
        for ev in opened.previews:
            self.add_preview(ev)

    def _schedule_changed(self, schedule) -> None:
        if not self.session.training:  # a live run's loss by t keeps the T it trains with
            self.bins.timesteps = schedule.timesteps

    def redraw(self, paint: bool = False) -> None:
        """Feed the plots everything so far. ``paint`` (a live run): one plot per turn of the event loop, each
        painted at once and timed, so no turn holds the GUI thread for long and the draw budget can be kept."""
        parts = [(self._feed_loss, self.p_loss), (self._feed_lr, self.p_lr), (self._feed_bars, self.p_t)]
        if paint and self.plots.isVisible():
            self._next_draw = math.inf  # until the last part is painted
            self._paint_parts(parts, 0.0)
            return
        for feed, _ in parts:
            feed()
        self._show_stats()
        self._next_draw = time.monotonic() + REDRAW_MS / 1000

    def _paint_parts(self, parts: list, fed: float) -> None:
        start = time.monotonic()
        feed, plot = parts.pop(0)
        feed()
        fed += time.monotonic() - start
        self.plots.viewport().repaint(self.plots.mapFromScene(plot.sceneBoundingRect()).boundingRect())
        if parts:
            QTimer.singleShot(0, self, lambda: self._paint_parts(parts, fed))
            return
        self._show_stats()
        # every paint since the last redraw was scheduled (its trailing repaints too), with this one's feeding
        painted, self._painted_mark = self.plots.painted - self._painted_mark, self.plots.painted
        self._next_draw = time.monotonic() + max(REDRAW_MS / 1000, (fed + painted) / DRAW_BUDGET)

    def _feed_loss(self) -> None:
        steps = np.asarray(self.steps, dtype=float)
        self.raw.setData(steps, np.asarray(self.losses))
        self.smooth.setData(steps, np.asarray(self.smoothed))

    def _feed_lr(self) -> None:
        self.lr_curve.setData(np.asarray(self.steps, dtype=float), np.asarray(self.lrs))

    def _feed_bars(self) -> None:
        x, means, width = self.loss_by_t()
        self.bars.setOpts(x=x, height=means, width=width * 0.9)

    def _show_stats(self) -> None:
        ev = self.last
        if ev is not None:
            self.stats.setText(
                f"step {ev.step:,} / {ev.total_steps:,}   loss {ev.loss:.4f}   "
                f"lr {ev.lr:.2e}   {ev.images_per_sec:,.0f} images/s   "
                f"elapsed {_hms(ev.elapsed)}   ETA {_hms(ev.eta)}")

    def loss_by_t(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(bin centres, mean loss per bin, bin width) of the loss by timestep, as plotted."""
        return self.bins.centres(), self.bins.means(), self.bins.width

    def add_preview(self, ev: PreviewEvent) -> None:
        self.previews.append(ev)
        at_end = self.preview_slider.value() == self.preview_slider.maximum()
        self.preview_slider.setEnabled(True)
        self.preview_slider.setRange(0, len(self.previews) - 1)
        if at_end or len(self.previews) == 1:
            self.preview_slider.setValue(len(self.previews) - 1)
            self._show_preview(len(self.previews) - 1)

    def _show_preview(self, index: int) -> None:
        if not self.previews:
            return
        ev = self.previews[index]
        self.preview.set_images(ev.images, nrow=ev.nrow)  # a conditional run's: one row per class
        names = self.session.model_class_names() if self.session is not None else None
        self.preview.set_title(preview_title(ev, names))
        self.preview_label.setText(f"Preview {index + 1} of {len(self.previews)}: step {ev.step:,}, "
                                   f"{ev.sampler.upper()} {ev.sample_steps} steps, {ev.seconds:.1f} s")
        self.preview_label.setCursorPosition(0)  # a narrow column shows the line's start


def preview_title(ev: PreviewEvent, class_names=None) -> str:
    """What the preview grid shows: a conditional run's names its rows' classes and the guidance scale S."""
    if ev.guidance_scale is None:
        return PREVIEW_TITLE
    rows = list(dict.fromkeys(ev.labels.tolist())) if ev.labels is not None else range(len(class_names or ()))
    names = [class_names[i] if class_names and 0 <= i < len(class_names) else str(i) for i in rows]
    shown = ", ".join(names) if len(names) <= 4 else f"{names[0]} … {names[-1]}"
    rows_text = f"one row per class ({shown})" if names else "one row per class"
    return f"{rows_text}, guided at S = {ev.guidance_scale:g}"


def _smooth_one(prev: float, loss: float) -> float:
    """One step of the plotted exponential moving average of the loss."""
    return SMOOTHING * prev + (1 - SMOOTHING) * loss


def smoothed(losses: list[float]) -> list[float]:
    """The plotted moving average of ``losses``, from the first loss."""
    out: list[float] = []
    for loss in losses:
        out.append(_smooth_one(out[-1] if out else loss, loss))
    return out


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
