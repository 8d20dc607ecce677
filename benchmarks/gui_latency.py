"""Is the app responsive while the CPU trains? Three measurements, printed with their targets.

1. Event-loop stall: a 5 ms QTimer on the GUI thread records how late each tick fires while the
   default model trains on the built-in digits (in the app's training process, previews on); the 99th
   percentile of the lateness is the stall. With it, the seconds from pressing Train to the first loss
   point and from Stop to the run's end.
2. Training throughput with the app open, as a fraction of the same training process headless (started
   the same way, its events read by a plain loop), both by the child's own clock over the same steps, so
   both hold the same previews (a window of fixed seconds held a preview's seconds in one run and not in
   the other, as the runs' speeds fell: ±10% between rounds).
3. A forward-view slider move on a 64-image grid: the time to compute x_t and repaint the grid.
4. Opening a run of the ``ddpm-cifar10`` preset (35.7M parameters; its checkpoint, written by the
   Trainer after one step, holds the weights, the EMA weights and AdamW's two moments): the
   event-loop stall while the app reads it, builds both models and shows the run.
5. Exporting a 100-frame GIF of the reverse process (36 RGB 32×32 images, x_t beside x̂_0): the stall
   while it is written.
6. ``algorithm``: the Training tab's Algorithm 1 panel, shown (highlighting as it runs) against hidden: the GUI
   thread's CPU time per second under step batches as the controller sends them, then training throughput
   through the app in alternating runs (target: within 1%).

For each torch thread count given (default 1 and 2) it repeats 1 and 2, so the thread count the
app uses can be picked from what is measured.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py --cases training,slider --threads 2 --steps 300
    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py --cases open-run,gif
    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py --cases algorithm --seconds 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A settings file of the benchmark's own, fresh each process: the app's defaults, and a person's settings never
# read or overwritten (a run here once left the user's app training 1,000,000 steps by default).
os.environ.setdefault("DIFFVIEW_SETTINGS", os.path.join(tempfile.mkdtemp(prefix="diffview-bench-"), "settings.ini"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app_runs import FIRST_STEP, StallProbe, gui_run, headless_rate, training_config  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.train.config import TrainConfig  # noqa: E402
from diffview.core.train.trainer import StepEvent, Trainer  # noqa: E402
from diffview.gui.main_window import MainWindow  # noqa: E402
from diffview.gui.views import sampling as sampling_view  # noqa: E402
from diffview.gui.widgets.algorithm import INTERVAL_MS  # noqa: E402


def run_until(app: QApplication, done, timeout_s: float = 600) -> float:
    """Run a real event loop (the GUI thread sleeps between events) until ``done()``; seconds taken."""
    t0 = time.perf_counter()
    loop = QEventLoop()
    check = QTimer()
    check.timeout.connect(lambda: loop.quit() if done() or time.perf_counter() - t0 > timeout_s else None)
    check.start(10)
    loop.exec()
    check.stop()
    return time.perf_counter() - t0


def cifar10_run(root: Path) -> Path:
    """A run folder of the ``ddpm-cifar10`` preset after one training step, written by the Trainer itself."""
    run = root / "ddpm-cifar10"
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(model="ddpm-cifar10", dataset="random", image_size=32, channels="3", steps=1, batch_size=2,
                      preview_n=1, preview_steps=1, checkpoint_every=1, threads=2)
    for _ in Trainer(cfg, run, dataset=ImageDataset(images)).run():
        pass
    return run


def open_run_stall(app: QApplication, run: Path) -> str:
    window = MainWindow(runs_root=run.parent)
    window.show()
    run_until(app, lambda: window.dataset is not None and not window._tasks)
    ckpt = next((run / "checkpoints").glob("step_*.pt"))
    with StallProbe() as probe:
        window.open_run_folder(str(run))
        seconds = run_until(app, lambda: not window.opener.busy and not window._tasks)
    params = sum(p.numel() for p in window.loaded_run.handle.model.parameters())
    size = ckpt.stat().st_size / 2**20
    line = (f"open a ddpm-cifar10 run ({params / 1e6:.1f}M parameters, checkpoint {size:.0f} MiB): "
            f"{seconds:.2f} s; {probe.summary()}")
    window.close()
    return line


def gif_export_stall(app: QApplication, out: Path, frames: int = 100) -> str:
    window = MainWindow(runs_root=out)
    window.show()
    run_until(app, lambda: window.dataset is not None and not window._tasks)
    sv = window.sampling_view
    g = torch.Generator().manual_seed(0)
    sv.trajectory = [(i, 999 - 10 * i, torch.randint(0, 256, (36, 3, 32, 32), dtype=torch.uint8, generator=g).numpy(),
                      torch.randint(0, 256, (36, 3, 32, 32), dtype=torch.uint8, generator=g).numpy(), 0.0)
                     for i in range(frames)]
    sv.settings = {"seed": 0, "sampler": "ddim", "steps": frames - 1, "eta": 0.0, "schedule": "cosine",
                   "timesteps": 1000, "model": "random frames"}
    path = out / "reverse.gif"
    with StallProbe() as probe:
        sv.export(sampling_view._write_gif, str(path))
        seconds = run_until(app, lambda: not sv.exporting)
    line = (f"export a {frames}-frame GIF ({path.stat().st_size / 2**20:.1f} MiB): {seconds:.2f} s; "
            f"{probe.summary()}")
    window.close()
    return line


def app_run_in_own_process(threads: int, steps: int, probe: bool) -> tuple[float, list[float], dict]:
    """``gui_run`` in a fresh process, as a person runs the app: one window in its process. (In-process, each
    later window's objects stayed collectable beside an earlier window's garbage, and the full collections
    they cost the GUI thread, 50-130 ms, were the benchmark's, not the app's.)"""
    out = subprocess.run([sys.executable, __file__, "--app-run", "--threads", str(threads), "--steps", str(steps)]
                         + ([] if probe else ["--no-probe"]), capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("APP-RUN "))
    result = json.loads(line[len("APP-RUN "):])
    return result["rate"], result["lateness"], result["timings"]


def lab2d_headless_rate(session, steps: int) -> float:
    """Steps/s of the 2D tab's own training (its config, its points) in the same child process, its events
    read by a plain loop: by the child's clock from step 5 for ``steps`` steps."""
    session.start_training(FIRST_STEP + steps)  # builds the tab's config and points as Train does
    cfg, points = session.trainer.config, session.trainer.dataset
    session.controller.stop()
    while session.controller.running:
        QApplication.processEvents()
    return headless_rate(cfg, steps=steps, dataset=points) / cfg.batch_size


