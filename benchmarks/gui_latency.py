"""Is the app responsive while the CPU trains? Three measurements, printed with their targets.

1. Event-loop stall: a 5 ms QTimer on the GUI thread records how late each tick fires while the
   default model trains on the built-in digits; the 99th percentile of the lateness is the stall.
2. Training throughput with the app open, as a fraction of the same training run headless.
3. A forward-view slider move on a 64-image grid: the time to compute x_t and repaint the grid.

For each torch thread count given (default 1 and 2) it repeats 1 and 2, so the thread count the
app uses can be picked from what is measured.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py --seconds 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from diffview.core.config import TrainConfig  # noqa: E402
from diffview.core.data import load_dataset  # noqa: E402
from diffview.core.training import StepEvent, Trainer  # noqa: E402
from diffview.gui.main_window import MainWindow  # noqa: E402


def headless_rate(cfg: TrainConfig, data, seconds: float) -> float:
    """Images/s of plain training (no GUI), after a short warm-up, on a worker thread as in the app
    (so the main thread never starts an OpenMP team of its own, which would slow later runs)."""
    result = []
    worker = threading.Thread(target=lambda: result.append(_headless(cfg, data, seconds)))
    worker.start()
    worker.join()
    return result[0]


def _headless(cfg: TrainConfig, data, seconds: float) -> float:
    trainer = Trainer(cfg, dataset=data)
    t0 = n0 = None
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            if ev.step == 5:
                t0, n0 = time.perf_counter(), ev.step
            elif t0 is not None and time.perf_counter() - t0 >= seconds:
                rate = (ev.step - n0) * cfg.batch_size / (time.perf_counter() - t0)
                trainer.stop()
    return rate


def gui_run(app: QApplication, cfg: TrainConfig, seconds: float, probe: bool = True) -> tuple[float, list[float]]:
    """Train through the app for ``seconds``; returns (images/s, tick lateness in ms)."""
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    while window.dataset is None:
        app.processEvents()
    window.settings.set_config(cfg)
    window.start_training()
    window.trainer.config.threads = cfg.threads
    lateness, clock, last = [], QElapsedTimer(), [None]
    clock.start()
    steps: list[tuple[float, int]] = []
    window.controller.steps.connect(lambda evs: steps.append((time.perf_counter(), evs[-1].step)))

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
    loop = QEventLoop()  # a real event loop, as app.exec() runs it: the GUI thread sleeps between events
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()
    window.controller.stop()
    while window.controller.running:
        app.processEvents()
    window.close()
    app.processEvents()
    steps = [s for s in steps if s[1] >= 5]
    rate = (steps[-1][1] - steps[0][1]) * cfg.batch_size / (steps[-1][0] - steps[0][0])
    return rate, lateness[50:]


def slider_latency(app: QApplication) -> list[float]:
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    while window.dataset is None:
        app.processEvents()
    fv = window.forward_view
    times = []
    for t in range(0, 1000, 17):
        t0 = time.perf_counter()
        fv.slider.setValue(t)
        fv.grid.repaint()
        times.append((time.perf_counter() - t0) * 1000)
    window.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-probe", action="store_true", help="throughput only, without the 5 ms timer probe")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    data, _ = load_dataset("digits")
    times = slider_latency(app)
    print(f"slider move, 64-image grid: median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms (target: drawn within 16 ms)")
    for threads in [int(x) for x in args.threads.split(",")]:
        cfg = TrainConfig(threads=threads, steps=10**6, preview_every=10**6, checkpoint_every=10**6)
        base = headless_rate(cfg, data, args.seconds)
        rate, late = gui_run(app, cfg, args.seconds, probe=not args.no_probe)
        p99 = float(np.percentile(late, 99)) if late else float("nan")
        late = late or [float("nan")]
        print(f"torch threads {threads}: headless {base:.0f} img/s, with the app {rate:.0f} img/s "
              f"({100 * rate / base:.0f}%, target >= 85%); event-loop stall p99 {p99:.1f} ms, "
              f"max {max(late):.1f} ms (target p99 < 50 ms)", flush=True)


if __name__ == "__main__":
    main()
