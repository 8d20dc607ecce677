"""The application session (gui/session.py): what the app has open and its change signals, without widgets."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("pytestqt")

from helpers import tiny_config, write_image_folder  # noqa: E402

from diffview.gui.session import AppSession  # noqa: E402

SIGNALS = ("message", "data_changed", "schedule_changed", "model_changed", "run_opened", "opening",
           "trainable_changed", "run_status", "history_reset", "training_started", "training_finished")


class Recorder:
    """Every signal the session emits, in order, as (name, args)."""

    def __init__(self, session):
        self.events = []
        for name in SIGNALS:
            getattr(session, name).connect(lambda *args, name=name: self.events.append((name, args)))

    def names(self, skip=("message",)):
        return [name for name, _ in self.events if name not in skip]

    def args(self, name):
        return [args for n, args in self.events if n == name]

    def texts(self, level):
        return [text for lv, text in self.args("message") if lv == level]


@pytest.fixture
def make_session(qtbot, tmp_path):
    made = []

    def make(**config):
        session = AppSession(lambda: tiny_config(**config), tmp_path / "runs")
        made.append(session)
        return session, Recorder(session)

    yield make
    for session in made:
        if session.training:
            session.controller.stop()
            session.controller.wait()
        session.shutdown()
    qtbot.wait(50)


def idle(qtbot, session):
    qtbot.waitUntil(lambda: not session.tasks and not session.opener.busy and not session.training, timeout=60_000)


def test_loading_data_fires_data_changed_for_the_newest_load_only(qtbot, make_session, tmp_path):
    a = write_image_folder(tmp_path / "a", n=7, size=12)
    b = write_image_folder(tmp_path / "b", n=5, size=12)
    session, rec = make_session()
    session.load_source(str(a))
    session.load_source(str(b))  # supersedes a: a's result, when it comes, is dropped
    idle(qtbot, session)
    assert rec.args("data_changed") == [(str(b),)]
    assert session.report.source == str(b) and session.report.used == 5 and len(session.dataset) == 5
    assert session.preview.shape == (5, 1, 8, 8)  # the images as the model sees them, at the config's size
    assert rec.texts("info")[-1] == session.report.summary().splitlines()[0]


def test_a_failed_load_is_an_error_message_and_the_data_stays(qtbot, make_session, tmp_path):
    session, rec = make_session()
    session.load_source(str(write_image_folder(tmp_path / "a", n=4, size=12)))
    idle(qtbot, session)
    (tmp_path / "empty").mkdir()
    session.load_source(str(tmp_path / "empty"))
    idle(qtbot, session)
    assert len(rec.args("data_changed")) == 1 and session.report.used == 4
    assert any("holds no image files" in text for text in rec.texts("error"))


def test_the_schedule_follows_the_config_and_an_impossible_one_keeps_the_last(make_session):
    session, rec = make_session(schedule="cosine", timesteps=50)
    session.update_schedule()
    (schedule,) = [args[0] for args in rec.args("schedule_changed")]
    assert schedule is session.schedule and (schedule.name, schedule.timesteps) == ("cosine", 50)
    session.config = lambda: tiny_config(schedule="linear", timesteps=20)  # the scaled β_end would be 1.0
    session.update_schedule()
    assert len(rec.args("schedule_changed")) == 1 and session.schedule is schedule
    assert any("beta_end must lie in (0, 1)" in text for text in rec.texts("error"))


def test_train_refuses_without_data_and_says_why(make_session):
    session, rec = make_session()
    session.start_training()
    assert not session.training and session.trainer is None
    assert rec.names() == [] and rec.texts("error") == ["No dataset is loaded yet: choose one in Settings ▸ Data."]


def test_training_fires_started_then_finished_and_the_views_can_sample_the_trainer(qtbot, make_session, tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=8, size=12)
    session, rec = make_session(dataset=str(folder), steps=3)
    session.load_source(str(folder))
    idle(qtbot, session)
    steps = []
    session.controller.steps.connect(lambda events: steps.extend(ev.step for ev in events))
    with qtbot.waitSignal(session.training_finished, timeout=60_000) as finished:
        session.start_training()
        assert session.training
    assert rec.names() == ["data_changed", "history_reset", "run_status", "training_started", "training_finished"]
    assert rec.args("history_reset") == [(50,)] and rec.args("training_started") == [(session.trainer,)]
    assert rec.args("run_status") == [(f"run: {session.run_dir}",)] and session.run_dir.parent == tmp_path / "runs"
    assert finished.args[0].reason == "finished" and steps == [1, 2, 3] and session.trainer.step == 3
    assert session.model_source(ema=True) is None  # the first copy of the weights is being taken on a worker
    qtbot.waitUntil(lambda: session.model_source(ema=True) is not None, timeout=30_000)
    handle = session.model_source(ema=True)
    assert (handle.shape.channels, handle.shape.size, handle.label) == (1, 8, "the training run at step 3")


def test_opening_a_run_fires_its_model_schedule_history_and_data_then_resuming_closes_it(qtbot, make_session,
                                                                                        tmp_path):
    from diffview.core.train.trainer import Trainer

    folder = write_image_folder(tmp_path / "imgs", n=8, size=12)
    run = tmp_path / "run"
    list(Trainer(tiny_config(dataset=str(folder), steps=2, checkpoint_every=2), run).run())
    session, rec = make_session(steps=4)
    session.open_run_folder(str(run))
    assert session.opener.busy and rec.names() == ["opening", "run_status"]
    idle(qtbot, session)
    assert rec.names(skip=("message", "run_status")) == ["opening", "trainable_changed", "model_changed",
                                                         "schedule_changed", "history_reset", "run_opened",
                                                         "data_changed"]
    status = [args[0] for args in rec.args("run_status")]  # then the worker's progress, then the run
    assert status[0] == f"opening {run}…" and status[-1] == f"run: {run}" and len(status) >= 3
    assert all(text.startswith(f"opening {run}: ") for text in status[1:-1])
    (opened,) = [args[0] for args in rec.args("run_opened")]
    assert session.loaded_run is opened.run and rec.args("model_changed") == [(opened.run,)]
    assert [row["step"] for row in opened.metrics] == [1, 2] and rec.args("trainable_changed") == [(True,)]
    assert rec.args("data_changed") == [(str(folder),)] and session.run_dir == run
    assert session.model_source().label == "run at step 2"
    rec.events.clear()
    with qtbot.waitSignal(session.training_finished, timeout=60_000):
        session.start_training()  # resumes the opened run, to the config's 4 steps
    assert session.trainer.step == 4 and session.run_dir == run and session.loaded_run is None
    assert rec.names() == ["run_status", "training_started", "model_changed", "training_finished"]
    assert rec.args("model_changed") == [(None,)]  # the live trainer is what the views sample now


WIDGET_FREE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from PySide6.QtCore import QCoreApplication
from helpers import tiny_config
from diffview.gui.session import AppSession
app = QCoreApplication([])  # no QApplication: making any widget would abort the process
folder, runs = sys.argv[1], sys.argv[2]
session = AppSession(lambda: tiny_config(dataset=folder, steps=2), runs)
seen = []
for name in ("data_changed", "schedule_changed", "model_changed", "run_opened", "training_started",
             "training_finished"):
    getattr(session, name).connect(lambda *args, name=name: seen.append(name))
def wait(done):
    deadline = time.monotonic() + 120
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
session.update_schedule()
session.load_source(folder)
wait(lambda: session.dataset is not None and not session.tasks)
session.start_training()
wait(lambda: "training_finished" in seen)
session.open_run_folder(str(session.run_dir))
wait(lambda: "run_opened" in seen and not session.tasks and not session.opener.busy)
session.shutdown()
print(json.dumps({"seen": seen, "step": session.loaded_run.step,
                  "widgets": sorted(m for m in sys.modules if m.startswith("PySide6.QtWidgets") or
                                    m.startswith("PySide6.QtGui") or m.startswith("pyqtgraph"))}))
"""


def test_the_session_opens_loads_and_trains_with_no_widget_at_all(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=8, size=12)
    tests = os.path.dirname(__file__)
    env = dict(os.environ, DIFFVIEW_CACHE_DIR=str(tmp_path / "cache"), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", WIDGET_FREE, str(folder), str(tmp_path / "runs"), tests],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["widgets"] == []  # nothing of QtWidgets, QtGui or pyqtgraph was even imported
    assert out["seen"] == ["schedule_changed", "data_changed", "training_started", "training_finished",
                           "model_changed", "schedule_changed", "run_opened", "data_changed"]
    assert out["step"] == 2
