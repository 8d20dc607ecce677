"""Nothing slow on the GUI thread: each slow step is made slower here (a sleep), and a 5 ms QTimer probe
on the GUI thread must keep firing while it runs; then its result must arrive."""

import gc
import os
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from helpers import square_dataset, tiny_config, write_image_folder  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402

from diffview.core.data import images as core_data  # noqa: E402
from diffview.core.io.checkpoint import RunDir, load_checkpoint  # noqa: E402
from diffview.core.runs import open as core_runs  # noqa: E402
from diffview.core.train.process import TrainingProcess  # noqa: E402
from diffview.core.train.trainer import Trainer  # noqa: E402
from diffview.gui import run_loader  # noqa: E402
from diffview.gui.views import sampling_job
from diffview.gui.workers.threads import running_threads  # noqa: E402

SLOW_S = 1.5  # how long each slow step is made to take
MAX_GAP_MS = 300  # the longest the probe may go without a tick meanwhile (on the GUI thread it would be ≥ 1500)


class Probe:
    """The longest gap between ticks of a 5 ms timer on the GUI thread, in ms."""

    def __init__(self):
        self.clock, self.last, self.max_gap = QElapsedTimer(), None, 0.0
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = self.clock.nsecsElapsed() / 1e6
        if self.last is not None:
            self.max_gap = max(self.max_gap, now - self.last)
        self.last = now

    def __enter__(self):
        # What earlier tests left (dead windows, their Qt objects) is collected now, not inside the probe: the app
        # collects on the GUI thread by design (gui/workers/threads.py), and freeing another test's window there
        # measured 200-480 ms, which is not the work this probe times.
        gc.collect()
        self.clock.start()
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self._tick()
        self.timer.stop()


def slowly(fn):
    def slow(*args, **kwargs):
        time.sleep(SLOW_S)
        return fn(*args, **kwargs)
    return slow


def trained_run(path, **overrides):
    cfg = dict(steps=4, checkpoint_every=4, preview_every=2, image_size=16)
    cfg.update(overrides)
    list(Trainer(tiny_config(**cfg), path, dataset=square_dataset(size=cfg["image_size"])).run())
    return path


def test_opening_a_run_reads_its_checkpoint_and_previews_off_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    run = trained_run(tmp_path / "run")
    monkeypatch.setattr(run_loader, "open_run", slowly(core_runs.open_run))
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: (time.sleep(SLOW_S / 2), real_open(*a, **k))[1])
    with Probe() as probe:
        window.open_run_folder(str(run))
        assert window.opener.busy and not window.settings.train_button.isEnabled()  # no Train while opening
        qtbot.waitUntil(lambda: window.loaded_run is not None, timeout=30_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    assert window.training_view.steps == [1, 2, 3, 4]
    assert [p.step for p in window.training_view.previews] == [2, 4]
    assert window.settings.train_button.isEnabled()
    qtbot.waitUntil(lambda: not window._tasks, timeout=30_000)


def test_a_second_open_supersedes_the_first(qtbot, window, tmp_path, monkeypatch):
    first, second = trained_run(tmp_path / "first"), trained_run(tmp_path / "second", steps=2, checkpoint_every=2)
    real = core_runs.open_run
    monkeypatch.setattr(run_loader, "open_run",
                        lambda path, **k: (time.sleep(SLOW_S) if "first" in str(path) else None, real(path, **k))[1])
    window.open_run_folder(str(first))
    window.open_run_folder(str(second))
    qtbot.waitUntil(lambda: window.loaded_run is not None, timeout=30_000)
    assert window.loaded_run.root == second
    qtbot.wait(int(SLOW_S * 1000) + 300)  # the first finishes reading, and its result is dropped
    qtbot.waitUntil(lambda: not window.opener._jobs, timeout=30_000)
    assert window.loaded_run.root == second and window.training_view.steps == [1, 2]


def test_switching_ema_and_raw_weights_never_rereads_the_checkpoint(qtbot, window, tmp_path, monkeypatch):
    run = trained_run(tmp_path / "run")
    reads = []
    monkeypatch.setattr(core_runs, "load_checkpoint", lambda p: (reads.append(p), load_checkpoint(p))[1])
    window.open_run_folder(str(run))
    qtbot.waitUntil(lambda: window.loaded_run is not None and not window._tasks, timeout=30_000)
    state = load_checkpoint(window.loaded_run.checkpoint)
    for ema in (False, True, False, True):
        model = window.sampling_view.model_source(ema=ema).model
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, state["ema" if ema else "model"][k], rtol=0, atol=0)
    assert len(reads) == 1
    assert not torch.equal(next(iter(state["ema"].values())), next(iter(state["model"].values())))


