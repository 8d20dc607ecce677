"""The app and its training child, timed: the benchmarks' shared instruments (``gui_latency.py`` uses them).

``StallProbe`` times the GUI thread's event loop; ``headless_rate`` trains the app's own training child with no
app around it; ``gui_run`` trains the same child through a main window, probe running. Throughput is timed by
the child's clock from ``FIRST_STEP``.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from diffview.core.train.config import TrainConfig
from diffview.core.train.process import TrainingProcess
from diffview.core.train.trainer import StepEvent
from diffview.gui.main_window import MainWindow

FIRST_STEP = 5  # throughput is timed from here: the first steps warm up


def training_config(threads: int) -> TrainConfig:
    """The training case's run, headless and in the app alike: the defaults (previews every 250 steps), long
    enough never to end on its own, no checkpoint until Stop."""
    return TrainConfig(threads=threads, steps=10**6, checkpoint_every=10**6)


class StallProbe:
    """How late a 5 ms QTimer on the GUI thread fires, tick by tick (ms), while ``with`` runs."""

    def __init__(self, interval_ms: int = 5):
        self.interval, self.lateness, self.last = interval_ms, [], None
        self.clock, self.timer = QElapsedTimer(), QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        if self.last is not None:
            self.lateness.append(max(0.0, now - self.last - self.interval))
        self.last = now

    def __enter__(self) -> "StallProbe":
        self.clock.start()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._tick()
        self.timer.stop()

    def summary(self) -> str:
        late = self.lateness or [float("nan")]
        return (f"event-loop stall p99 {float(np.percentile(late, 99)):.1f} ms, max {max(late):.1f} ms "
                f"over {len(late)} ticks (target p99 < 50 ms)")


def headless_rate(cfg: TrainConfig, seconds: float | None = None, steps: int | None = None, dataset=None) -> float:
    """Images/s of the app's own training process with no app around it: the same child, started the same
    way, its events read by a plain loop. Timed by the child's clock (``StepEvent.elapsed``) from step 5, for
    ``steps`` steps (the same work as an app run of as many steps, previews included) or for ``seconds``."""
    training = TrainingProcess(cfg, dataset=dataset)
    training.start()
    first = last = None
    while not training.finished:
        for ev in training.read(timeout=0.1):
            if not isinstance(ev, StepEvent) or last is not None:
                continue
            if ev.step == FIRST_STEP:
                first = ev
            elif first is not None and (ev.step == FIRST_STEP + steps if steps is not None
                                        else ev.elapsed - first.elapsed >= seconds):
                last = ev
                training.stop()
    return (last.step - first.step) * cfg.batch_size / (last.elapsed - first.elapsed)


def gui_run(app: QApplication, cfg: TrainConfig, seconds: float | None = None, probe: bool = True,
            prepare=None, before_close=None, timings: dict | None = None,
            steps: int | None = None) -> tuple[float, list[float]]:
    """Train through the app for ``seconds``, or until ``steps`` steps after step 5 (the same work as
    ``headless_rate(cfg, steps=steps)``, previews included, whatever the speed); returns (images/s by the child's
    clock from step 5, tick lateness in ms). ``prepare(window)`` runs before training starts,
    ``before_close(window)`` after it stopped; ``timings`` gets the seconds from pressing Train to the first loss
    point, and from Stop to the end."""
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    while window.dataset is None:
        app.processEvents()
    if prepare is not None:
        prepare(window)
    window.settings.set_config(cfg)
    window.session.train_threads = cfg.threads
    lateness, clock, last = [], QElapsedTimer(), [None]
    clock.start()
    points: list[tuple[float, int]] = []  # (elapsed, step) of each step from FIRST_STEP
    first_point: list[float] = []
    loop = QEventLoop()  # a real event loop, as app.exec() runs it: the GUI thread sleeps between events

    def on_steps(evs) -> None:
        first_point or first_point.append(time.perf_counter())
        points.extend((ev.elapsed, ev.step) for ev in evs if ev.step >= FIRST_STEP
                      and (steps is None or ev.step <= FIRST_STEP + steps))
        if steps is not None and points and points[-1][1] == FIRST_STEP + steps:
            loop.quit()

    window.controller.steps.connect(on_steps)
    pressed = time.perf_counter()
    window.start_training()

    def tick():
        now = clock.nsecsElapsed() / 1e6
        if last[0] is not None:
            lateness.append(max(0.0, now - last[0] - 5.0))
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    if probe:
        timer.start()
    QTimer.singleShot(int((seconds if steps is None else 3600) * 1000), loop.quit)
    cpu, wall = time.process_time(), time.perf_counter()  # every thread of the app's process: drawing, relay, probe
    loop.exec()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    timer.stop()
    stopped = time.perf_counter()
    window.controller.stop()
    while window.controller.running:
        app.processEvents()
    if timings is not None:
        timings["first loss point"] = first_point[0] - pressed
        timings["stop to end"] = time.perf_counter() - stopped
        timings["app cpu"] = cpu / wall
    if before_close is not None:
        before_close(window)
    window.close()
    app.processEvents()
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (s1 - s0) * cfg.batch_size / (t1 - t0), lateness[50:]
