"""Class labels for 2D points: the built-in sets' classes, read off the draws without changing a point, and a
CSV's third column."""

import hashlib
import math

import numpy as np
import pytest
import torch

from diffview.core.data.labels import labelled_indices
from diffview.core.data.points import (
    PointDataset,
    PointReport,
    load_points,
    read_labelled_points_csv,
    read_points_csv,
    save_points_csv,
)
from diffview.core.data.source import load_source
from diffview.core.data.toy2d import (
    GAUSSIANS8_RADIUS,
    GAUSSIANS8_STD,
    TOY_CLASS_NAMES,
    TOY_DATASETS,
    make_toy,
    make_toy_labelled,
)

CASES = [(1000, 0), (10000, 0), (777, 3), (10000, 12345)]

# sha256 (first 16 hex digits) of make_toy(name, n, seed).numpy().tobytes(), computed before labels were added
CHECKSUMS = {
    ("swissroll", 1000, 0): "f7ba98a4754745a1", ("swissroll", 10000, 0): "f01d158e76ff4936",
    ("swissroll", 777, 3): "b685f9ad2b525445", ("swissroll", 10000, 12345): "d60c7ea56f921311",
    ("moons", 1000, 0): "e40e32c01ea894f7", ("moons", 10000, 0): "0fe4b176e9a64087",
    ("moons", 777, 3): "828fbddb78365793", ("moons", 10000, 12345): "425df576b94f8b92",
    ("gaussians8", 1000, 0): "8c7544467a796d76", ("gaussians8", 10000, 0): "11f858bc253b313d",
    ("gaussians8", 777, 3): "b0ea4526ff9dbc68", ("gaussians8", 10000, 12345): "78b90a18b05abfa8",
    ("checkerboard", 1000, 0): "4889b1c79545428f", ("checkerboard", 10000, 0): "6dcd55c49267b26d",
    ("checkerboard", 777, 3): "6cf15d1d7bd5d840", ("checkerboard", 10000, 12345): "cf87158341eafab1",
    ("circles", 1000, 0): "59855c49eb0d47bb", ("circles", 10000, 0): "f26a356c45e8f9e2",
    ("circles", 777, 3): "54bd22ffff3acb57", ("circles", 10000, 12345): "09aa50ad62128a05",
}


def _make_toy_before_labels(name: str, n: int, seed: int) -> torch.Tensor:
    """make_toy as it was before the labels, verbatim: the points must never change."""
    rng = np.random.default_rng([seed, 2])
    if name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * rng.random(n))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(0, 0.5, (n, 2))
    elif name == "moons":
        upper = rng.random(n) < 0.5
        a = math.pi * rng.random(n)
        x = np.where(upper, np.cos(a), 1 - np.cos(a))
        y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
        pts = np.stack([x, y], 1) + rng.normal(0, 0.08, (n, 2))
    elif name == "gaussians8":
        k = rng.integers(0, 8, n)
        centres = GAUSSIANS8_RADIUS * np.stack([np.cos(k * math.pi / 4), np.sin(k * math.pi / 4)], 1)
        raw = centres + rng.normal(0, GAUSSIANS8_STD, (n, 2))
        return torch.from_numpy((raw / math.sqrt(GAUSSIANS8_RADIUS**2 / 2 + GAUSSIANS8_STD**2)).astype(np.float32))
    elif name == "checkerboard":
        x = rng.uniform(-2, 2, n)
        y = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2 - 2
        y = y + (np.floor(x) % 2)
        pts = np.stack([x, y], 1)
    else:
        outer = rng.random(n) < 0.5
        a = 2 * math.pi * rng.random(n)
        r = np.where(outer, 1.0, 0.5)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1) + rng.normal(0, 0.04, (n, 2))
    pts = (pts - pts.mean(0)) / pts.std(0)
    return torch.from_numpy(pts.astype(np.float32))


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_the_points_are_bit_for_bit_those_drawn_before_labels(name):
    for n, seed in CASES:
        points = make_toy_labelled(name, n, seed)[0]
        assert torch.equal(points, _make_toy_before_labels(name, n, seed)), (name, n, seed)
        assert torch.equal(make_toy(name, n, seed), points)
        assert hashlib.sha256(points.numpy().tobytes()).hexdigest()[:16] == CHECKSUMS[name, n, seed], (name, n, seed)
        data, _ = load_points(name, seed=seed, n=n)
        assert torch.equal(data.points, points)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_which_toy_sets_have_classes(name):
    points, labels, class_names = make_toy_labelled(name, 2000, 1)
    assert torch.equal(points, make_toy(name, 2000, 1))
    if name not in TOY_CLASS_NAMES:
        assert labels is None and class_names == ()
        return
    assert class_names == TOY_CLASS_NAMES[name] and labels.dtype == torch.int64 and labels.shape == (2000,)
    assert set(labels.tolist()) == set(range(len(class_names)))  # every class drawn, no −1
    data, report = load_points(name, seed=1, n=2000)
    assert torch.equal(data.labels, labels) and data.class_names == class_names
    assert report.classes == [(c, int((labels == i).sum())) for i, c in enumerate(class_names)]
    assert report.summary().splitlines()[1].startswith(f"{len(class_names)} classes: {class_names[0]} (")


def test_gaussians8_label_is_the_mode_the_point_lies_nearest():
    points, labels, names = make_toy_labelled("gaussians8", 5000, 7)
    assert names == tuple(str(k) for k in range(8))
    scale = math.sqrt(GAUSSIANS8_RADIUS**2 / 2 + GAUSSIANS8_STD**2)  # the data's standardisation
    k = torch.arange(8, dtype=torch.float64)
    centres = GAUSSIANS8_RADIUS / scale * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    nearest = torch.cdist(points.double(), centres).argmin(1)
    assert (nearest == labels).double().mean() > 0.999


