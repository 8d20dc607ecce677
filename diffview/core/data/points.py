"""2D point data for the Trainer: a built-in dataset or a CSV of points, and points out (CSV, scatter PNG).

A :class:`PointDataset` stands beside ``ImageDataset``: it draws batches from a seeded generator
(so exact resume works unchanged) and says what shape a sample has. Points are float32 [N, 2];
a CSV of the user's own points is centred and scaled to unit standard deviation (one scale for
both axes, so shapes keep their aspect), and the report says so. A CSV's optional third column is
each point's class (core/data/labels.py: index_classes); the built-in moons, gaussians8 and circles
have classes too.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from diffview.core.data.images import DataError
from diffview.core.data.labels import (
    NO_CLASS,
    check_labels,
    classes_summary,
    count_labels,
    few_per_class_warning,
    index_classes,
)
from diffview.core.data.toy2d import TOY_DATASETS, make_toy, make_toy_labelled, sliced_wasserstein
from diffview.core.io.files import atomic_write_text

TOY_SIZE = 10_000  # points in a built-in 2D dataset
MIN_POINTS = 8
PLOT_LIMIT = 3.0  # the scatter plots span [−3, 3]² in standardised units


def is_points_source(source: str) -> bool:
    """True for a built-in 2D dataset name or a .csv file of points."""
    name = source[len("builtin:"):] if source.startswith("builtin:") else source
    return name in TOY_DATASETS or str(source).lower().endswith(".csv")


@dataclass
class PointReport:
    source: str
    used: int
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    classes: list[tuple[str, int]] = field(default_factory=list)  # (class name, points); [] without classes

    def summary(self) -> str:
        line = f"Used {self.used:,} 2D points from {self.source}"
        if self.skipped:
            line += f"; skipped {self.skipped:,} row(s) that were not two numbers"
        lines = [line + "."] + ([classes_summary(self.classes, self.used, "point") + "."] if self.classes else [])
        return "\n".join(lines + [f"Warning: {w}" for w in self.warnings])


class PointDataset:
    """Points float32 [N, dim] (standardised), with the batch interface of ``ImageDataset``: the
    PointData protocol (core/data/protocol.py). ``labels`` and ``class_names`` as for ``ImageDataset``."""

    kind: Literal["points"] = "points"

    def __init__(self, points: torch.Tensor, name: str = "points", labels: torch.Tensor | Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None):
        points = torch.as_tensor(points, dtype=torch.float32)
        if points.ndim != 2 or points.shape[1] != 2:
            raise DataError(f"points must have shape [N, 2], got {tuple(points.shape)}")
        self.points, self.name = points.contiguous(), name
        self.labels, self.class_names = check_labels(labels, class_names, len(points))

    @property
    def dim(self) -> int:
        """Coordinates per point."""
        return self.points.shape[1]

    @property
    def data_shape(self) -> tuple[int]:
        """One point's shape: (dim,)."""
        return (self.dim,)

    def __len__(self) -> int:
        return len(self.points)

    def sample_shape(self, n: int) -> tuple[int, ...]:
        return (n, *self.data_shape)

    def points_at(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The points float32 [B, dim] at ``indices``."""
        return self.points[torch.as_tensor(indices, dtype=torch.long).reshape(-1)]

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch_size`` points drawn uniformly with replacement (torch.randint on ``generator``)."""
        return self.points[torch.randint(len(self), (batch_size,), generator=generator)]


def load_points(source: str, seed: int = 0, n: int | None = None) -> tuple[PointDataset, PointReport]:
    """A built-in 2D dataset by name (``n`` points, default 10,000, from ``seed``), or a CSV file of x,y
    rows with an optional third column, the point's class."""
    name = source[len("builtin:"):] if source.startswith("builtin:") else source
    if name in TOY_DATASETS:
        n = TOY_SIZE if n is None else int(n)
        pts, labels, class_names = make_toy_labelled(name, n, seed)
        data = PointDataset(pts, name, labels, class_names)
        return data, _report_classes(PointReport(f"builtin:{name}", n), data.labels, data.class_names)
    pts, labels, class_names, skipped = read_labelled_points_csv(source)
    if len(pts) < MIN_POINTS:
        raise DataError(f"{source} holds {len(pts)} point(s); at least {MIN_POINTS} are needed to train")
    report = PointReport(source, len(pts), skipped)
    report.warnings.append("the points were centred and scaled to unit standard deviation")
    if len(pts) < 100:
        report.warnings.append(f"only {len(pts)} points: the model will learn these points, not a shape")
    unlabelled = 0 if labels is None else int((labels == NO_CLASS).sum())
    if unlabelled:
        report.warnings.append(
            f"{unlabelled:,} row(s) have no label in a third column: those points have no class and are skipped "
            "when training a conditional model"
        )
    _report_classes(report, labels, class_names)
    return PointDataset(standardise(pts), Path(source).stem, labels, class_names), report


def _report_classes(report: PointReport, labels: torch.Tensor | None, class_names: tuple[str, ...]) -> PointReport:
    report.classes = count_labels(labels, class_names)
    report.warnings += filter(None, [few_per_class_warning(report.classes, "point")])
    return report


def standardise(points: torch.Tensor) -> torch.Tensor:
    """Centre, then divide by the overall standard deviation (one scale for both axes)."""
    points = points - points.mean(0)
    scale = float(points.pow(2).mean().sqrt())
    return points / (scale if scale > 0 else 1.0)


def read_points_csv(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Rows of two numbers (a header row and other rows are skipped and counted) as float32 [N, 2]."""
    points, _, _, skipped = read_labelled_points_csv(path)
    return points, skipped


def read_labelled_points_csv(
    path: str | os.PathLike,
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[str, ...], int]:
    """(points float32 [N, 2], labels int64 [N] or None, class names, rows skipped) from a CSV.

    Rows of two numbers x,y, each with an optional third column, its class (any text; a header row
    and other rows are skipped and counted). The classes are the distinct labels sorted, by number
    when all are integers; a row without a label has −1, and no label on any row gives labels None.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"points file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"points file {path} cannot be read: {e}") from None
    rows, values, skipped = [], [], 0
    for row in csv.reader(io.StringIO(text)):
        if not row or not "".join(row).strip():
            continue
        try:
            x, y = float(row[0]), float(row[1])
        except (ValueError, IndexError):
            skipped += 1
            continue
        if np.isfinite(x) and np.isfinite(y):
            rows.append((x, y))
            values.append((row[2].strip() or None) if len(row) > 2 else None)
        else:
            skipped += 1
    if not rows:
        raise DataError(f"points file {path} has no rows of two numbers (x,y)")
    labels, class_names = index_classes(values)
    label_tensor = torch.tensor(labels, dtype=torch.int64) if class_names else None
    return torch.tensor(rows, dtype=torch.float32), label_tensor, class_names, skipped


def save_points_csv(points: torch.Tensor | np.ndarray, path: str | os.PathLike,
                    labels: Sequence[str] | None = None) -> Path:
    """Write points [N, 2] as an x,y CSV with a header, atomically; with ``labels`` (one text per point,
    "" for none), an x,y,label CSV that :func:`read_labelled_points_csv` reads back."""
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if labels is None:
        lines = ["x,y"] + [f"{x:.6g},{y:.6g}" for x, y in pts]
    else:
        if len(labels) != len(pts):
            raise ValueError(f"got {len(labels)} labels for {len(pts)} points")
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([("x", "y", "label")] + [
            (f"{x:.6g}", f"{y:.6g}", str(label)) for (x, y), label in zip(pts, labels)])
        lines = out.getvalue().splitlines()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def distance_to_data(samples: torch.Tensor, dataset: PointDataset, seed: int = 0) -> tuple[float, float, int]:
    """(sliced Wasserstein distance from ``samples`` to the data, its floor, points compared).

    The floor is the distance between two independent draws of the data of the same size, so
    a perfect sampler scores about the floor. A built-in dataset draws two fresh sets; a CSV's
    points are split into two random halves (the samples are then compared with one half).
    """
    name = dataset.name
    if name in TOY_DATASETS:
        n = min(len(samples), TOY_SIZE)
        a, b = make_toy(name, n, seed=seed + 1), make_toy(name, n, seed=seed + 2)
    else:
        perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
        n = min(len(samples), len(dataset) // 2)
        a, b = dataset.points[perm[:n]], dataset.points[perm[n : 2 * n]]
    return sliced_wasserstein(samples[:n].float(), a, seed=seed), sliced_wasserstein(b, a, seed=seed), n


def scatter_image(points: torch.Tensor | np.ndarray, size: int = 256, limit: float = PLOT_LIMIT,
                  reference: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """A scatter plot of points [N, 2] as uint8 [3, size, size], drawn without matplotlib.

    Points are blue on white, with density shown by opacity; ``reference`` points (the data), if
    given, are drawn first in light grey. The view spans [−limit, limit]² with the axes at 0.
    """
    img = np.full((size, size, 3), 255.0)
    mid = int(round((size - 1) / 2))
    img[mid, :, :] = img[:, mid, :] = 225.0
    for pts, colour, alpha in ((reference, (150, 150, 150), 0.25), (points, (31, 90, 180), 0.45)):
        if pts is None:
            continue
        p = np.asarray(pts.detach().cpu() if isinstance(pts, torch.Tensor) else pts, dtype=np.float64)
        col = np.round((p[:, 0] + limit) / (2 * limit) * (size - 1)).astype(np.int64)
        row = np.round((limit - p[:, 1]) / (2 * limit) * (size - 1)).astype(np.int64)
        keep = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        counts = np.zeros((size, size))
        np.add.at(counts, (row[keep], col[keep]), 1.0)
        cover = 1.0 - (1.0 - alpha) ** counts  # n points of opacity α stacked on one pixel
        img = img * (1 - cover[..., None]) + np.asarray(colour, dtype=np.float64) * cover[..., None]
    return np.round(img).astype(np.uint8).transpose(2, 0, 1)


__all__ = ["PLOT_LIMIT", "PointDataset", "distance_to_data", "PointReport", "is_points_source", "load_points", "read_points_csv",
           "read_labelled_points_csv", "save_points_csv", "scatter_image", "standardise"]
