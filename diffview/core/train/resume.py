"""What a resumed run trains with: its own settings and its own data, whoever resumes it (CLI or app).

    trainer = Trainer(load_run_config(run), run, resume=True)   # loads the run's data itself
    data, report = load_run_data(run)                           # the same data, to show it

A resume may change only RESUMABLE_SETTINGS (core/config.py). A new total steps continues the learning
rate from where it is, recorded as one more horizon (core/lr_schedule.py).
"""

from __future__ import annotations

import os
from dataclasses import fields

from diffview.core.data.points import is_points_source
from diffview.core.io.checkpoint import CheckpointError, RunDir
from diffview.core.train import distributed
from diffview.core.train.config import RECORDED_SETTINGS, RESUMABLE_SETTINGS, TrainConfig
from diffview.core.train.lr_schedule import extend_horizons, horizons_of


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a run folder was trained with."""
    return TrainConfig.from_dict(RunDir(run_dir).read_config())


def load_run_data(run_dir: str | os.PathLike):
    """The data a run trains on, with its report, loaded by the run's own settings (its config.json):
    dataset, image size, channels and flips."""
    from diffview.core.train.trainer import load_training_data

    return load_training_data(load_run_config(run_dir))


def check_run_data(data, cfg: TrainConfig) -> None:
    """Refuse (ValueError) data that is not what ``cfg``'s data settings load."""
    kind = "points" if is_points_source(cfg.dataset) else "images"
    found = [("kind", kind, data.kind)]
    if kind == "images":
        found += [("channels", None if cfg.channels == "auto" else int(cfg.channels), data.channels),
                  ("image size", cfg.image_size, data.image_size), ("flips", cfg.flip, bool(getattr(data, "flip", False)))]
    for name, want, got in found:
        if want is not None and want != got:
            raise ValueError(f"the dataset given does not match the run's data settings ({name}: the run's "
                             f"{_shown(want)}, this dataset's {_shown(got)}); leave it out to load the run's own")


def _shown(v) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def resumed_config(given: TrainConfig, state: dict, world_size: int) -> TrainConfig:
    """The checkpoint's own config, with RESUMABLE_SETTINGS from the config given (others must agree),
    the batch fitted to the processes present, and the horizons extended to the new total."""
    try:
        saved = TrainConfig.from_dict(dict(state["config"]))
        horizons = horizons_of(saved)  # the checkpoint's own: a resume of a resume stays exact
        if state.get("data_kind", "images") == "images":  # what "auto" resolved to, in runs from before
            saved.channels, saved.image_size = str(int(state["channels"])), int(state["image_size"])
        step = int(state["step"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"the checkpoint's settings cannot be read ({e})") from None
    for f in fields(TrainConfig):
        mine, run = getattr(given, f.name), getattr(saved, f.name)
        auto = f.name in ("channels", "image_size") and mine in ("auto", None)
        if f.name not in RESUMABLE_SETTINGS + RECORDED_SETTINGS and not auto and mine != run:
            raise ValueError(f"a resumed run keeps its own settings: {f.name} is {run!r} in the run, not "
                             f"{mine!r}; only {', '.join(RESUMABLE_SETTINGS)} may change")
    for name in RESUMABLE_SETTINGS:
        setattr(saved, name, getattr(given, name))
    if saved.steps < step:
        raise ValueError(f"the run is at step {step:,}; resume it to at least {step:,} steps")
    saved.horizons = extend_horizons(horizons, step, saved.steps, saved.warmup_steps)
    distributed.fit_batch(saved, world_size, resume=True)
    return saved.validate()


__all__ = ["check_run_data", "load_run_config", "load_run_data", "resumed_config"]
