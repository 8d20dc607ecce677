"""The app remembers across launches (QSettings): geometry, panels, the settings panel, each tab's controls, the
current tab and the recent list; a bad store never stops it; Restore defaults; Open Recent; the reopen bar."""

import os

import pytest
import torch
from helpers import square_dataset, tiny_config, write_image_folder

from diffview.core.train.trainer import Trainer
from diffview.gui.persistence import SETTINGS_ENV, AppMemory, find_controls


def launch(qtbot, tmp_path, source=None):
    from diffview.gui.main_window import MainWindow

    w = MainWindow(source, runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.dataset is not None and not w._tasks, timeout=60_000)
    return w


def close(qtbot, w):
    w.opener.cancel_and_wait()
    w.close()
    qtbot.waitUntil(lambda: not w.isVisible())


def log_text(w) -> str:
    return w.log.toPlainText()


def test_two_launches_share_panels_settings_tab_controls_the_tab_the_data_and_recent(qtbot, tmp_path):
    folder = write_image_folder(tmp_path / "imgs")
    w1 = launch(qtbot, tmp_path)
    w1.resize(1111, 777)
    w1.settings.lr.setValue(0.00037)
    w1.settings.objective.setCurrentText("eps")
    w1.sampling_view.steps.setValue(17)
    w1.forward_view.set_timestep(432)
    w1.log_dock.hide()
    w1.session.load_source(str(folder))
    qtbot.waitUntil(lambda: w1.settings.dataset_source() == str(folder) and not w1._tasks, timeout=60_000)
    w1.tabs.setCurrentWidget(w1.schedule_view)
    close(qtbot, w1)

    w2 = launch(qtbot, tmp_path)
    assert w2.settings.lr.value() == pytest.approx(0.00037)
    assert w2.settings.objective.currentText() == "eps"
    assert w2.settings.config().objective == "eps"  # what Train would use, not only what is shown
    assert w2.sampling_view.steps.value() == 17
    assert w2.forward_view.t == 432
    assert not w2.log_dock.isVisible() and w2.settings_dock.isVisible()
    assert w2.tabs.currentWidget() is w2.schedule_view
    assert w2.settings.dataset_source() == str(folder)  # the data last used is loaded again
    recent = w2.memory.store.recent()
    assert [(r.path, r.kind) for r in recent] == [(str(folder.resolve()), "folder")]
    close(qtbot, w2)


GEOMETRY = """
import sys
from PySide6.QtWidgets import QApplication
from diffview.gui.main_window import MainWindow
app = QApplication([])
w = MainWindow(runs_root=sys.argv[1])
w.show()
app.processEvents()
if sys.argv[2] == "first":
    w.setGeometry(150, 120, 1234, 777)
    app.processEvents()
w.opener.cancel_and_wait()
print(w.geometry().x(), w.geometry().y(), w.width(), w.height(), flush=True)
w.close()
"""


