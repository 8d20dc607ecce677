"""What a resumed run trains with: its own settings and its own data, whoever resumes it (CLI or app).

    trainer = Trainer(load_run_config(run), run, resume=True)   # loads the run's data itself
    data, report = load_run_data(run)                           # the same data, to show it (run_data.py)

A resume may change only RESUMABLE_SETTINGS (core/config.py). A new total steps continues the learning
rate from where it is, recorded as one more horizon (core/lr_schedule.py).
"""

from __future__ import annotations

import os
from dataclasses import fields

from diffview.core.io.checkpoint import CheckpointError, RunDir
from diffview.core.train import distributed
from diffview.core.train.config import RECORDED_SETTINGS, RESUMABLE_SETTINGS, TrainConfig
from diffview.core.train.lr_schedule import extend_horizons, horizons_of


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a run folder was trained with."""
    return TrainConfig.from_dict(RunDir(run_dir).read_config())


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


__all__ = ["load_run_config", "resumed_config"]