def lab2d_run(app: QApplication, steps: int, rounds: int) -> str:
    """The 2D tab trains its MLP (one torch thread, as the tab chooses): its steps/s with the tab open and the
    probe running, against the same training headless, alternating; and the event-loop stall meanwhile."""
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    while window.dataset is None:
        app.processEvents()
    window.tabs.setCurrentWidget(window.lab2d_view)
    session = window.lab2d_view.session
    ratios, late = [], []
    for r in range(rounds):
        runs = {}
        for which in (("headless", "app") if r % 2 == 0 else ("app", "headless")):
            if which == "headless":
                runs[which] = lab2d_headless_rate(session, steps)
                continue
            at: dict[int, float] = {}
            session.controller.steps.connect(
                lambda evs: at.update({ev.step: ev.elapsed for ev in evs if isinstance(ev, StepEvent)}))
            assert session.start_training(FIRST_STEP + steps)  # the probe starts after, as in gui_run
            with StallProbe() as probe:
                while session.controller.running:
                    app.processEvents(QEventLoop.WaitForMoreEvents, 50)
            late += probe.lateness[50:]
            session.controller.steps.disconnect()
            runs[which] = steps / (at[FIRST_STEP + steps] - at[FIRST_STEP])
        ratios.append(runs["app"] / runs["headless"])
        print(f"  2D round {r + 1}: headless {runs['headless']:.1f} steps/s, in the app {runs['app']:.1f} steps/s "
              f"({100 * ratios[-1]:.1f}%)", flush=True)
    window.close()
    return (f"2D tab, {rounds} rounds of {steps} steps: {100 * statistics.mean(ratios):.1f}% of "
            f"headless (rounds {', '.join(f'{100 * x:.1f}' for x in ratios)}); event-loop stall p99 "
            f"{float(np.percentile(late, 99)):.1f} ms, max {max(late):.1f} ms over {len(late)} ticks")


