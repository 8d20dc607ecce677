"""Class labels: one int64 per item (−1 for an item without a class), and the names of the classes.

Every dataset has ``labels`` (int64 [N], or None when it has no classes at all) and ``class_names``
(() when it has none; label i names ``class_names[i]``). Where the labels come from:

- a folder of images: the first-level subfolder an image lies under is its class (the ImageFolder
  convention, :func:`folder_classes`); an image directly in the root of such a folder has none (−1);
- a CSV of points: its optional third column (:func:`index_classes`); a row without one has none;
- the built-ins: digits (0–9), shapes (circle, square, triangle), moons, gaussians8 and circles.

:func:`check_labels` is the one check of labels against their names, which every dataset runs;
:func:`labelled_indices` and :func:`class_counts` read a dataset's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

FEW_PER_CLASS = 10  # a class with fewer items than this earns a warning in the report
SUMMARY_MAX_CLASSES = 12  # classes a summary names before "and N more"
NO_CLASS = -1  # the label of an item without a class
WHAT_GIVES_LABELS = (
    "a folder of images gives each image the class of the first-level subfolder it lies in, a CSV of points "
    "gives each point the class in its third column, and the built-in sets digits, shapes, moons, gaussians8 "
    "and circles have classes"
)


class Labelled(Protocol):
    """What these functions read of a dataset (every dataset has both: core/data/protocol.py)."""

    labels: torch.Tensor | None
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...


def check_labels(
    labels: torch.Tensor | Sequence[int] | None, class_names: Sequence[str] | None, n: int
) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    """``labels`` for ``n`` items as int64 [n] and their ``class_names`` as a tuple, or ValueError.

    Labels must be integers in [−1, len(class_names)); names must be distinct strings, at least one
    when there are labels, none when there are not. ``class_names`` None names label i ``str(i)``.
    """
    if labels is None:
        if class_names:
            raise ValueError(f"got {len(class_names)} class names but no labels")
        return None, ()
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"got labels of shape {tuple(labels.shape)} for {n:,} items: one label per item")
    labels = labels.to(torch.int64)
    if class_names is None:
        class_names = tuple(str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0))
    names = tuple(class_names)
    if not names:
        raise ValueError("labels need at least one class name")
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct strings, got {names!r}")
    if len(labels) and (int(labels.min()) < NO_CLASS or int(labels.max()) >= len(names)):
        raise ValueError(
            f"labels must lie in [{NO_CLASS}, {len(names) - 1}] for {len(names)} classes, "
            f"got {int(labels.min())}…{int(labels.max())}"
        )
    return labels, names


def labelled_indices(data: Labelled) -> torch.Tensor:
    """The indices (int64) of the items that have a class, for conditional training; ValueError when none has."""
    if data.labels is None:
        raise ValueError(f"{_subject(data)} has no class labels: {WHAT_GIVES_LABELS}.")
    indices = (data.labels >= 0).nonzero().reshape(-1)
    if not len(indices):
        raise ValueError(
            f"{_subject(data)} has no class labels: none of its {len(data):,} items has a class; {WHAT_GIVES_LABELS}."
        )
    return indices


def class_counts(data: Labelled) -> list[tuple[str, int]]:
    """(class name, items) for every class in label order; [] for a dataset without classes."""
    return count_labels(data.labels, data.class_names)


def count_labels(labels: torch.Tensor | None, class_names: Sequence[str]) -> list[tuple[str, int]]:
    """(class name, items with that label) for every class in label order; [] when ``labels`` is None."""
    if labels is None:
        return []
    counts = torch.bincount(labels[labels >= 0], minlength=len(class_names)).tolist()
    return list(zip(class_names, counts))


def folder_classes(root: Path, files: Sequence[Path]) -> tuple[list[int], tuple[str, ...]]:
    """Each file's class under ``root`` by the ImageFolder convention, and the class names.

    The classes are the first-level subfolders that hold a file (at any depth), sorted by name; a
    file directly in ``root`` has label −1. A folder without such subfolders has no classes: ([], ()).
    """
    parts = [f.relative_to(root).parts for f in files]
    names = tuple(sorted({p[0] for p in parts if len(p) > 1}))
    if not names:
        return [], ()
    index = {name: i for i, name in enumerate(names)}
    return [index[p[0]] if len(p) > 1 else NO_CLASS for p in parts], names


def index_classes(values: Sequence[str | None]) -> tuple[list[int], tuple[str, ...]]:
    """Class labels for string ``values`` (None: no class, −1) and the class names.

    The names are the distinct values sorted: by number when every value is an integer (then "07"
    and "7" are one class, named "7"), else as strings. No values at all give ([], ()).
    """
    given = {v for v in values if v is not None}
    try:
        keys = {v: int(v) for v in given}
    except ValueError:
        keys = {v: v for v in given}
    ordered = sorted(set(keys.values()))
    index = {key: i for i, key in enumerate(ordered)}
    labels = [NO_CLASS if v is None else index[keys[v]] for v in values]
    return (labels, tuple(str(key) for key in ordered)) if ordered else ([], ())


def classes_summary(classes: Sequence[tuple[str, int]], used: int, noun: str) -> str:
    """One line for a report: "10 classes: 0 (600), 1 (600), …", and how many items have no class."""
    shown = [f"{name} ({count:,})" for name, count in classes[:SUMMARY_MAX_CLASSES]]
    if len(classes) > SUMMARY_MAX_CLASSES:
        shown.append(f"and {len(classes) - SUMMARY_MAX_CLASSES:,} more")
    line = f"{len(classes):,} class{'' if len(classes) == 1 else 'es'}: " + ", ".join(shown)
    unlabelled = used - sum(count for _, count in classes)
    if unlabelled > 0:
        line += f"; {unlabelled:,} {noun}{'' if unlabelled == 1 else 's'} without a class"
    return line


def few_per_class_warning(classes: Sequence[tuple[str, int]], noun: str) -> str | None:
    """A warning naming the classes with fewer than FEW_PER_CLASS items, or None when there are none."""
    few = [(name, count) for name, count in classes if count < FEW_PER_CLASS]
    if not few:
        return None
    listed = ", ".join(f"{name} ({count:,})" for name, count in few[:SUMMARY_MAX_CLASSES])
    if len(few) > SUMMARY_MAX_CLASSES:
        listed += f" and {len(few) - SUMMARY_MAX_CLASSES:,} more"
    if len(few) == 1:
        return (f"The class {listed} has fewer than {FEW_PER_CLASS} {noun}s: a conditional model will hardly "
                "learn it.")
    return (f"{len(few):,} classes have fewer than {FEW_PER_CLASS} {noun}s each: {listed}; a conditional model "
            "will hardly learn them.")


def _subject(data: Labelled) -> str:
    name = getattr(data, "name", None)
    return f"The point set {name!r}" if name else f"This dataset of {len(data):,} items"


__all__ = ["FEW_PER_CLASS", "NO_CLASS", "check_labels", "class_counts", "classes_summary", "count_labels",
           "few_per_class_warning", "folder_classes", "index_classes", "labelled_indices"]
