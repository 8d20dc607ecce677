"""What a run trains on: the data its config names, loaded by its data settings, and the checkpoint's record of it.

    data, report = load_training_data(cfg)   # by cfg.dataset, image_size, channels, flip (core/data/source.py)
    data, report = load_run_data(run)        # a run folder's own data, by its config.json
    check_run_data(data, cfg)                # a dataset given for a resume must be what cfg loads
"""

from __future__ import annotations

import os
from typing import cast

from diffview.core.data.images import DatasetReport
from diffview.core.data.points import PointReport
from diffview.core.data.protocol import ImageData, PointData, TrainingData
from diffview.core.data.source import load_source, source_kind
from diffview.core.train.config import TrainConfig
from diffview.core.train.resume import load_run_config


def load_training_data(cfg: TrainConfig) -> tuple[TrainingData, DatasetReport | PointReport]:
    """The dataset a config names, with its report: 2D points or images (by the config's image settings)."""
    channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
    return load_source(cfg.dataset, image_size=cfg.image_size, channels=channels, flip=cfg.flip, seed=0)


def load_run_data(run_dir: str | os.PathLike) -> tuple[TrainingData, DatasetReport | PointReport]:
    """The data a run trains on, with its report, loaded by the run's own settings (its config.json):
    dataset, image size, channels and flips."""
    return load_training_data(load_run_config(run_dir))


def check_run_data(data: TrainingData, cfg: TrainConfig) -> None:
    """Refuse (ValueError) data that is not what ``cfg``'s data settings load."""
    kind = source_kind(cfg.dataset)
    found: list[tuple[str, object, object]] = [("kind", kind, data.kind)]
    if kind == "images" and data.kind == "images":
        images = cast(ImageData, data)
        found += [("channels", None if cfg.channels == "auto" else int(cfg.channels), images.channels),
                  ("image size", cfg.image_size, images.image_size), ("flips", cfg.flip, bool(images.flip))]
    for name, want, got in found:
        if want is not None and want != got:
            raise ValueError(f"the dataset given does not match the run's data settings ({name}: the run's "
                             f"{_shown(want)}, this dataset's {_shown(got)}); leave it out to load the run's own")


def checkpoint_data_fields(data: TrainingData) -> dict:
    """The checkpoint's record of the data: its kind and, in the checkpoint format's two fields, its shape.

    Images: their channels and side. Points: their coordinates per point as "channels" and an
    "image_size" of 0, as every 2D checkpoint has recorded them (core/runs/open.py reads both)."""
    if data.kind == "points":
        return {"data_kind": "points", "image_size": 0, "channels": cast(PointData, data).dim}
    images = cast(ImageData, data)
    return {"data_kind": "images", "image_size": images.image_size, "channels": images.channels}


def _shown(v) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


__all__ = ["check_run_data", "checkpoint_data_fields", "load_run_data", "load_training_data"]
