"""The analysis tabs (Memorisation, Noise & denoise, a failing job, the window), offscreen with a tiny UNet;
the Bound tab's tests are in test_bound_view.py."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from helpers import Breakable, finish, gaussian_oracle, noise_images, tiny_unet, wire, write_image_folder  # noqa: E402

from diffview.core.data.files import decode_image, to_channels  # noqa: E402
from diffview.core.diffusion import q_sample  # noqa: E402
from diffview.core.io.export import to_uint8  # noqa: E402
from diffview.core.runs.handle import FromTraining, ModelHandle, PointShape  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.main_window import MainWindow  # noqa: E402
from diffview.gui.views.bound import BoundView  # noqa: E402
from diffview.gui.views.job_view import float_images  # noqa: E402
from diffview.gui.views.memorise import MemoriseView  # noqa: E402
from diffview.gui.views.samplers import CompareView  # noqa: E402
from diffview.gui.views.sdedit import UNTOUCHED, SDEditView, strip_timesteps  # noqa: E402
from diffview.gui.workers.threads import running_threads  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def model():
    return tiny_unet()


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def dataset():
    return noise_images()


# ----------------------------------------------------------------------------- memorisation
def test_memorisation_finds_a_copy_at_distance_zero_and_sorts(qtbot, model, schedule, dataset):
    view = wire(MemoriseView(), model, schedule, dataset)
    qtbot.addWidget(view)
    g = torch.Generator().manual_seed(99)
    fresh = torch.randint(0, 256, (2, 1, 8, 8), generator=g, dtype=torch.uint8)
    samples = torch.cat([fresh[:1], dataset.images[3:4], fresh[1:]]).numpy()
    assert view.analyse(samples)
    finish(qtbot, view)
    nb = view.neighbours
    assert nb.distance[1] == 0 and nb.index[1] == 3 and nb.near_copy[1]
    assert not nb.near_copy[0] and not nb.near_copy[2]
    assert list(view.order)[0] == 1 and np.all(np.diff(nb.distance[view.order]) >= 0)
    first = view.list.item(0).text()
    assert first.startswith("NEAR COPY d = 0.00") and "train #3" in first
    assert view.summary.text().startswith("1 of 3 samples are near-copies")
    assert view.list.count() == 3


def test_memorisation_generates_samples_with_the_model(qtbot, model, schedule, dataset):
    view = wire(MemoriseView(), model, schedule, dataset)
    qtbot.addWidget(view)
    view.n.setValue(3)
    view.steps.setValue(3)
    assert view.start()
    finish(qtbot, view)
    assert view.samples.shape == (3, 1, 8, 8) and view.list.count() == 3
    view.samples_source = lambda: None
    view._use_last()
    assert "no samples yet" in view.status.text()


def test_memorisation_samples_with_the_sampler_it_shows(qtbot, schedule, dataset):
    oracle = gaussian_oracle(schedule, 0.0, 0.4)  # samples well inside [−1, 1], so samplers differ visibly

    class Oracle(torch.nn.Module):
        def forward(self, x, t):
            return oracle(x, t)

    view = wire(MemoriseView(), Oracle(), schedule, dataset)
    qtbot.addWidget(view)
    view.n.setValue(3)
    view.sampler.set_key("dpmpp-2m")
    view.steps.setValue(6)
    assert view.start()
    finish(qtbot, view)
    handle = view.model_source(ema=True)
    expected = to_uint8(handle.sample(3, sampler="dpmpp-2m", steps=6, seed=view.seed.value()))
    np.testing.assert_array_equal(view.samples, expected)
    assert (expected != to_uint8(handle.sample(3, sampler="ddim", steps=6, seed=view.seed.value()))).any()


def test_memorisation_searches_a_streamed_folder_a_chunk_at_a_time(qtbot, model, schedule, tmp_path, monkeypatch):
    import diffview.gui.views.memorise as mem
    from diffview.core.data.images import StreamingImageDataset

    folder = write_image_folder(tmp_path / "imgs", n=30, size=8)
    streamed = StreamingImageDataset(sorted(folder.glob("*.png")), channels=1, image_size=8)
    reads = []

    class Counted(StreamingImageDataset):
        def _uint8(self, indices):
            reads.append(len(indices))
            return super()._uint8(indices)

    data = Counted(streamed.files, 1, 8)
    monkeypatch.setattr(mem, "SEARCH_CHUNK", 7)
    view = wire(MemoriseView(), model, schedule, data)
    qtbot.addWidget(view)
    train = streamed.images_uint8(range(30))
    samples = torch.cat([train[[12, 29]], torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)]).numpy()
    reads.clear()
    assert view.analyse(samples)
    finish(qtbot, view)
    assert max(reads) <= 7 and sum(reads) == 30 + 3  # each image once, then the 3 nearest for the display
    brute = torch.cdist(float_images(samples).flatten(1).double(), float_images(train).flatten(1).double())
    assert view.neighbours.index.tolist() == brute.argmin(1).tolist() and view.neighbours.index[:2].tolist() == [12, 29]
    np.testing.assert_allclose(view.neighbours.distance, brute.min(1).values.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- noise and denoise
def test_sdedit_untouched_is_the_image_unchanged_and_runs_at_t(qtbot, model, schedule, dataset):
    view = wire(SDEditView(), model, schedule, dataset)
    qtbot.addWidget(view)
    view.show()  # picks up the dataset's size and the schedule's T
    view.index.setValue(5)
    view.t_slider.setValue(view.t_slider.minimum())
    assert view.timestep.value() == UNTOUCHED and view.t_spin.text() == "none"
    view.with_strip.setChecked(False)
    assert view.start()
    finish(qtbot, view)
    np.testing.assert_array_equal(view.result, dataset.images[5:6].numpy())
    np.testing.assert_array_equal(view.noised, dataset.images[5:6].numpy())
    assert view.result_t == UNTOUCHED and "untouched" in view.noised_grid.title.text
    assert (view.t_spin.minimum(), view.t_spin.maximum()) == (UNTOUCHED, T - 1)  # none, then the index 0 … T−1

    view.t_spin.setValue(30)
    view.steps.setValue(5)
    view.with_strip.setChecked(True)
    view.start()
    finish(qtbot, view)
    assert view.result_t == 30 and view.result.shape == (1, 1, 8, 8)
    assert not np.array_equal(view.noised, dataset.images[5:6].numpy())
    assert view.strip_ts == strip_timesteps(T) and view.strip_ts[0] == UNTOUCHED and view.strip_ts[-1] == T - 1
    assert len(view.strip) == len(view.strip_ts)
    np.testing.assert_array_equal(view.strip[0][1], dataset.images[5:6].numpy())  # untouched in the strip too
    assert view.strip_grid.current_array().shape[0] > view.result_grid.current_array().shape[0]


def test_sdedit_t_is_the_0_based_index_of_the_other_tabs(qtbot, model, schedule, dataset):
    """x_t shown at t is q(x_t | x_0) at schedule index t, and the chain's first model call is at t."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, t):
            seen.append(int(t[0]))
            return model(x, t)

    view = wire(SDEditView(), Spy(), schedule, dataset)
    qtbot.addWidget(view)
    view.show()
    view.index.setValue(3)
    view.seed.setValue(7)
    view.with_strip.setChecked(False)
    x0 = float_images(dataset.images[3:4])
    for t in (0, 17, T - 1):
        seen.clear()
        view.t_spin.setValue(t)
        assert view.start()
        finish(qtbot, view)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
        np.testing.assert_array_equal(view.noised, to_uint8(q_sample(x0, t, schedule, noise)))
        assert seen[0] == t and view.result_t == t and f"t = {t}" in view.noised_grid.title.text
    assert strip_timesteps(1000) == [-1, 142, 285, 428, 570, 713, 856, 999]  # round(i·1000/7) − 1
    assert strip_timesteps(T, 2) == [UNTOUCHED, T - 1] and strip_timesteps(T, T + 1) == list(range(-1, T))


