"""The typed data seams: every dataset class satisfies its kind's protocol, and one load_source serves every source."""

import subprocess
import sys

import pytest
import torch
from helpers import square_dataset, write_image_folder

from diffview.core.data.images import DatasetReport, ImageDataset, StreamingImageDataset, load_image_folder
from diffview.core.data.points import PointDataset, PointReport, save_points_csv
from diffview.core.data.protocol import ImageData, PointData, SourceReport, TrainingData
from diffview.core.data.source import load_source, source_kind
from diffview.core.train.run_data import checkpoint_data_fields

IMAGE_ONLY = ("channels", "image_size", "images_uint8", "get_batch", "preview", "flip")
POINT_ONLY = ("dim", "points_at")


def _images(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=5, size=8)
    streamed, _ = load_image_folder(folder, image_size=8, max_memory_bytes=1)
    assert isinstance(streamed, StreamingImageDataset)
    return [square_dataset(n=5), load_image_folder(folder, image_size=8)[0], streamed]


def test_image_datasets_satisfy_image_data_and_only_it(tmp_path):
    for data in _images(tmp_path):
        assert isinstance(data, TrainingData) and isinstance(data, ImageData) and not isinstance(data, PointData)
        assert data.kind == "images" and len(data) == 5
        assert data.data_shape == (data.channels, data.image_size, data.image_size) == (1, 8, 8)
        assert data.sample_shape(3) == (3, 1, 8, 8)
        batch = data.sample_batch(4, torch.Generator().manual_seed(0))
        assert batch.shape == (4, 1, 8, 8) and batch.dtype == torch.float32 and -1 <= batch.min() <= batch.max() <= 1
        pixels = data.images_uint8([0, 4])
        assert pixels.shape == (2, 1, 8, 8) and pixels.dtype == torch.uint8
        assert torch.equal(data.preview(2), data.images_uint8([0, 1]))
        assert not any(hasattr(data, name) for name in POINT_ONLY)
        assert data.labels is None and data.class_names == ()  # a flat folder has no classes


def _has_classes(data, names):
    """The protocols' class fields: int64 labels [N] in [−1, len(names)) and the names as a tuple."""
    assert isinstance(data.class_names, tuple) and data.class_names == names
    assert data.labels.dtype == torch.int64 and data.labels.shape == (len(data),)
    assert -1 <= int(data.labels.min()) and int(data.labels.max()) < len(names)


def test_every_kind_of_dataset_has_labels_and_class_names(tmp_path):
    folder = write_image_folder(tmp_path / "classes" / "a", n=2, size=8)
    write_image_folder(tmp_path / "classes" / "b", n=3, size=8)
    for max_memory in (2**30, 1):
        data, _ = load_image_folder(folder.parent, image_size=8, max_memory_bytes=max_memory)
        _has_classes(data, ("a", "b"))
        assert isinstance(data, ImageData) and data.labels.tolist() == [0, 0, 1, 1, 1]
    _has_classes(load_source("digits", n=20, cache_dir=tmp_path)[0], tuple("0123456789"))
    _has_classes(load_source("moons", n=20)[0], ("upper", "lower"))
    points = PointDataset(torch.randn(4, 2), "p", labels=torch.tensor([0, -1, 1, 0]), class_names=("x", "y"))
    assert isinstance(points, PointData)
    _has_classes(points, ("x", "y"))
    del points.class_names  # the protocols declare both fields: without one, a dataset is not TrainingData
    assert not isinstance(points, TrainingData) and not isinstance(points, PointData)
    del data.labels
    assert not isinstance(data, TrainingData) and not isinstance(data, ImageData)


def test_point_datasets_satisfy_point_data_and_have_no_image_fields():
    data = PointDataset(torch.randn(20, 2), "gauss")
    assert isinstance(data, TrainingData) and isinstance(data, PointData) and not isinstance(data, ImageData)
    assert data.kind == "points" and len(data) == 20 and data.name == "gauss"
    assert data.dim == 2 and data.data_shape == (2,) and data.sample_shape(7) == (7, 2)
    assert data.sample_batch(5, torch.Generator().manual_seed(0)).shape == (5, 2)
    assert torch.equal(data.points_at([3, 0]), data.points[[3, 0]])
    assert not any(hasattr(data, name) for name in IMAGE_ONLY)
    assert data.labels is None and data.class_names == ()
    assert not hasattr(PointReport("moons", 10), "channels") and not hasattr(PointReport("moons", 10), "image_size")


def test_load_source_serves_every_kind_of_source(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=5, size=12)
    csv = save_points_csv(torch.randn(30, 2) * 4 + 1, tmp_path / "drawn.csv")
    cases = [("digits", ImageData, "images", (1, 28, 28)), (str(folder), ImageData, "images", (1, 32, 32)),
             ("moons", PointData, "points", (2,)), ("builtin:circles", PointData, "points", (2,)),
             (str(csv), PointData, "points", (2,))]
    for source, protocol, kind, shape in cases:
        n = 20 if source in ("digits", "moons", "builtin:circles") else None
        data, report = load_source(source, cache_dir=tmp_path / "cache", n=n)
        assert source_kind(source) == kind and data.kind == kind, source
        assert isinstance(data, protocol) and data.data_shape == shape, source
        assert isinstance(report, SourceReport) and report.used == len(data) and report.summary(), source
        assert isinstance(report, DatasetReport if kind == "images" else PointReport)


def test_load_source_image_settings_and_generated_sizes(tmp_path):
    data, report = load_source("builtin:shapes", image_size=8, channels=1, flip=True, n=12, cache_dir=tmp_path)
    assert isinstance(data, ImageDataset) and data.data_shape == (1, 8, 8) and data.flip and report.channels == 1
    points, report = load_source("moons", image_size=8, channels=1, flip=True, n=50, seed=3)
    assert points.data_shape == (2,) and len(points) == 50 and report.used == 50  # image settings are not used
    assert torch.equal(points.points, load_source("moons", n=50, seed=3)[0].points)
    with pytest.raises(ValueError, match="n sets how many items a built-in dataset generates"):
        load_source(str(write_image_folder(tmp_path / "imgs")), n=3)
    with pytest.raises(ValueError, match="n sets how many items"):
        load_source(str(save_points_csv(torch.randn(10, 2), tmp_path / "p.csv")), n=3)


def test_checkpoints_record_each_kind_by_its_own_fields():
    assert checkpoint_data_fields(square_dataset(n=2, size=8)) == {"data_kind": "images", "image_size": 8, "channels": 1}
    # the checkpoint format's two fields, as every 2D run has written them: 2 coordinates, no image size
    assert checkpoint_data_fields(PointDataset(torch.randn(9, 2))) == {"data_kind": "points", "image_size": 0,
                                                                      "channels": 2}


DATA_MODULES = ("protocol", "labels", "files", "images", "digits", "shapes", "builtin", "toy2d", "points", "source")


ALONE = """
import importlib, sys
import numpy, torch, PIL.Image  # the heavy third-party imports once; each diffview module then imports afresh
for module in sys.argv[1:]:
    for name in [m for m in sys.modules if m.startswith("diffview")]:
        del sys.modules[name]
    importlib.import_module("diffview.core.data." + module)
    pulled = "diffview.core.data.builtin" in sys.modules
    assert not pulled or module in ("builtin", "source"), f"importing {module} imports the built-ins"
"""


def test_each_data_module_imports_alone():
    """No import circle in core/data: each module imports on its own, and images never pulls in the built-ins."""
    r = subprocess.run([sys.executable, "-c", ALONE, *DATA_MODULES], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