def test_the_dataset_preview_decodes_off_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "imgs", n=8, size=12)
    for cls in (core_data.ImageDataset, core_data.StreamingImageDataset):
        monkeypatch.setattr(cls, "preview", slowly(cls.preview))
    with Probe() as probe:
        window.load_source(str(folder))
        qtbot.waitUntil(lambda: window.report.source == str(folder) and not window._tasks, timeout=30_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    assert window.data_view.grid.item.image is not None and window.forward_view.x0.shape[0] == 8


def sampled(qtbot, window, tmp_path):
    window.open_run_folder(str(trained_run(tmp_path / "run", image_size=8)))
    qtbot.waitUntil(lambda: window.loaded_run is not None and not window._tasks, timeout=30_000)
    sv = window.sampling_view
    sv.steps.setValue(5)
    sv.n.setValue(4)
    sv.start()
    qtbot.waitUntil(lambda: not sv.busy and sv.export_gif.isEnabled(), timeout=60_000)
    return sv


@pytest.mark.parametrize("kind", ["gif", "strip", "png"])
def test_exports_write_on_a_worker_with_progress(qtbot, window, tmp_path, monkeypatch, kind):
    sv = sampled(qtbot, window, tmp_path)
    for name in ("save_gif", "save_strip", "save_grid"):
        monkeypatch.setattr(sampling_job, name, slowly(getattr(sampling_job, name)))
    write = {"gif": sampling_job.write_gif, "strip": sampling_job.write_strip, "png": sampling_job.write_png}
    path = tmp_path / f"out.{'gif' if kind == 'gif' else 'png'}"
    with Probe() as probe:
        job = sv.export(write[kind], str(path))
        assert sv.exporting and not sv.export_gif.isEnabled()
        qtbot.waitUntil(lambda: not sv.exporting, timeout=30_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    assert job is not None and f"Wrote {path}" in sv.status.text() and sv.export_gif.isEnabled()
    if kind == "gif":
        assert Image.open(path).n_frames == len(sv.trajectory) == 6
    else:
        assert Image.open(path).text["steps"] == "5"


def test_a_gif_export_reports_each_frame_and_a_failure_keeps_the_view_usable(qtbot, window, tmp_path):
    sv = sampled(qtbot, window, tmp_path)
    seen = []
    job = sv.export(sampling_job.write_gif, str(tmp_path / "a.gif"))
    job.item.connect(seen.append)
    qtbot.waitUntil(lambda: not sv.exporting, timeout=30_000)
    assert Image.open(tmp_path / "a.gif").n_frames == 6 and seen == [(i, 6) for i in range(1, 7)]
    sv.export(sampling_job.write_gif, str(tmp_path / "a.gif" / "b.gif"))  # a file is not a folder
    qtbot.waitUntil(lambda: not sv.exporting, timeout=30_000)
    assert "Could not write" in sv.status.text() and sv.export_gif.isEnabled()


def live_training(tmp_path) -> TrainingProcess:
    """A run of 3 steps trained in its own process, which has ended: its last weights are the app's."""
    training = TrainingProcess(tiny_config(steps=3, checkpoint_every=3), tmp_path / "live")
    training.start()
    while not training.finished:
        training.read(timeout=1)
    assert training.done.reason == "finished", training.done.message
    return training


def test_the_weight_snapshot_for_sampling_is_taken_on_the_sampling_worker(qtbot, window, tmp_path, monkeypatch):
    window.session.trainer = training = live_training(tmp_path)
    monkeypatch.setattr(TrainingProcess, "snapshot_model", slowly(TrainingProcess.snapshot_model))
    sv = window.sampling_view
    sv.steps.setValue(3)
    sv.n.setValue(2)
    with Probe() as probe:
        sv.start()
        qtbot.waitUntil(lambda: not sv.busy, timeout=60_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    assert len(sv.trajectory) == 4 and sv.settings["model"] == "the training run at step 3"
    assert training.step == 3


def test_the_analysis_views_get_a_snapshot_copied_on_a_worker(qtbot, window, tmp_path, monkeypatch):
    window.session.trainer = live_training(tmp_path)
    monkeypatch.setattr(TrainingProcess, "snapshot_model", slowly(TrainingProcess.snapshot_model))
    with Probe() as probe:
        assert window.model_source(ema=True) is None  # not yet: the copy is being taken
        qtbot.waitUntil(lambda: window.model_source(ema=True) is not None, timeout=30_000)
    assert probe.max_gap < MAX_GAP_MS, f"the event loop stalled {probe.max_gap:.0f} ms"
    handle = window.model_source(ema=True)
    assert handle.label == "the training run at step 3"
    saved = load_checkpoint(RunDir(tmp_path / "live").latest_checkpoint())
    for k, v in handle.model.state_dict().items():
        torch.testing.assert_close(v, saved["ema"][k], rtol=0, atol=0)


def test_resume_from_the_app_trains_on_the_runs_own_data_with_its_flip(qtbot, window, tmp_path):
    a = write_image_folder(tmp_path / "a", n=7, size=12)
    b = write_image_folder(tmp_path / "b", n=5, size=12)
    run = tmp_path / "run"
    list(Trainer(tiny_config(dataset=str(a), flip=True, image_size=8, steps=2, checkpoint_every=2), run).run())
    window.open_run_folder(str(run))
    qtbot.waitUntil(lambda: window.loaded_run is not None and not window._tasks, timeout=30_000)
    window.load_source(str(b))  # the app now shows dataset B
    qtbot.waitUntil(lambda: window.report.source == str(b) and not window._tasks, timeout=30_000)
    window.settings.steps.setValue(4)
    window.settings.train_button.click()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    training = window.trainer
    assert training.step == 4, window.log.toPlainText()
    started = training.started  # what the training process loaded: A's 7 images at 8×8, flipped
    assert training.config.dataset == str(a) and training.config.flip is True
    assert started.items == 7 and started.image_size == 8 and started.channels == 1


CLOSE_WHILE_OPENING = r"""
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from diffview.core.runs import open as runs
from diffview.gui import run_loader
from diffview.gui.main_window import MainWindow
real = runs.open_run
run_loader.open_run = lambda *a, **k: (time.sleep(1.5), real(*a, **k))[1]
app = QApplication([])
w = MainWindow(runs_root=sys.argv[1])
w.show()
def go():
    w.open_run_folder(sys.argv[2])
    QTimer.singleShot(200, w.close)  # close while the run is still opening
QTimer.singleShot(0, go)
code = app.exec()
print("exit", code, "busy", w.opener.busy)
sys.exit(code)
"""


def test_closing_while_a_run_opens_exits_cleanly(tmp_path):
    run = trained_run(tmp_path / "run")
    env = dict(os.environ, DIFFVIEW_CACHE_DIR=str(tmp_path / "cache"), QT_QPA_PLATFORM="offscreen")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CLOSE_WHILE_OPENING, str(tmp_path / "runs"), str(run)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "exit 0 busy False" in r.stdout
    assert "QThread" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert time.perf_counter() - t0 < 60


# ---------------------------------------------------------------------- the one worker abstraction
def test_a_job_reports_progress_its_result_or_its_failure_and_applies_the_worker_thread_rule(qtbot):
    from diffview.gui.workers.jobs import Jobs
    from diffview.gui.workers.threads import use_worker_torch_threads

    use_worker_torch_threads()
    expected_threads = torch.get_num_threads()  # what the rule gives a worker here
    torch.set_num_threads(expected_threads + 1)  # the GUI thread's own setting must not leak into the job
    jobs, items, ends = Jobs(), [], []

    def work(emit, cancelled):
        for i in range(3):
            emit(i)
        return torch.get_num_threads()

    jobs.start(work, "diffview-test", items.append, lambda result, error: ends.append((result, error)))
    assert jobs
    qtbot.waitUntil(lambda: bool(ends) and not jobs, timeout=10_000)
    assert items == [0, 1, 2] and ends == [(expected_threads, "")]

    def broken(emit, cancelled):
        raise RuntimeError("the model broke")

    jobs.start(broken, "diffview-test", on_done=lambda result, error: ends.append((result, error)))
    qtbot.waitUntil(lambda: len(ends) == 2 and not jobs, timeout=10_000)
    assert ends[1] == (None, "the model broke")
    jobs.start(work, "diffview-test", on_done=lambda result, error: ends.append((result, error)))  # still usable
    qtbot.waitUntil(lambda: len(ends) == 3 and not jobs, timeout=10_000)
    assert ends[2] == (expected_threads, "")


def test_the_sampling_job_runs_with_the_worker_thread_count(qtbot, window, tmp_path, monkeypatch):
    """The sampling view once ran its own worker without the rule: OpenMP's default team of every core."""
    from diffview.gui.workers.threads import use_worker_torch_threads

    use_worker_torch_threads()
    expected = torch.get_num_threads()
    torch.set_num_threads(expected + 1)
    seen = []
    from diffview.core.runs import handle as handle_module  # the tab samples through ModelHandle.iter_sample

    real = handle_module.iter_sample

    def counted(*args, **kwargs):
        for st in real(*args, **kwargs):
            seen.append(torch.get_num_threads())
            yield st

    monkeypatch.setattr(handle_module, "iter_sample", counted)
    sv = sampled(qtbot, window, tmp_path)
    assert seen and set(seen) == {expected}, seen
    assert len(sv.trajectory) == 6


def test_stop_everything_cancels_every_job_at_once_waits_for_each_and_starts_nothing_after(qtbot):
    from diffview.gui.workers.jobs import Jobs, stop_everything

    first, second, ends = Jobs(), Jobs(), []

    def until_cancelled(emit, cancelled):
        t0 = time.perf_counter()
        while not cancelled():
            time.sleep(0.01)
            if time.perf_counter() - t0 > 20:
                return "never cancelled"
        return "cancelled"

    for jobs in (first, second, first):
        jobs.start(until_cancelled, "diffview-test", on_done=lambda result, error: ends.append((result, error)))
    qtbot.wait(100)
    assert len(running_threads()) == 3
    t0 = time.perf_counter()
    assert stop_everything(ms=10_000)
    assert running_threads() == [] and time.perf_counter() - t0 < 1.0  # together, not one after another
    qtbot.waitUntil(lambda: len(ends) == 3, timeout=10_000)  # each one's end still arrives, on the GUI thread
    assert ends == [("cancelled", "")] * 3 and not first and not second
    assert first.closed and second.closed and first.start(until_cancelled, "diffview-test") is None
    again = Jobs()
    assert again.start(lambda emit, cancelled: 1, "diffview-test").wait(10_000)  # a new set starts again
    qtbot.waitUntil(lambda: not again, timeout=10_000)


def test_every_thread_in_the_gui_comes_from_the_one_job_class():
    """One worker abstraction: no other module makes a QThread or moves a worker object onto one."""
    import diffview.gui

    root = __import__("pathlib").Path(diffview.gui.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name not in ("jobs.py", "threads.py")
                 and any(s in p.read_text() for s in ("QThread(", "moveToThread", "new_thread("))]
    assert offenders == []


def test_an_owner_gone_mid_job_never_destroys_its_running_thread(qtbot):
    import gc

    from diffview.gui.workers.jobs import Jobs, stop_everything

    def until_cancelled(emit, cancelled):
        while not cancelled():
            time.sleep(0.01)

    ends = []
    owner = Jobs()
    owner.start(until_cancelled, "diffview-test", on_done=lambda result, error: ends.append(error))
    del owner
    gc.collect()
    qtbot.wait(100)
    assert running_threads() == ["diffview-test"]  # still running, not destroyed with its owner
    assert stop_everything(ms=10_000) and running_threads() == []
    qtbot.wait(100)
    assert ends == []  # its owner is gone: nothing is delivered to it