def test_the_window_opens_where_and_as_large_as_it_was_closed(tmp_path):
    """In a process of its own, on a 1920 × 1200 screen (the suite's offscreen screen is 800 × 800, and Qt
    rightly fits a restored window to the screen it opens on)."""
    import subprocess
    import sys

    screen = tmp_path / "screen.json"
    screen.write_text('{"screens": [{"name": "s", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96}]}')
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    shown = []
    for which in ("first", "second"):
        r = subprocess.run([sys.executable, "-c", GEOMETRY, str(tmp_path / "runs"), which], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        shown.append(r.stdout.split())
    assert shown[0] == ["150", "120", "1234", "777"]
    assert shown[1] == shown[0]


def test_every_control_of_the_settings_and_of_each_tab_is_remembered(qtbot, window):
    keys = window.memory.controls
    assert {"Settings/lr", "Settings/steps", "Settings/device", "Settings/tensorboard", "Sampling/eta",
            "Sampling/seed", "Forward process/slider"} <= set(keys), sorted(keys)
    tabs = {k.split("/")[0] for k in keys}
    # every tab with controls of its own has them remembered (the Data and Training tabs have none to keep)
    for i in range(window.tabs.count()):
        view, name = window.tabs.widget(i), window.tabs.tabText(i).replace("&&", "&")
        if find_controls(view, ""):
            assert name in tabs, name
    assert "Settings/dataset" not in keys  # given back as the data loaded at start


def test_a_corrupt_settings_file_never_stops_the_app_and_says_so(qtbot, tmp_path):
    path = tmp_path / "settings.ini"
    assert os.environ[SETTINGS_ENV] == str(path)
    path.write_bytes(b"\x00\xff[general\x00 garbage=\xfe\x01\n[[[\n" * 50)
    w = launch(qtbot, tmp_path)
    assert "starting from the defaults" in log_text(w)
    assert w.settings.lr.value() == pytest.approx(w.memory.defaults["Settings/lr"])
    close(qtbot, w)
    assert AppMemory(str(path)).problem is None  # closing wrote a good store over it


def test_values_that_no_longer_fit_fall_back_to_the_defaults_with_a_log_line(qtbot, tmp_path):
    m = AppMemory()
    m.save_controls({"Settings/device": "cuda", "Settings/objective": "no-such-objective", "Settings/steps": -5,
                     "Sampling/steps": "many", "Settings/conditional": "yes"})
    m.set_value("source", str(tmp_path / "gone"))
    m.sync()
    w = launch(qtbot, tmp_path)
    defaults = w.memory.defaults
    if not torch.cuda.is_available():
        assert w.settings.device.currentText() == defaults["Settings/device"]
        assert "The device last used, cuda, is not present" in log_text(w)
    assert w.settings.objective.currentText() == defaults["Settings/objective"]
    assert w.settings.steps.value() == defaults["Settings/steps"]
    assert w.sampling_view.steps.value() == defaults["Sampling/steps"]
    assert f"The data last used, {tmp_path / 'gone'}, is no longer there" in log_text(w)
    assert w.settings.dataset_source() == "digits"
    close(qtbot, w)


def test_restore_defaults_resets_controls_and_panels_and_keeps_the_recent_list(qtbot, tmp_path):
    w = launch(qtbot, tmp_path)
    w.memory.store.add_recent(str(tmp_path), "folder")
    defaults = dict(w.memory.defaults)
    w.settings.batch.setValue(7)
    w.sampling_view.seed.setValue(99)
    w.log_dock.hide()
    w.restore_defaults()
    assert w.settings.batch.value() == defaults["Settings/batch"]
    assert w.sampling_view.seed.value() == defaults["Sampling/seed"]
    assert w.log_dock.isVisible()
    assert w.memory.store.stored_controls() == {}
    assert [r.path for r in w.memory.store.recent()] == [str(tmp_path.resolve())]
    close(qtbot, w)


@pytest.fixture
def run_folder(tmp_path):
    run = tmp_path / "runs" / "a-run"
    list(Trainer(tiny_config(steps=2, checkpoint_every=2), run, dataset=square_dataset()).run())
    return run


def test_open_recent_lists_kinds_marks_missing_ones_and_opens_a_run(qtbot, tmp_path, run_folder):
    from diffview.gui.menus import fill_recent

    w = launch(qtbot, tmp_path)
    memory = w.memory.store
    memory.add_recent(str(tmp_path / "vanished"), "folder")
    memory.add_recent(str(run_folder), "run")
    fill_recent(w)
    texts = [a.text() for a in w.recent_menu.actions()]
    assert texts[0] == "a-run  (diffview run)"
    assert texts[1] == "vanished  (image folder)  — missing"
    remove = next(a for a in w.recent_menu.actions() if a.text() == "Remove Missing Entries")
    assert remove.isEnabled()
    w.recent_menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: w.loaded_run is not None, timeout=60_000)
    assert w.loaded_run.root == run_folder
    remove.trigger()
    assert [r.path for r in memory.recent()] == [str(run_folder)]
    close(qtbot, w)