def algorithm_panel_cost(app: QApplication, cfg: TrainConfig, seconds: float, rounds: int) -> str:
    """Images/s of training through the app with Algorithm 1's panel shown and hidden, alternating (hidden
    first) so a drifting machine load falls on both alike; the lines each shown run highlighted, as a check."""
    rates: dict[bool, list[float]] = {True: [], False: []}
    highlighted: list[int] = []
    for _ in range(rounds):
        for shown in (False, True):
            rate, _ = gui_run(app, cfg, seconds, probe=False,
                              prepare=lambda w, s=shown: w.training_view.algorithm.toggle.setChecked(s),
                              before_close=lambda w, s=shown: highlighted.append(len(w.training_view.algorithm.shown))
                              if s else None)
            rates[shown].append(rate)
    on, off = statistics.mean(rates[True]), statistics.mean(rates[False])
    spread = max(statistics.pstdev(rates[True]) / on, statistics.pstdev(rates[False]) / off)
    return (f"Algorithm 1 panel, model {cfg.model}, torch threads {cfg.threads}, {rounds} × {seconds:.0f} s each: "
            f"shown {', '.join(f'{r:.1f}' for r in rates[True])} img/s, hidden "
            f"{', '.join(f'{r:.1f}' for r in rates[False])} img/s; shown/hidden {100 * on / off:.1f}% "
            f"(target >= 99%; run-to-run spread ±{100 * spread:.1f}%); "
            f"lines highlighted per shown run: {highlighted}")


def algorithm_panel_gui_cpu(app: QApplication, seconds: float) -> str:
    """The GUI thread's CPU time per second with the Training tab open and step batches arriving as the
    controller sends them (10 a second, 64 timesteps each), the Algorithm 1 panel shown against hidden: what
    the panel itself costs, free of the training's noise on a shared machine."""
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    run_until(app, lambda: window.dataset is not None and not window._tasks)
    window.tabs.setCurrentWidget(window.training_view)
    rng = np.random.default_rng(0)
    step = [0]

    def batch():
        step[0] += 10
        events = [StepEvent(step[0] - 9 + i, 0.5, rng.random(64, dtype=np.float32), rng.integers(0, 1000, 64),
                            1e-3, 500.0, 1.0, 1.0, 10**6) for i in range(10)]
        window.controller.steps.emit(events)

    feeder = QTimer()
    feeder.timeout.connect(batch)
    feeder.start(100)
    cost, highlighted = {}, {}
    for shown in (False, True, False, True):
        window.training_view.algorithm.toggle.setChecked(shown)
        before, cpu = len(window.training_view.algorithm.shown), time.thread_time()
        run_until(app, lambda: False, timeout_s=seconds)
        cost.setdefault(shown, []).append((time.thread_time() - cpu) / seconds * 1000)
        highlighted[shown] = len(window.training_view.algorithm.shown) - before
    feeder.stop()
    # each highlight directly: move the bar, set the note, repaint the panel (all a highlight makes Qt do)
    panel, n = window.training_view.algorithm, 500
    cpu = time.thread_time()
    for i in range(n):
        panel.pending.append((i % 6 + 1, f"step {i:,}: a batch of 64 training images"))
        panel._next()
        panel.repaint()
    per = (time.thread_time() - cpu) / n * 1000
    window.close()
    on, off = statistics.mean(cost[True]), statistics.mean(cost[False])
    return (f"GUI-thread CPU with step batches at 10/s: panel shown {on:.1f} ms/s, hidden {off:.1f} ms/s "
            f"(runs {', '.join(f'{c:.1f}' for c in cost[True])} / {', '.join(f'{c:.1f}' for c in cost[False])}); "
            f"the panel costs {on - off:.1f} ms of CPU per second = {(on - off) / 10:.2f}% of one core; lines "
            f"highlighted in the last shown run: {highlighted[True]}. One highlight with its repaint: {per:.2f} ms, "
            f"× {1000 / INTERVAL_MS:.1f} a second = {per * 1000 / INTERVAL_MS / 10:.3f}% of one core")


