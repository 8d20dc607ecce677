"""The app's Train button on the built-in digits, with its views and previews on, as a person would press it.

Opens the main window (offscreen), leaves every setting at its default, presses Train and lets the run finish,
then prints the steps, wall time and the run folder; score that folder with

    python benchmarks/quality_per_minute.py --score-run RUN_DIR --samplers heun:25:churn=20

and compare with the headless figure at the same steps (``quality_per_minute.py --minutes 5``).

    QT_QPA_PLATFORM=offscreen python benchmarks/app_quality.py --runs /tmp/app-runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A settings file of the benchmark's own, fresh each process: the app's defaults, and a person's settings never
# read or overwritten (a run here once left the user's app training 1,000,000 steps by default).
os.environ.setdefault("DIFFVIEW_SETTINGS", os.path.join(tempfile.mkdtemp(prefix="diffview-bench-"), "settings.ini"))

from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="benchmarks/out/app-runs", help="where the app writes its run folder")
    ap.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    from diffview.gui.main_window import MainWindow

    w = MainWindow(runs_root=args.runs)
    w.resize(1500, 950)
    w.show()
    deadline = time.monotonic() + 120
    while w.dataset is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    cfg = w.settings.config()
    print(f"Train pressed with the defaults: {cfg.model}, {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr:g}",
          flush=True)
    t0 = time.perf_counter()
    w.settings.train_button.click()
    deadline = time.monotonic() + args.timeout
    while w.controller.running and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    print(f"finished in {wall:.0f} s (previews and every view on); run folder: {w.run_dir}", flush=True)
    w.close()


if __name__ == "__main__":
    main()
