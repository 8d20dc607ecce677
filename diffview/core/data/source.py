"""From a source name to a dataset: a built-in image set by name, else a folder of images."""

from __future__ import annotations

import os

from diffview.core.data.images import (
    DEFAULT_IMAGE_SIZE,
    DatasetReport,
    ImageDataset,
    StreamingImageDataset,
    check_channels,
    convert_channels,
    load_image_folder,
)


def load_dataset(
    source: str,
    image_size: int | None = None,
    channels: int | str = "auto",
    flip: bool = False,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> tuple[ImageDataset | StreamingImageDataset, DatasetReport]:
    """A built-in dataset by name (``"digits"``, ``"shapes"``, or ``"builtin:digits"``), else a folder.

    A built-in name wins over a folder of that name in the working directory (write
    ``./digits`` for the folder). ``image_size`` None means the built-in's native size, or
    32 for a folder. For a built-in, ``channels`` 1 or 3 converts its images (luma or
    replicated gray); ``seed`` and ``cache_dir`` only apply to built-ins.
    """
    from diffview.core.data.builtin import BUILTIN_DATASETS, load_builtin

    name = source[len("builtin:"):] if source.startswith("builtin:") else source
    if name in BUILTIN_DATASETS or source.startswith("builtin:"):
        forced = check_channels(channels)
        ds, report = load_builtin(name, image_size=image_size, seed=seed, cache_dir=cache_dir)
        if forced and forced != ds.channels:
            ds = ImageDataset(convert_channels(ds.images, forced), flip=flip, labels=ds.labels)
            report.channels = forced
        ds.flip = bool(flip)
        return ds, report
    return load_image_folder(
        source, image_size=DEFAULT_IMAGE_SIZE if image_size is None else image_size, channels=channels, flip=flip
    )