def test_sdedit_opens_any_image_file_at_the_dataset_size(qtbot, model, schedule, dataset, tmp_path):
    view = wire(SDEditView(), model, schedule, dataset)
    qtbot.addWidget(view)
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)
    assert view.load_image_file(str(path))
    assert view.original.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(view.original[0], to_channels(decode_image(path, 8), 1))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert not view.load_image_file(str(tmp_path / "bad.png")) and "Cannot use" in view.status.text()


# ----------------------------------------------------------------------------- a failing job


def _small(view):
    for name, value in (("images", 2), ("k", 3), ("n", 2), ("steps", 2), ("few", 0)):
        if hasattr(view, name):
            getattr(view, name).setValue(value)
    if isinstance(view, CompareView):
        view.budgets.setText("2")
    if isinstance(view, SDEditView):
        view.show()
        view.t_spin.setValue(10)
        view.with_strip.setChecked(False)


def _result(view):
    return {BoundView: lambda: view.result, CompareView: lambda: view.points or None,
            MemoriseView: lambda: view.neighbours, SDEditView: lambda: view.result}[type(view)]()


BUTTONS = {BoundView: "Compute the bound", CompareView: "Run samplers", MemoriseView: "Generate and search",
           SDEditView: "Noise and denoise"}


@pytest.mark.parametrize("cls", [BoundView, MemoriseView, SDEditView])  # the Samplers tab measures it (its own tests)
def test_a_model_of_2d_points_is_refused_with_the_reason(qtbot, cls, schedule, dataset):
    from diffview.core.models.mlp import build_mlp

    view = wire(cls(), build_mlp("mlp-tiny").eval(), schedule, dataset)
    points = ModelHandle(build_mlp("mlp-tiny").eval(), schedule, "eps", PointShape(2), FromTraining(5), "a 2D model")
    view.model_source = lambda ema=True: points
    qtbot.addWidget(view)
    assert not view.start() and not view.busy
    assert view.status.text() == "a 2D model makes 2D points: this tab works on image models."


