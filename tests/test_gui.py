"""The desktop app, offscreen (pytest-qt)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from helpers import process_running, square_dataset, tiny_config, write_image_folder  # noqa: E402

from diffview.core.diffusion import q_sample  # noqa: E402
from diffview.core.io.checkpoint import load_checkpoint  # noqa: E402
from diffview.core.io.export import make_grid, to_uint8  # noqa: E402
from diffview.core.schedule import SCHEDULES, make_schedule  # noqa: E402
from diffview.core.train.config import TrainConfig  # noqa: E402
from diffview.core.train.trainer import Trainer  # noqa: E402
from diffview.gui.workers.threads import running_threads  # noqa: E402


def use_tiny_folder(qtbot, w, tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=8, size=12)
    s = w.settings
    s.image_size.setCurrentText("16")
    s.model.setCurrentText("tiny")
    s.timesteps.setValue(50)
    s.batch.setValue(8)
    s.steps.setValue(100_000)
    qtbot.waitUntil(lambda: not w._tasks, timeout=30_000)
    w.load_source(str(folder))
    qtbot.waitUntil(lambda: w.report is not None and w.report.source == str(folder) and not w._tasks,
                    timeout=30_000)
    return folder


def test_window_opens_on_the_builtin_digits(window):
    assert window.report.used == 10_000 and window.dataset.image_size == 28
    assert window.forward_view.grid.item.image is not None
    assert "10,000" in window.data_view.summary.text()
    assert window.tabs.currentWidget() is window.forward_view
    if not torch.cuda.is_available():  # the training threads, not the GUI thread's one
        n = os.cpu_count()
        assert window.device_label.text() == f"CPU, {n} thread{'s' if n != 1 else ''}"


def test_forward_slider_shows_q_sample_and_readouts(window):
    fv = window.forward_view
    before = fv.grid.item.image.copy()
    fv.slider.setValue(300)
    image = fv.grid.item.image
    assert not np.array_equal(before, image)
    expected = make_grid(to_uint8(q_sample(fv.x0, 300, window.schedule, fv.noise)), padding=1, pad_value=40)[..., 0]
    np.testing.assert_array_equal(image, expected)
    text = fv.values.text()
    assert "t = 300" in text and f"{float(window.schedule.betas[300]):.6f}" in text
    assert fv.spin.value() == 300
    assert window.schedule_view.markers[0].value() == 300


def test_schedule_marker_moves_the_forward_slider(window):
    window.schedule_view.markers[1].setValue(123.4)
    assert window.forward_view.t == 123


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_curves_equal_the_core_arrays(window, name):
    window.settings.schedule.setCurrentText(name)
    core = make_schedule(name, window.settings.timesteps.value())
    view = window.schedule_view
    for key in ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "betas"):
        np.testing.assert_array_equal(view.curve_data(key), getattr(core, key).numpy())
    np.testing.assert_array_equal(view.curve_data("log_snr"), core.log_snr.numpy())
    assert window.forward_view.schedule.name == name


def test_a_schedule_that_cannot_exist_is_an_error_message_not_a_crash(window):
    window.settings.schedule.setCurrentText("linear")
    window.settings.timesteps.setValue(20)  # the scaled linear β_end would be 1.0
    assert "beta_end must lie in (0, 1)" in window.log.toPlainText()
    assert window.schedule.timesteps == 1000  # the last good schedule stays


def test_tiny_training_from_the_gui_plots_losses_then_stops(qtbot, window, tmp_path):
    use_tiny_folder(qtbot, window, tmp_path)
    window.settings.train_button.click()
    assert window.controller.running
    qtbot.waitUntil(lambda: len(window.training_view.steps) >= 5, timeout=60_000)
    window.settings.stop_button.click()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert len(window.training_view.raw.xData) >= 5
    assert running_threads() == []
    assert list((window.run_dir / "checkpoints").glob("step_*.pt"))
    assert window.settings.train_button.isEnabled() and not window.settings.stop_button.isEnabled()


def test_pause_and_resume_from_the_gui(qtbot, window, tmp_path):
    use_tiny_folder(qtbot, window, tmp_path)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.training_view.steps) >= 2, timeout=60_000)
    window.toggle_pause()
    assert window.controller.state == "paused" and window.settings.pause_button.text() == "Resume"
    qtbot.wait(300)
    n = len(window.training_view.steps)
    qtbot.wait(300)
    assert len(window.training_view.steps) <= n + 1
    window.toggle_pause()
    qtbot.waitUntil(lambda: len(window.training_view.steps) > n + 2, timeout=60_000)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)


def test_sampling_view_runs_ddim_to_the_end_and_exports(qtbot, window, tmp_path):
    run = tmp_path / "run"
    list(Trainer(tiny_config(steps=3, checkpoint_every=3), run, dataset=square_dataset()).run())
    window.open_run_folder(str(run))  # on a worker: the run opens, then its data loads
    qtbot.waitUntil(lambda: not window.opener.busy and not window._tasks, timeout=30_000)
    sv = window.sampling_view
    sv.sampler.setCurrentText("DDIM")
    sv.steps.setValue(5)
    sv.n.setValue(4)
    sv.run_button.click()
    qtbot.waitUntil(lambda: not sv.busy and sv.slider.isEnabled(), timeout=60_000)
    assert len(sv.trajectory) == 6  # five steps, then x_0
    assert sv.slider.maximum() == 5
    sv.slider.setValue(0)
    assert "t = " in sv.frame_label.text()
    png = sv.export_png_to(str(tmp_path / "grid.png"))
    gif = sv.export_gif_to(str(tmp_path / "traj.gif"))
    strip = sv.export_strip_to(str(tmp_path / "strip.png"))
    assert Image.open(png).text["sampler"] == "ddim" and Image.open(png).text["steps"] == "5"
    assert Image.open(gif).n_frames == 6
    assert Image.open(strip).size[0] > Image.open(strip).size[1]


def test_closing_mid_training_stops_saves_and_closes(qtbot, window, tmp_path):
    use_tiny_folder(qtbot, window, tmp_path)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.training_view.steps) >= 3, timeout=60_000)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert not window.controller.running and running_threads() == []
    assert list((window.run_dir / "checkpoints").glob("step_*.pt"))


def test_an_unreadable_folder_shows_an_error_and_the_app_keeps_working(qtbot, window, tmp_path):
    (tmp_path / "empty").mkdir()
    window.load_source(str(tmp_path / "empty"))
    qtbot.waitUntil(lambda: not window._tasks, timeout=30_000)
    assert "holds no image files" in window.log.toPlainText()
    assert window.report.used == 10_000  # the digits are still loaded
    window.forward_view.slider.setValue(10)
    assert "t = 10" in window.forward_view.values.text()


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (CI installs it)")
def test_smoke_the_real_app_under_xvfb(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DIFFVIEW_QUIT_AFTER_MS="4000", DIFFVIEW_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "diffview"], capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    assert "window shown" in r.stderr and "Traceback" not in r.stderr


def test_a_run_folder_opens_with_its_history_and_previews_and_resumes(qtbot, window, tmp_path):
    run = tmp_path / "run"
    list(Trainer(tiny_config(steps=4, checkpoint_every=4, preview_every=2, image_size=16),
                 run, dataset=square_dataset(size=16)).run())
    window.open_run_folder(str(run))  # on a worker: the run opens, then its data loads
    qtbot.waitUntil(lambda: not window.opener.busy and not window._tasks, timeout=30_000)
    assert window.training_view.steps == [1, 2, 3, 4]
    assert [p.step for p in window.training_view.previews] == [2, 4]
    assert window.settings.model.currentText() == "tiny"
    window.settings.steps.setValue(10)
    window.start_training()  # resumes the opened run
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert window.trainer.step == 10 and window.run_dir == run
    assert (run / "checkpoints" / "step_0000010.pt").is_file()


def test_dropping_a_folder_loads_it(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    folder = write_image_folder(tmp_path / "dropped", n=5, size=12)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.report.source == str(folder) and not window._tasks, timeout=30_000)
    assert window.report.used == 5 and window.settings.dataset_source() == str(folder)


CLOSE_MID_TRAINING = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from diffview.gui.main_window import MainWindow
app = QApplication([])
w = MainWindow(runs_root=sys.argv[1])
w.show()
def train():
    if w.dataset is None:
        QTimer.singleShot(50, train); return
    w.settings.model.setCurrentText("tiny"); w.settings.batch.setValue(8); w.start_training()
    w.controller.steps.connect(lambda _: QTimer.singleShot(200, w.close))  # close mid-training, once it trains
QTimer.singleShot(0, train)
code = app.exec()
print("exit", code, "step", w.trainer.step if w.trainer else None, "child", w.trainer.pid if w.trainer else None)
sys.exit(code)
"""


