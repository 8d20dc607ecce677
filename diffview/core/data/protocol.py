"""What a dataset offers the trainer and the views, by kind: images or 2D points.

    data, report = load_source("digits")          # core/data/source.py
    data.kind                                     # "images" or "points"
    data.sample_batch(64, generator)              # a training batch, float32 [64, *data.data_shape]
    if data.kind == "images":                     # an ImageData
        data.channels, data.image_size, data.images_uint8([0, 1])
    else:                                         # a PointData
        data.dim, data.points_at([0, 1])
    data.labels, data.class_names                 # int64 [N] classes (−1: none) or None, and their names

Each kind has only the fields it has: points have no image size and no channels (a point has
``dim`` coordinates), images have no coordinates. :class:`ImageDataset`, :class:`StreamingImageDataset`
(core/data/images.py) and :class:`PointDataset` (core/data/points.py) implement these protocols;
tests/test_data_protocol.py checks it.

Every kind may have classes, for class-conditional training: ``labels`` holds one int64 class index
per item (−1 for an item without a class, such as an image directly in the root of a folder of class
subfolders), or is None when the dataset has no classes at all; ``class_names[i]`` names class i,
and is () when there are no classes. core/data/labels.py checks and reads them.
"""

from __future__ import annotations

from typing import Literal, Protocol, Sequence, Union, runtime_checkable

import torch

DataKind = Literal["images", "points"]
Indices = Union[torch.Tensor, Sequence[int]]


@runtime_checkable
class TrainingData(Protocol):
    """What every kind of data offers: its kind, its size, the shape of one item, training batches, and classes."""

    labels: torch.Tensor | None
    """int64 [N]: each item's class index into ``class_names``, −1 for an item without a class; None when the
    dataset has no classes."""
    class_names: tuple[str, ...]
    """The classes' names, label i naming ``class_names[i]``; () when the dataset has no classes."""

    @property
    def kind(self) -> DataKind: ...

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one item: (C, S, S) for images, (dim,) for points."""
        ...

    def __len__(self) -> int: ...

    def sample_shape(self, n: int) -> tuple[int, ...]:
        """The shape of ``n`` items: (n, *data_shape)."""
        ...

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch_size`` items drawn uniformly with replacement, as the model trains on them (float32)."""
        ...


@runtime_checkable
class ImageData(TrainingData, Protocol):
    """Square images of 1 or 3 channels, read as uint8 by index; batches in [−1, 1], optionally flipped."""

    flip: bool

    @property
    def kind(self) -> Literal["images"]: ...

    @property
    def channels(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    def images_uint8(self, indices: Indices) -> torch.Tensor:
        """The uint8 images [B, C, S, S] at ``indices``, unflipped."""
        ...

    def get_batch(self, indices: Indices, generator: torch.Generator | None = None) -> torch.Tensor:
        """The images at ``indices`` as float32 [B, C, S, S] in [−1, 1], flipped if ``flip``."""
        ...

    def preview(self, n: int) -> torch.Tensor:
        """The first ``n`` images (fewer if there are fewer) as uint8 [n, C, S, S]."""
        ...


@runtime_checkable
class PointData(TrainingData, Protocol):
    """Points float32 [N, dim], standardised; ``name`` says which set (a built-in's name or a CSV's stem)."""

    name: str

    @property
    def kind(self) -> Literal["points"]: ...

    @property
    def dim(self) -> int:
        """Coordinates per point (2)."""
        ...

    def points_at(self, indices: Indices) -> torch.Tensor:
        """The points float32 [B, dim] at ``indices``."""
        ...


@runtime_checkable
class SourceReport(Protocol):
    """What every load reports: where the data came from, how many items it used, warnings, and a summary."""

    source: str
    used: int
    warnings: list[str]

    def summary(self) -> str: ...


__all__ = ["DataKind", "ImageData", "Indices", "PointData", "SourceReport", "TrainingData"]
