"""The Data tab shows a dataset's classes with their counts, and its class warnings with the others."""

import numpy as np
import pytest
from PIL import Image

from diffview.core.data.images import load_image_folder
from diffview.core.data.source import load_source

pytest.importorskip("pytestqt")


@pytest.fixture
def view(qtbot):
    from diffview.gui.views.data import DataView

    v = DataView()
    qtbot.addWidget(v)
    v.show()
    return v


def _table(view):
    return [(view.classes.item(r, 0).text(), view.classes.item(r, 1).text()) for r in range(view.classes.rowCount())]


def test_the_data_view_lists_the_classes_and_their_warnings(view, tmp_path):
    for name, value in (("cats/a.png", 10), ("cats/b.png", 20), ("dogs/c.png", 30), ("root.png", 40)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8), value, np.uint8), mode="L").save(tmp_path / name)
    data, report = load_image_folder(tmp_path, image_size=8)
    view.set_dataset(data.preview(100).numpy(), report)
    assert _table(view) == [("cats", "2"), ("dogs", "1")] and view.classes.isVisible()
    assert view.classes_title.text() == "2 classes (1 image without a class)"
    assert view.warning.isVisible()
    warnings = view.warning.text()
    assert "lies directly in the root of a folder of classes" in warnings and "hardly learn" in warnings


def test_the_data_view_says_when_there_are_no_classes(view, tmp_path):
    data, report = load_source("digits", n=2000, cache_dir=tmp_path)
    view.set_dataset(data.preview(100).numpy(), report)
    assert view.classes_title.text() == "10 classes"
    assert _table(view)[0] == ("0", "200") and len(_table(view)) == 10 and not view.warning.isVisible()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i, np.uint8), mode="L").save(tmp_path / f"{i}.png")
    data, report = load_image_folder(tmp_path, image_size=8)
    view.set_dataset(data.preview(100).numpy(), report)
    assert view.classes_title.text() == "No classes (unlabelled)"
    assert view.classes.rowCount() == 0 and not view.classes.isVisible()