def slider_latency(app: QApplication) -> list[float]:
    window = MainWindow(runs_root="/tmp/diffview-gui-latency")
    window.show()
    while window.dataset is None:
        app.processEvents()
    fv = window.forward_view
    window.tabs.setCurrentWidget(fv)
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
    ap.add_argument("--seconds", type=float, default=40, help="algorithm: the seconds of each run")
    ap.add_argument("--steps", type=int, default=300,
                    help="training: the steps timed in each run, from step 5, the same in both (previews every 250 "
                         "steps, as by default: one inside every run)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-probe", action="store_true", help="throughput only, without the 5 ms timer probe")
    ap.add_argument("--cases", default="slider,training,open-run,gif",
                    help="which to measure, of slider, training, open-run, gif, algorithm, lab2d")
    ap.add_argument("--rounds", type=int, default=3,
                    help="training: alternating headless/app pairs; algorithm: shown/hidden pairs")
    ap.add_argument("--algorithm-model", default="small",
                    help="algorithm: the model preset trained (a smaller one makes more steps to count)")
    ap.add_argument("--lab2d-steps", type=int, default=600, help="lab2d: the steps timed in each run")
    ap.add_argument("--app-run", action="store_true", help=argparse.SUPPRESS)  # one app run, for app_run_in_own_process
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    app = QApplication.instance() or QApplication([])
    if args.app_run:
        cfg = training_config(int(args.threads))
        timings: dict = {}
        rate, lateness = gui_run(app, cfg, steps=args.steps, probe=not args.no_probe, timings=timings)
        print("APP-RUN " + json.dumps({"rate": rate, "lateness": lateness, "timings": timings}), flush=True)
        return
    if "open-run" in cases or "gif" in cases:
        with tempfile.TemporaryDirectory() as tmp:
            if "open-run" in cases:
                print(open_run_stall(app, cifar10_run(Path(tmp))), flush=True)
            if "gif" in cases:
                print(gif_export_stall(app, Path(tmp)), flush=True)
    if "slider" in cases:
        times = slider_latency(app)
        print(f"slider move, 64-image grid: median {statistics.median(times):.1f} ms, max {max(times[1:]):.1f} ms "
              f"after the first (the first, cold: {times[0]:.1f} ms) (target < 8 ms)")
    if "lab2d" in cases:
        print(lab2d_run(app, args.lab2d_steps, args.rounds), flush=True)
    if "algorithm" in cases:
        threads = int(args.threads.split(",")[0])
        cfg = TrainConfig(model=args.algorithm_model, threads=threads, steps=10**6, preview_every=10**6,
                          checkpoint_every=10**6)
        print(algorithm_panel_gui_cpu(app, args.seconds), flush=True)
        print(algorithm_panel_cost(app, cfg, args.seconds, args.rounds), flush=True)
    if "training" not in cases:
        return
    for threads in [int(x) for x in args.threads.split(",")]:
        cfg = training_config(threads)
        ratios, late, timings = [], [], {}
        for r in range(args.rounds):  # headless and app alternate, each first in turn, so drift falls on both
            runs = {}
            for which in (("headless", "app") if r % 2 == 0 else ("app", "headless")):
                if which == "headless":
                    runs[which] = headless_rate(cfg, steps=args.steps)
                else:
                    runs[which], lateness, timings = app_run_in_own_process(threads, args.steps, not args.no_probe)
                    late += lateness
                    round_max = max(lateness)
            ratios.append(runs["app"] / runs["headless"])
            print(f"  round {r + 1}: headless {runs['headless']:.0f} img/s, with the app {runs['app']:.0f} img/s "
                  f"({100 * ratios[-1]:.1f}%); the app's process used {1000 * timings['app cpu']:.0f} ms of CPU "
                  f"a second, stall max {round_max:.1f} ms", flush=True)
        p99 = float(np.percentile(late, 99)) if late else float("nan")
        late = late or [float("nan")]
        print(f"torch threads {threads}, {args.rounds} rounds of {args.steps} steps: with the app "
              f"{100 * statistics.mean(ratios):.1f}% of headless (rounds {', '.join(f'{100 * x:.1f}' for x in ratios)};"
              f" target >= 97%); event-loop stall p99 {p99:.1f} ms, max {max(late):.1f} ms, ticks over 20 ms "
              f"{sum(x > 20 for x in late)} of {len(late)} (targets p99 < 20 ms, max < 50 ms); Train to the first "
              f"loss point {timings['first loss point']:.2f} s, Stop to the end {timings['stop to end']:.2f} s "
              "(the last app run)", flush=True)

if __name__ == "__main__":
    main()