@pytest.mark.parametrize("cls", [BoundView, CompareView, MemoriseView, SDEditView])
def test_a_failing_job_shows_why_and_the_next_run_works(qtbot, cls, model, schedule, dataset):
    broken = Breakable(model)
    view = wire(cls(), broken, schedule, dataset)
    qtbot.addWidget(view)
    _small(view)
    messages = []
    view.message.connect(lambda level, text: messages.append((level, text)))
    assert view.start()
    finish(qtbot, view)
    assert messages == [("error", "the model broke at this step")]
    assert view.status.text() == "the model broke at this step" and _result(view) is None
    button = view.generate if cls is MemoriseView else view.button
    assert button.text() == BUTTONS[cls] and not view.busy
    broken.broken = False
    assert view.start()
    finish(qtbot, view)
    assert _result(view) is not None and len(messages) == 1 and "broke" not in view.status.text()


# ----------------------------------------------------------------------------- the window
class Slow(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, t):
        time.sleep(0.02)
        return self.inner(x, t)


LONG_T = 1000  # every tab's longest job on it: > 20 s of 20 ms model calls unless cancelled between calls


def start_every_tabs_longest_job(w, model, dataset, schedule):
    """Bound over all T, every sampler with DDPM over all T, memorisation and SDEdit over 1,000 steps, and the
    2D tab's sampler comparison on 10,000 points (DDPM with T steps first), each model call 20 ms or more."""
    from diffview.core.models.mlp import build_mlp

    for view in w.analysis_views:
        wire(view, Slow(model), schedule, dataset)
    w.bound_view.all_t.setChecked(True)
    w.compare_view.n.setValue(2)
    w.memorise_view.steps.setValue(LONG_T)
    w.sdedit_view.t_spin.setValue(w.sdedit_view.t_spin.maximum())
    w.sdedit_view.steps.setValue(w.sdedit_view.steps.maximum())
    w.sdedit_view.sampler.setCurrentText("DDPM")
    assert w.bound_view.start() and w.compare_view.start() and w.memorise_view.start() and w.sdedit_view.start()
    torch.manual_seed(0)
    w.lab2d_view.session.set_model(Slow(build_mlp("mlp-tiny").eval()), schedule, "v")
    w.lab2d_view.session.compare_samplers()


def test_window_has_the_tabs_and_closing_mid_computation_stops_every_worker(qtbot, qtlog, tmp_path, model,
                                                                              dataset):
    folder = write_image_folder(tmp_path / "imgs", n=4, size=12)
    w = MainWindow(source=str(folder), runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.dataset is not None and not w._tasks, timeout=30_000)
    names = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    at = names.index("Sampling")
    assert names[at + 1:at + 8] == ["Bound", "Loss from the bound", "Samplers", "Guidance", "Memorisation",
                                    "Noise && denoise", "Inversion"]
    assert w.bound_view.model_source == w.model_source and w.bound_view.current_model() is None
    assert "No model yet" in w.bound_view.status.text()
    qtbot.waitUntil(lambda: not running_threads(), timeout=30_000)  # the 2D tab's first score field
    start_every_tabs_longest_job(w, model, dataset, make_schedule("cosine", LONG_T))
    qtbot.wait(300)
    assert len(running_threads()) == 5, running_threads()
    t0 = time.perf_counter()
    w.close()
    elapsed = time.perf_counter() - t0
    assert running_threads() == [] and elapsed < 2.0, f"closing took {elapsed:.2f} s"
    assert not [r for r in qtlog.records if "QThread" in r.message]


CLOSE_MID_JOBS = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from diffview.core.data.images import ImageDataset
from diffview.core.schedule import make_schedule
from diffview.core.models.unet import build_unet
from diffview.gui.main_window import MainWindow
from diffview.gui.workers.threads import running_threads
from test_views import LONG_T, start_every_tabs_longest_job
app = QApplication([])
w = MainWindow(source=sys.argv[1], runs_root=sys.argv[2])
w.show()
torch.manual_seed(0)
model = build_unet("tiny", 1, 8).eval()
dataset = ImageDataset(torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8))
def close():
    print("running", len(running_threads()), flush=True)
    t0 = time.perf_counter()
    w.close()
    print("closed in", round(time.perf_counter() - t0, 3), flush=True)
def start():
    if w.dataset is None or w._tasks or running_threads():
        QTimer.singleShot(50, start); return
    start_every_tabs_longest_job(w, model, dataset, make_schedule("cosine", LONG_T))
    QTimer.singleShot(300, close)
QTimer.singleShot(0, start)
code = app.exec()
print("exit", code)
sys.exit(code)
"""


def test_closing_the_app_mid_jobs_exits_zero_within_2_s_without_qt_thread_warnings(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = write_image_folder(tmp_path / "imgs", n=4, size=12)
    env = dict(os.environ, DIFFVIEW_CACHE_DIR=str(tmp_path / "cache"), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", CLOSE_MID_JOBS, str(folder), str(tmp_path / "runs"),
                        str(Path(__file__).parent)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert "running 5" in lines and "exit 0" in lines, r.stdout
    closed = float(next(line for line in lines if line.startswith("closed in")).split()[-1])
    assert closed < 2.0, r.stdout
    assert "QThread" not in r.stderr and "Traceback" not in r.stderr, r.stderr