def test_launching_with_no_argument_offers_to_reopen_the_last_run_in_a_bar(qtbot, tmp_path, run_folder):
    m = AppMemory()
    m.add_recent(str(run_folder), "run")
    w = launch(qtbot, tmp_path)
    assert w.notice.isVisible() and "a-run" in w.notice.text.text()
    assert w.loaded_run is None  # offered, not done: the bar waits for the person
    w.notice.button.click()
    qtbot.waitUntil(lambda: w.loaded_run is not None, timeout=60_000)
    assert not w.notice.isVisible()
    close(qtbot, w)
    w2 = launch(qtbot, tmp_path, source="digits")  # a source given: nothing offered
    assert not w2.notice.isVisible()
    close(qtbot, w2)


def test_file_dialogs_start_in_the_folder_the_last_one_ended_in_across_launches(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    folder = write_image_folder(tmp_path / "pictures" / "cats")
    asked = []

    def choose(parent, caption, start="", *rest):
        asked.append(start)
        return str(folder)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", choose)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda parent, caption, start, *rest: (asked.append(start)
                                                                                              or ("", "")))
    w = launch(qtbot, tmp_path)
    w.open_folder_dialog()
    qtbot.waitUntil(lambda: w.settings.dataset_source() == str(folder) and not w._tasks, timeout=60_000)
    close(qtbot, w)
    w2 = launch(qtbot, tmp_path)
    w2.open_run_dialog()
    w2.sdedit_view.open_button.click()
    assert asked[1] == str(folder.parent)  # the next launch's run dialog starts where the folder dialog ended
    assert asked[2] == str(folder.parent)  # and so does an image file's
    w2.opener.cancel_and_wait()
    close(qtbot, w2)


def test_tab_controls_are_restored_within_the_restored_t_and_the_data_s_range(qtbot, tmp_path):
    m = AppMemory()
    m.save_controls({"Settings/timesteps": 2000, "Forward process/slider": 1500, "Noise & denoise/index": 5,
                     "Inversion/index": 7})
    m.sync()
    w = launch(qtbot, tmp_path)
    assert w.schedule.timesteps == 2000
    assert w.forward_view.t == 1500  # beyond the 999 a fresh slider allows: T came first
    assert w.sdedit_view.index.value() == 5 and w.inversion_view.index.value() == 7  # once the data was there
    close(qtbot, w)


def test_restore_defaults_keeps_an_open_run_s_settings_and_is_refused_while_training(qtbot, tmp_path, run_folder,
                                                                                     monkeypatch):
    w = launch(qtbot, tmp_path)
    w.session.open_run_folder(str(run_folder))
    qtbot.waitUntil(lambda: w.loaded_run is not None and not w._tasks, timeout=60_000)
    run_t = w.loaded_run.config.timesteps
    assert run_t != w.memory.defaults["Settings/timesteps"]
    w.restore_defaults()
    assert w.settings.timesteps.value() == run_t and w.schedule.timesteps == run_t  # the run's, not the defaults
    assert w.settings.config().objective == w.loaded_run.config.objective
    monkeypatch.setattr(type(w.session), "training", property(lambda s: True))
    w.settings.batch.setValue(3)
    w.restore_defaults()
    assert w.settings.batch.value() == 3 and "Stop training before restoring the defaults" in log_text(w)
    monkeypatch.undo()
    close(qtbot, w)


def test_a_hand_edited_byte_value_is_ignored(tmp_path):
    import json

    m = AppMemory()
    m.qs.setValue("bytes/geometry", json.dumps("\u00e9t\u00e9"))
    m.qs.setValue("bytes/state", "not json at all")
    assert m.stored_bytes("geometry") is None and m.stored_bytes("state") is None
