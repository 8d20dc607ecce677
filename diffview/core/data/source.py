"""From a source name to a dataset, for every caller (trainer, CLI, app, 2D tab): one :func:`load_source`.

A source is a built-in 2D point set by name (``moons``, or ``builtin:moons``), a ``.csv`` file of
x,y points, a built-in image set by name (``digits``, or ``builtin:digits``), or else a folder of images.
"""

from __future__ import annotations

import os

from diffview.core.data.builtin import BUILTIN_DATASETS, load_builtin
from diffview.core.data.images import (
    DEFAULT_IMAGE_SIZE,
    DatasetReport,
    ImageDataset,
    StreamingImageDataset,
    check_channels,
    convert_channels,
    load_image_folder,
)
from diffview.core.data.points import PointDataset, PointReport, is_points_source, load_points
from diffview.core.data.protocol import DataKind
from diffview.core.data.toy2d import TOY_DATASETS


def source_kind(source: str) -> DataKind:
    """"points" for a built-in 2D set or a .csv file, else "images" (a built-in image set or a folder)."""
    return "points" if is_points_source(source) else "images"


def load_source(
    source: str,
    *,
    image_size: int | None = None,
    channels: int | str = "auto",
    flip: bool = False,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n: int | None = None,
) -> tuple[ImageDataset | StreamingImageDataset | PointDataset, DatasetReport | PointReport]:
    """The dataset ``source`` names, with its report: 2D points (:mod:`.points`) or images.

    Points: a built-in 2D set by name (10,000 points drawn from ``seed``), or a CSV of x,y rows
    (centred and scaled); ``image_size``, ``channels`` and ``flip`` are image settings, which a point
    set does not have, and are not used.

    Images: a built-in image set by name (``"digits"``, ``"shapes"``, or ``"builtin:digits"``), else a
    folder. A built-in name wins over a folder of that name in the working directory (write
    ``./digits`` for the folder). ``image_size`` None means the built-in's native size, or 32 for a
    folder. For a built-in, ``channels`` 1 or 3 converts its images (luma or replicated gray);
    ``cache_dir`` only applies to built-ins.

    ``seed`` and ``n`` (how many items to generate, default the built-in's standard size) only apply
    to built-ins, which are generated; a folder or a CSV holds what it holds.
    """
    name = source[len("builtin:"):] if source.startswith("builtin:") else source
    if source_kind(source) == "points":
        if n is not None and name not in TOY_DATASETS:
            raise ValueError(_NOT_GENERATED.format(source=source))
        return load_points(source, seed=seed, n=n)
    if source.startswith("builtin:") or name in BUILTIN_DATASETS:
        forced = check_channels(channels)
        ds, report = load_builtin(name, image_size=image_size, seed=seed, cache_dir=cache_dir, n=n)
        if forced and forced != ds.channels:
            ds = ImageDataset(convert_channels(ds.images, forced), flip=flip, labels=ds.labels,
                              class_names=ds.class_names)
            report.channels = forced
        ds.flip = bool(flip)
        return ds, report
    if n is not None:
        raise ValueError(_NOT_GENERATED.format(source=source))
    return load_image_folder(
        source, image_size=DEFAULT_IMAGE_SIZE if image_size is None else image_size, channels=channels, flip=flip
    )


_NOT_GENERATED = "n sets how many items a built-in dataset generates; {source} holds the items it holds"

__all__ = ["load_source", "source_kind"]
