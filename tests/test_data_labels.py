"""Class labels for image datasets: folders of class subfolders, the streamed dataset, the built-ins, the reports,
and the labels module's checks."""

import os

import numpy as np
import pytest
import torch
from helpers import write_image_folder
from PIL import Image

from diffview.core.data.builtin import BUILTIN_DATASETS, CLASS_NAMES, SHAPE_NAMES, load_builtin
from diffview.core.data.images import DatasetReport, ImageDataset, StreamingImageDataset, load_image_folder
from diffview.core.data.labels import (
    FEW_PER_CLASS,
    WHAT_GIVES_LABELS,
    check_labels,
    class_counts,
    classes_summary,
    few_per_class_warning,
    index_classes,
    labelled_indices,
)
from diffview.core.data.source import load_source
from diffview.core.data.toy2d import TOY_CLASS_NAMES

ROOT_WARNING = "lie directly in the root of a folder of classes"


def _png(path, value: int, size: int = 8):
    """A flat gray PNG whose one pixel value says which file it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8), mode="L").save(path)


def _classes_folder(root):
    """cats/a.png, cats/sub/b.png, dogs/c.png and root.png, each a distinct gray: {pixel value: expected label}."""
    files = {"cats/a.png": (10, 0), "cats/sub/b.png": (20, 0), "dogs/c.png": (30, 1), "root.png": (40, -1)}
    for name, (value, _) in files.items():
        _png(root / name, value)
    return {value: label for value, label in files.values()}


def _labels_by_pixel(data):
    pixels = data.images_uint8(range(len(data)))[:, 0, 0, 0].tolist()
    return dict(zip(pixels, data.labels.tolist()))


def test_first_level_subfolders_are_the_classes(tmp_path):
    expected = _classes_folder(tmp_path / "pets")
    data, report = load_image_folder(tmp_path / "pets", image_size=8)
    assert data.class_names == ("cats", "dogs")
    assert data.labels.dtype == torch.int64 and len(data.labels) == len(data) == 4
    assert _labels_by_pixel(data) == expected  # each label belongs to its own file, the root image has −1
    assert report.classes == [("cats", 2), ("dogs", 1)]
    assert any("1 image lies directly in the root of a folder of classes" in w and "skipped when training a "
               "conditional model" in w for w in report.warnings)
    assert "2 classes: cats (2), dogs (1); 1 image without a class." in report.summary().splitlines()
    assert labelled_indices(data).tolist() == [i for i, label in enumerate(data.labels.tolist()) if label >= 0]


def test_several_root_images_are_counted_in_the_warning(tmp_path):
    _classes_folder(tmp_path)
    _png(tmp_path / "also_root.png", 50)
    _png(tmp_path / "third_root.png", 60)
    _, report = load_image_folder(tmp_path, image_size=8)
    assert any(w.startswith(f"3 images {ROOT_WARNING}: they have no class and are skipped") for w in report.warnings)


def test_a_flat_folder_has_no_classes(tmp_path):
    data, report = load_image_folder(write_image_folder(tmp_path / "flat", n=5), image_size=8)
    assert data.labels is None and data.class_names == () and report.classes == []
    assert not any(ROOT_WARNING in w for w in report.warnings) and "class" not in report.summary()
    with pytest.raises(ValueError, match="has no class labels: a folder of images gives"):
        labelled_indices(data)
    assert class_counts(data) == []


def test_a_subfolder_without_images_is_no_class(tmp_path):
    _png(tmp_path / "cats" / "a.png", 1)
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    data, report = load_image_folder(tmp_path, image_size=8)
    assert data.class_names == ("cats",) and data.labels.tolist() == [0] and report.classes == [("cats", 1)]


def test_a_corrupt_file_in_a_class_folder_does_not_shift_labels(tmp_path):
    expected = _classes_folder(tmp_path)
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # sorts before sub/b.png
    (tmp_path / "aardvarks").mkdir()
    (tmp_path / "aardvarks" / "empty.png").write_bytes(b"")  # a class whose only file cannot be used
    data, report = load_image_folder(tmp_path, image_size=8)
    assert len(report.skipped) == 2 and len(data) == 4
    assert data.class_names == ("aardvarks", "cats", "dogs")
    assert _labels_by_pixel(data) == {v: (label + 1 if label >= 0 else -1) for v, label in expected.items()}
    assert report.classes == [("aardvarks", 0), ("cats", 2), ("dogs", 1)]


def test_the_streamed_dataset_has_the_same_labels(tmp_path):
    _classes_folder(tmp_path)
    (tmp_path / "dogs" / "bad.png").write_bytes(b"junk")
    memory, report = load_image_folder(tmp_path, image_size=8)
    streamed, streamed_report = load_image_folder(tmp_path, image_size=8, max_memory_bytes=1)
    assert isinstance(memory, ImageDataset) and isinstance(streamed, StreamingImageDataset)
    assert torch.equal(streamed.labels, memory.labels) and streamed.class_names == memory.class_names
    assert _labels_by_pixel(streamed) == _labels_by_pixel(memory)
    assert streamed_report.classes == report.classes
    assert load_source(str(tmp_path), image_size=8)[0].class_names == ("cats", "dogs")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlinked_class_folder_is_a_class_and_a_repeat_is_not(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    _png(elsewhere / "x.png", 70)
    root = tmp_path / "root"
    _png(root / "cats" / "a.png", 10)
    try:
        os.symlink(elsewhere, root / "birds")
        os.symlink(root / "cats", root / "zz_cats_again")  # already visited: find_image_files skips it
    except OSError:
        pytest.skip("cannot create symlinks here")
    data, _ = load_image_folder(root, image_size=8)
    assert data.class_names == ("birds", "cats") and _labels_by_pixel(data) == {70: 0, 10: 1}


def test_a_small_class_is_warned_about(tmp_path):
    for i in range(FEW_PER_CLASS):
        _png(tmp_path / "many" / f"{i}.png", i)
    _png(tmp_path / "few" / "0.png", 100)
    _, report = load_image_folder(tmp_path, image_size=8)
    few = [w for w in report.warnings if "hardly learn" in w]
    assert few == [(f"The class few (1) has fewer than {FEW_PER_CLASS} images: a conditional model will hardly "
                    "learn it.")]
    assert report.classes == [("few", 1), ("many", FEW_PER_CLASS)]


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_builtins_name_their_classes(tmp_path, name):
    data, report = load_builtin(name, n=20, cache_dir=tmp_path)
    assert data.class_names == CLASS_NAMES[name] and data.labels.dtype == torch.int64
    assert report.classes == class_counts(data) and sum(c for _, c in report.classes) == 20
    assert [n for n, _ in report.classes] == list(CLASS_NAMES[name])
    cached, _ = load_builtin(name, n=20, cache_dir=tmp_path)  # read back from the cache
    assert torch.equal(cached.labels, data.labels) and cached.class_names == data.class_names
    assert any("hardly learn" in w for w in report.warnings)  # 2 digits, or 7 shapes on average, per class
    converted, _ = load_source(name, n=20, channels=3 if name == "digits" else 1, cache_dir=tmp_path)
    assert converted.class_names == data.class_names and torch.equal(converted.labels, data.labels)


def test_builtin_class_names_and_a_full_set_has_no_class_warning(tmp_path):
    assert CLASS_NAMES["digits"] == tuple("0123456789") and CLASS_NAMES["shapes"] == SHAPE_NAMES
    _, report = load_builtin("shapes", n=300, cache_dir=tmp_path)
    assert not any("hardly learn" in w for w in report.warnings)
    assert report.summary().splitlines()[1] == "3 classes: " + ", ".join(f"{n} ({c})" for n, c in report.classes) + "."


def test_summary_lists_at_most_twelve_classes():
    classes = [(str(i), 600) for i in range(15)]
    report = DatasetReport(source="x", used=9000, classes=classes)
    line = report.summary().splitlines()[1]
    assert line.startswith("15 classes: 0 (600), 1 (600),") and "11 (600), and 3 more." in line and "12 (" not in line
    assert classes_summary([("a", 1)], 1, "image") == "1 class: a (1)"
    assert DatasetReport(source="x", used=3).summary().count("\n") == 0


def test_few_per_class_warning_names_only_small_classes():
    assert few_per_class_warning([("a", FEW_PER_CLASS), ("b", 500)], "image") is None
    w = few_per_class_warning([("a", 3), ("b", 500), ("c", 0)], "point")
    assert w == f"2 classes have fewer than {FEW_PER_CLASS} points each: a (3), c (0); a conditional model will " \
                "hardly learn them."


def test_check_labels_holds_labels_and_names_together():
    labels, names = check_labels([0, 2, -1], ("a", "b", "c"), 3)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 2, -1] and names == ("a", "b", "c")
    assert check_labels(None, None, 5) == (None, ())
    assert check_labels(torch.tensor([1, 0], dtype=torch.int32), None, 2)[1] == ("0", "1")  # default names
    bad = [
        (None, ("a",), 1, "class names but no labels"),
        ([0, 1], ("a", "b"), 3, "for 3 items"),
        ([[0], [1]], ("a", "b"), 2, "one label per item"),
        ([0.0, 1.0], ("a", "b"), 2, "must be integers"),
        ([0, 2], ("a", "b"), 2, r"must lie in \[-1, 1\]"),
        ([0, -2], ("a", "b"), 2, r"must lie in \[-1, 1\]"),
        ([0, 0], ("a", "a"), 2, "distinct strings"),
        ([0, 0], ("a", 1), 2, "distinct strings"),
        ([-1, -1], None, 2, "at least one class name"),
    ]
    for labels, names, n, match in bad:
        with pytest.raises(ValueError, match=match):
            check_labels(labels, names, n)
    with pytest.raises(ValueError, match="one label per item"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels=torch.tensor([0]))


def test_labelled_indices_needs_a_labelled_item():
    images = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    data = ImageDataset(images, labels=torch.tensor([-1, 1, -1, 0]), class_names=("a", "b"))
    assert labelled_indices(data).tolist() == [1, 3] and labelled_indices(data).dtype == torch.int64
    assert class_counts(data) == [("a", 1), ("b", 1)]
    none = ImageDataset(images, labels=torch.full((4,), -1), class_names=("a",))
    with pytest.raises(ValueError, match="has no class labels: none of its 4 items has a class; a folder"):
        labelled_indices(none)
    with pytest.raises(ValueError, match="This dataset of 4 items has no class labels"):
        labelled_indices(ImageDataset(images))


def test_the_message_names_every_builtin_with_classes():
    for name in (*BUILTIN_DATASETS, *TOY_CLASS_NAMES):
        assert name in WHAT_GIVES_LABELS


def test_index_classes_sorts_numbers_as_numbers():
    assert index_classes(["10", "2", None, "2"]) == ([1, 0, -1, 0], ("2", "10"))
    assert index_classes(["07", "7", "-1"]) == ([1, 1, 0], ("-1", "7"))
    assert index_classes(["b", "10", "a", "2"]) == ([3, 0, 2, 1], ("10", "2", "a", "b"))
    assert index_classes([None, None]) == ([], ())