def test_closing_mid_training_exits_zero_without_qt_thread_warnings(tmp_path):
    env = dict(os.environ, DIFFVIEW_CACHE_DIR=str(tmp_path / "cache"), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", CLOSE_MID_TRAINING, str(tmp_path / "runs")], capture_output=True,
                       text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    assert "exit 0" in r.stdout
    assert "QThread" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    words = r.stdout.split()
    step, child = int(words[words.index("step") + 1]), int(words[words.index("child") + 1])
    saved = list((tmp_path / "runs").glob("*/checkpoints/step_*.pt"))
    assert [load_checkpoint(p)["step"] for p in saved] == [step] and step >= 1  # the step it stopped at
    assert not process_running(child), "the training process outlived the app"



def test_every_tab_that_uses_the_papers_subscripts_says_which_t_it_means(window):
    """One convention for t: every tab whose captions use x_t-style subscripts says that t is the 0-based index."""
    from PySide6.QtWidgets import QLabel

    checked = 0
    for i in range(window.tabs.count()):
        texts = [label.text() for label in window.tabs.widget(i).findChildren(QLabel)]
        if any("<sub>t" in t for t in texts):
            checked += 1
            assert any("0-based" in t for t in texts), f"tab {window.tabs.tabText(i)!r} does not say what t is"
    assert checked >= 8  # Forward, Schedule, Training, Sampling, Bound, Samplers, Noise & denoise, 2D


def test_cyclic_garbage_is_collected_on_the_gui_thread_never_on_a_worker(qtbot, window):
    """A worker that allocates must not run the cyclic collector: it could destroy a dead window's Qt
    objects on that thread (a deadlock inside ~QObject, seen while a worker built a model)."""
    import gc
    import threading

    died_on = []

    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            died_on.append(threading.current_thread() is threading.main_thread())

    n = 2 * gc.get_threshold()[0]
    for _ in range(n):
        Cycle()  # unreachable cycles, more than generation 0's threshold: only the cyclic collector frees them

    def allocate():
        kept = [[] for _ in range(10_000)]  # far past the threshold: the automatic collector would run here
        del kept

    worker = threading.Thread(target=allocate)
    worker.start()
    worker.join()
    assert died_on == [], "the cyclic collector ran on a worker thread"
    qtbot.waitUntil(lambda: len(died_on) == n, timeout=5_000)  # the GUI thread's timer collects them
    assert all(died_on) and not gc.isenabled()


def test_the_gui_threads_collector_keeps_cpythons_rule_for_full_collections(monkeypatch):
    """A full pass over the heap waits until the objects promoted since the last one exceed a quarter of the
    heap, as CPython's own collector does; without that rule every tenth pass was a full one (long stalls)."""
    from types import SimpleNamespace

    from diffview.gui.workers import threads

    calls, state = [], {"counts": (701, 11, 11)}
    objects = {0: [None] * 50, 1: [None] * 100, 2: [None] * 1000}
    fake = SimpleNamespace(get_threshold=lambda: (700, 10, 10), get_count=lambda: state["counts"],
                           collect=lambda generation: calls.append(generation) or 0,
                           get_objects=lambda generation: objects[generation])
    monkeypatch.setattr(threads, "gc", fake)
    monkeypatch.setattr(threads, "_long_lived", {"total": 1000, "pending": 0})
    threads.collect_garbage_if_due()
    assert calls == [1]  # the oldest generation is due by count, but only 0 of 1,000 objects are new
    threads.collect_garbage_if_due()
    assert calls == [1, 1]  # 150 promoted: still under a quarter
    threads.collect_garbage_if_due()
    assert calls == [1, 1, 2] and threads._long_lived == {"total": 1000, "pending": 0}  # 300 > 250: a full pass
    state["counts"] = (701, 5, 0)
    threads.collect_garbage_if_due()
    state["counts"] = (600, 11, 11)
    threads.collect_garbage_if_due()
    assert calls == [1, 1, 2, 0]  # the youngest alone when only it is due; nothing under its threshold


def test_what_lives_at_start_up_is_frozen_so_full_collections_stay_short(qtbot, window):
    """The modules of torch, Qt, pyqtgraph and diffusers (~380,000 objects) are moved out of the collector's
    sight when the window starts the GUI thread's collector; a full pass walked them all (380 ms) before."""
    import gc
    import weakref

    assert gc.get_freeze_count() > 100_000

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after start-up is still the collector's
    gone = weakref.ref(a)
    del a, b
    gc.collect(2)
    assert gone() is None


def test_a_folder_scales_steps_and_batch_unless_a_person_set_them(qtbot, window, tmp_path):
    from diffview.core.train.config import TrainConfig, image_defaults

    d, s = TrainConfig(), window.settings
    assert (s.steps.value(), s.batch.value()) == (d.steps, d.batch_size)  # the digits: the measured defaults

    def load(folder):
        qtbot.waitUntil(lambda: not window._tasks, timeout=30_000)
        window.load_source(str(folder))
        qtbot.waitUntil(lambda: window.report is not None and window.report.source == str(folder)
                        and not window._tasks, timeout=30_000)

    load(write_image_folder(tmp_path / "five", n=5, size=40))  # a folder trains at 32×32 unless told
    scaled = image_defaults(32, 5)
    assert (s.steps.value(), s.batch.value()) == (scaled["steps"], 5) and scaled["steps"] < d.steps
    assert "32×32" in s.steps.toolTip()
    s.steps.setValue(777)  # a person's choice stands
    load(write_image_folder(tmp_path / "nine", n=9, size=40))
    assert (s.steps.value(), s.batch.value()) == (777, 5)


@pytest.mark.parametrize("box, field, items, choice, shown", [
    ("precision", "precision", ["auto", "bf16", "fp32"], "fp32", "bf16"),
    ("weighting", "loss_weighting", ["none", "min_snr", "adaptive"], "min_snr", "adaptive"),
])
def test_a_training_box_trains_in_its_choice_and_is_locked_while_training(qtbot, window, tmp_path, box, field, items,
                                                                          choice, shown):
    use_tiny_folder(qtbot, window, tmp_path)
    s = window.settings
    combo = getattr(s, box)
    assert combo.currentText() == getattr(TrainConfig(), field)
    assert [combo.itemText(i) for i in range(combo.count())] == items
    combo.setCurrentText(choice)
    assert getattr(s.config(), field) == choice
    window.start_training()
    assert not combo.isEnabled()
    qtbot.waitUntil(lambda: len(window.training_view.steps) >= 2, timeout=60_000)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)
    assert combo.isEnabled()
    saved = load_checkpoint(next((window.run_dir / "checkpoints").glob("step_*.pt")))
    assert saved["config"][field] == choice
    assert ("loss_balance" in saved) is (saved["config"]["loss_weighting"] == "adaptive")
    s.set_config(tiny_config(**{field: shown}))
    assert combo.currentText() == shown