def test_moons_and_circles_labels_are_the_moon_and_the_circle():
    points, labels, names = make_toy_labelled("moons", 5000, 2)
    assert names == ("upper", "lower")
    # unstandardised, the upper moon is the arc above y = 0.25 on the left, the lower one below it on the right
    upper, lower = points[labels == 0], points[labels == 1]
    assert upper[:, 1].mean() > lower[:, 1].mean() + 0.5 and upper[:, 0].mean() < lower[:, 0].mean() - 0.5
    points, labels, names = make_toy_labelled("circles", 5000, 2)
    assert names == ("outer", "inner")
    radius = points.norm(dim=1)
    assert radius[labels == 0].min() > radius[labels == 1].max()


def test_a_point_set_without_classes_cannot_train_a_conditional_model():
    data, report = load_points("swissroll", n=50)
    assert data.labels is None and data.class_names == () and report.classes == []
    with pytest.raises(ValueError, match="'swissroll' has no class labels: .*a CSV of points gives"):
        labelled_indices(data)
    assert labelled_indices(load_points("moons", n=50)[0]).tolist() == list(range(50))


def _csv(path, rows):
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _grid(n):
    return [(float(i % 7), float(i // 7)) for i in range(n)]


def test_a_third_csv_column_gives_string_classes(tmp_path):
    rows = ["x,y,kind"] + [f"{x},{y},{'bird' if i % 3 else 'ant'}" for i, (x, y) in enumerate(_grid(30))]
    data, report = load_points(str(_csv(tmp_path / "p.csv", rows)))
    assert data.class_names == ("ant", "bird")
    assert data.labels.tolist() == [0 if i % 3 == 0 else 1 for i in range(30)]
    assert report.classes == [("ant", 10), ("bird", 20)] and report.skipped == 1  # the header
    assert "2 classes: ant (10), bird (20)." in report.summary().splitlines()
    assert not any("hardly learn" in w for w in report.warnings)


def test_integer_classes_sort_as_numbers_and_small_ones_are_warned_about(tmp_path):
    labels = [10, 2, 2, 9, 10] * 6
    rows = [f"{x},{y},{c}" for (x, y), c in zip(_grid(30), labels)]
    data, report = load_points(str(_csv(tmp_path / "p.csv", rows)))
    assert data.class_names == ("2", "9", "10")
    assert data.labels.tolist() == [{2: 0, 9: 1, 10: 2}[c] for c in labels]
    assert report.classes == [("2", 12), ("9", 6), ("10", 12)]
    assert any(w.startswith("The class 9 (6) has fewer than 10 points") and "hardly learn it" in w
               for w in report.warnings)


def test_rows_without_a_label_have_no_class(tmp_path):
    rows = [f"{x},{y}" + (f",{i % 2}" if i < 20 else ("," if i == 20 else "")) for i, (x, y) in enumerate(_grid(30))]
    path = _csv(tmp_path / "p.csv", rows + ["nan,1,0", "oops"])
    points, labels, names, skipped = read_labelled_points_csv(path)
    assert names == ("0", "1") and labels.tolist() == [i % 2 for i in range(20)] + [-1] * 10 and skipped == 2
    assert torch.equal(read_points_csv(path)[0], points) and read_points_csv(path)[1] == 2
    data, report = load_points(str(path))
    assert torch.equal(data.labels, labels) and report.classes == [("0", 10), ("1", 10)]
    assert any(w.startswith("10 row(s) have no label in a third column") and "skipped when training a conditional"
               in w for w in report.warnings)
    assert "2 classes: 0 (10), 1 (10); 10 points without a class." in report.summary().splitlines()


def test_a_two_column_csv_has_no_classes(tmp_path):
    data, report = load_points(str(save_points_csv(torch.tensor(_grid(20)), tmp_path / "p.csv")))
    assert data.labels is None and data.class_names == () and report.classes == []
    assert not any("label" in w for w in report.warnings)


def test_saved_labels_read_back(tmp_path):
    pts = torch.tensor(_grid(12))
    names = ["a, with a comma", "b", ""] * 4
    path = save_points_csv(pts, tmp_path / "p.csv", labels=names)
    points, labels, class_names, skipped = read_labelled_points_csv(path)
    assert torch.allclose(points, pts) and skipped == 1 and class_names == ("a, with a comma", "b")
    assert labels.tolist() == [0, 1, -1] * 4
    assert path.read_text().splitlines()[0] == "x,y,label"
    with pytest.raises(ValueError, match="3 labels for 12 points"):
        save_points_csv(pts, tmp_path / "q.csv", labels=["a"] * 3)


def test_point_datasets_check_their_labels():
    data = PointDataset(torch.zeros(3, 2), "p", labels=[1, 0, -1], class_names=("a", "b"))
    assert data.labels.tolist() == [1, 0, -1] and data.class_names == ("a", "b")
    assert PointDataset(torch.zeros(3, 2)).labels is None and PointDataset(torch.zeros(3, 2)).class_names == ()
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        PointDataset(torch.zeros(2, 2), labels=[0, 5], class_names=("a", "b"))
    assert PointReport("x", 3).classes == [] and "class" not in PointReport("x", 3).summary()
    assert load_source("builtin:circles", n=40)[0].class_names == ("outer", "inner")
