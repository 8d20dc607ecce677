"""Class-conditional training in the app: the settings' Conditional and p(∅), the Training tab's one row per
class, and an opened conditional run's setting and classes in the tabs."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from helpers import tiny_config, write_image_folder  # noqa: E402

from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.train.events import PreviewEvent  # noqa: E402
from diffview.core.train.trainer import Trainer  # noqa: E402
from diffview.gui.settings_panel import SettingsPanel  # noqa: E402
from diffview.gui.views.training import PREVIEW_TITLE, TrainingView, preview_title  # noqa: E402


def labelled_squares(n: int = 16) -> ImageDataset:
    """A bright square at the top left (class "tl") or the bottom right ("br") of an 8×8 image."""
    imgs = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    for i in range(n):
        o = 1 if labels[i] == 0 else 4
        imgs[i, 0, o:o + 3, o:o + 3] = 255
    return ImageDataset(imgs, labels=labels, class_names=["tl", "br"])


# ----------------------------------------------------------------------------- the settings panel
def test_conditional_and_its_dropout_map_into_the_train_config(qtbot):
    s = SettingsPanel()
    qtbot.addWidget(s)
    assert not s.config().conditional and s.cond_dropout.value() == pytest.approx(0.1)
    assert (s.cond_dropout.minimum(), s.cond_dropout.maximum()) == (0.0, 0.5)
    s.set_classes(("0", "1"))
    assert s.conditional.isEnabled() and not s.cond_dropout.isEnabled()  # p(∅) only for a conditional run
    assert "Ho & Salimans 2021" in s.conditional.toolTip()
    s.conditional.setChecked(True)
    s.cond_dropout.setValue(0.25)
    assert s.cond_dropout.isEnabled()
    cfg = s.config()
    assert cfg.conditional and cfg.cond_dropout == pytest.approx(0.25)
    s.set_state("running")  # settings are fixed while training
    assert not s.conditional.isEnabled() and not s.cond_dropout.isEnabled()
    s.set_state("idle")
    assert s.conditional.isEnabled() and s.cond_dropout.isEnabled()
    s.conditional.setChecked(False)
    assert not s.config().conditional and not s.cond_dropout.isEnabled()


def test_data_without_classes_turns_conditional_off_and_says_why(qtbot):
    s = SettingsPanel()
    qtbot.addWidget(s)
    s.set_classes(("a", "b"))
    s.conditional.setChecked(True)
    s.set_classes(())
    assert not s.conditional.isChecked() and not s.conditional.isEnabled() and not s.config().conditional
    assert "no classes" in s.conditional.toolTip()
    s.set_config(tiny_config(conditional=True, cond_dropout=0.3))  # a run's own setting shows as it was
    assert s.conditional.isChecked() and s.cond_dropout.value() == pytest.approx(0.3)


# ----------------------------------------------------------------------------- the training tab's preview
def test_a_conditional_preview_is_drawn_one_row_per_class(qtbot):
    data = labelled_squares()
    events = list(Trainer(tiny_config(conditional=True, steps=2, preview_every=2, preview_n=4, guidance_scale=2.5),
                          dataset=data).run())
    ev = next(e for e in events if isinstance(e, PreviewEvent))
    assert ev.nrow == 4 and ev.labels.tolist() == [0] * 4 + [1] * 4 and ev.guidance_scale == 2.5
    view = TrainingView()
    qtbot.addWidget(view)
    view.session = SimpleNamespace(model_class_names=lambda: ("tl", "br"))
    view.add_preview(ev)
    h, w = ev.images.shape[-2:]
    grid = view.preview.current_array()
    assert grid.shape[:2] == (2 * (h + 1) + 1, 4 * (w + 1) + 1)  # 2 classes: 2 rows of 4
    assert view.preview.title.text == "one row per class (tl, br), guided at S = 2.5"

    plain = PreviewEvent(3, ev.images, "ddim", 5, 0.1, None)  # unconditional: a square grid, the plain title
    view.add_preview(plain)
    assert view.preview.current_array().shape[:2] == (3 * (h + 1) + 1, 3 * (w + 1) + 1)
    assert view.preview.title.text == PREVIEW_TITLE


def test_the_preview_title_names_the_rows_and_s():
    images = np.zeros((40, 1, 4, 4), np.uint8)
    ev = PreviewEvent(1, images, "ddim", 5, 0.1, None, nrow=4, labels=np.repeat(np.arange(10), 4), guidance_scale=3.0)
    assert preview_title(ev) == "one row per class (0 … 9), guided at S = 3"
    names = tuple("abcdefghij")
    assert preview_title(ev, names) == "one row per class (a … j), guided at S = 3"
    # an opened run's saved grid: no labels, the session's names
    saved = PreviewEvent(1, images[:1], "ddim", 5, 0.0, None, guidance_scale=1.5)
    assert preview_title(saved, ("x", "y")) == "one row per class (x, y), guided at S = 1.5"
    assert preview_title(PreviewEvent(1, images, "ddim", 5, 0.1, None), names) == PREVIEW_TITLE


# ----------------------------------------------------------------------------- the app
def test_the_app_offers_conditional_only_for_data_with_classes(qtbot, window, tmp_path):
    s = window.settings
    assert window.dataset.class_names and s.conditional.isEnabled()  # the built-in digits: 0 … 9
    s.conditional.setChecked(True)
    assert s.config().conditional
    folder = write_image_folder(tmp_path / "plain", n=6, size=12)  # images, no class subfolders
    window.load_source(str(folder))
    qtbot.waitUntil(lambda: window.report.source == str(folder) and not window._tasks, timeout=30_000)
    assert not s.conditional.isEnabled() and not s.conditional.isChecked() and not s.config().conditional


def test_an_opened_conditional_run_shows_its_setting_and_its_classes_in_the_tabs(qtbot, window, tmp_path):
    folder = tmp_path / "classes"
    for name in ("cat", "dog"):
        write_image_folder(folder / name, n=4, size=12)
    run = tmp_path / "run"
    list(Trainer(tiny_config(dataset=str(folder), conditional=True, cond_dropout=0.2, steps=2, checkpoint_every=2,
                             preview_every=2), run).run())
    for view in (window.compare_view, window.memorise_view, window.sdedit_view):
        assert not view.guidance.isEnabled()  # the untrained app: no model, no classes yet
    window.open_run_folder(str(run))
    qtbot.waitUntil(lambda: not window.opener.busy and not window._tasks, timeout=30_000)
    s = window.settings
    assert s.conditional.isChecked() and s.conditional.isEnabled() and s.cond_dropout.value() == pytest.approx(0.2)
    for view in (window.compare_view, window.memorise_view, window.sdedit_view):
        assert view.guidance.isEnabled() and view.guidance.class_names == ("cat", "dog")
    window.tabs.setCurrentWidget(window.training_view)
    assert window.training_view.preview.title.text.startswith("one row per class (cat, dog), guided at S = 3")


def test_the_sessions_class_names_follow_what_the_tabs_would_sample(qtbot, tmp_path):
    from diffview.gui.session import AppSession

    folder = tmp_path / "classes"
    for name in ("cat", "dog"):
        write_image_folder(folder / name, n=4, size=12)
    chosen = {"conditional": True}
    session = AppSession(lambda: tiny_config(dataset=str(folder), steps=3, **chosen), tmp_path / "runs")
    try:
        assert session.model_class_names() is None  # nothing to sample yet
        session.load_source(str(folder))
        qtbot.waitUntil(lambda: session.dataset is not None and not session.tasks, timeout=30_000)
        session.start_training()  # a new run: its data's names, before the trainer records them on its worker
        assert session.model_class_names() == ("cat", "dog")
        qtbot.waitUntil(lambda: not session.training, timeout=60_000)
        assert session.model_class_names() == ("cat", "dog") == session.model_source(deferred=True).class_names
        chosen["conditional"] = False
        session.start_training()
        assert session.model_class_names() == ()
        qtbot.waitUntil(lambda: not session.training, timeout=60_000)
    finally:
        if session.training:
            session.controller.stop()
            session.controller.wait()
        session.shutdown()
        qtbot.wait(50)
