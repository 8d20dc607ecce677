"""Opening a finished or interrupted run: its model (a :class:`~.handle.ModelHandle`), schedule, history.

A folder written by diffusers' ``save_pretrained`` opens here too (see :mod:`.diffusers_model`).
Opening a run to sample from it reads the checkpoint and builds the model; it imports neither the
trainer nor the distributed stack.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffview.core.io.checkpoint import CheckpointError, RunDir, load_checkpoint
from diffview.core.models.registry import model_from_checkpoint
from diffview.core.runs import diffusers_model as hf
from diffview.core.runs.handle import FromRun, LoadedRun, ModelHandle, data_shape
from diffview.core.schedule import make_schedule
from diffview.core.train.config import TrainConfig


def open_run(path: str | os.PathLike, *, ema: bool = True, checkpoint: str | os.PathLike | None = None,
             raw_too: bool = False) -> LoadedRun:
    """Load a run folder's latest (or the given) checkpoint, or a diffusers folder; raises CheckpointError
    with a clear reason. ``raw_too`` also builds the raw weights (``raw_model``) from the same read, so
    switching between EMA and raw weights never reads the checkpoint again."""
    if checkpoint is None and hf.looks_like_diffusers(path):  # before RunDir: a UNet folder has a config.json too
        return hf.open_diffusers_folder(path)
    run = RunDir(path)
    if not run.root.exists():
        raise CheckpointError(f"run folder {run.root} does not exist")
    if checkpoint is None:
        if not run.is_run():
            raise CheckpointError(f"{run.root} is not a diffview run folder (no config.json in it)")
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise CheckpointError(f"{run.root} has no checkpoint yet; train it for at least one checkpoint interval")
    else:
        ckpt = Path(checkpoint)
    state = load_checkpoint(ckpt)
    try:
        config = TrainConfig.from_dict(state["config"])
        model = model_from_checkpoint(state, ema=ema)
        raw = model_from_checkpoint(state, ema=False) if raw_too and ema else None
        shape = data_shape(str(state.get("data_kind", "images")), state["channels"], state["image_size"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt} does not hold a usable diffview model ({e})") from None
    step = int(state["step"])
    origin = FromRun(run.root, step)
    handle = ModelHandle(model, make_schedule(config.schedule, config.timesteps), config.objective, shape, origin,
                         str(origin), class_names=run_classes(config))
    return LoadedRun(run.root, config, ckpt, step, ema, handle, raw_model=raw)


def run_classes(config: TrainConfig) -> tuple[str, ...]:
    """A conditional run's class names (label i is the i-th), () for an unconditional run."""
    return tuple(config.class_names or ()) if config.conditional else ()


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` opens as a run: a diffview run folder or a diffusers model folder."""
    return RunDir(path).is_run() or hf.looks_like_diffusers(path)


def describe_run(path: str | os.PathLike, last: int = 5) -> str:
    """A few human lines: what the run is, how far it got, its last losses."""
    if hf.looks_like_diffusers(path):
        return hf.describe_diffusers_folder(path)
    run = RunDir(path)
    cfg = TrainConfig.from_dict(run.read_config())
    from diffview.core.data.points import is_points_source

    points = is_points_source(cfg.dataset)
    data = "2D points" if points else f"{cfg.image_size}×{cfg.image_size}, {cfg.channels} channel(s)"
    lines = [f"Run {run.root}",
             f"  data      {cfg.dataset} ({data})",
             f"  model     {cfg.model} {'MLP' if points else 'UNet'}, {cfg.objective} objective, {cfg.schedule} "
             f"schedule, T={cfg.timesteps}",
             f"  training  batch {cfg.batch_size}"
             + (f" per process × {cfg.world_size} processes = {cfg.global_batch_size}" if cfg.world_size > 1 else "")
             + f", lr {cfg.lr:g}, EMA {cfg.ema_decay}, seed {cfg.seed}"]
    classes = run_classes(cfg)
    if cfg.conditional:
        lines.append(f"  classes   {len(classes)}: {', '.join(classes)}" if classes else "  classes   none recorded yet")
        lines.append(f"  guidance  classifier-free: ∅ in training with p = {cfg.cond_dropout:g}; "
                     f"default scale S = {cfg.guidance_scale:g}")
    ckpt = run.latest_checkpoint()
    metrics = run.read_metrics()
    done = metrics[-1]["step"] if metrics else 0
    lines.append(f"  progress  {done} of {cfg.steps} steps ({100 * done / cfg.steps:.0f}%)"
                 + (f", {metrics[-1].get('elapsed', 0) / 60:.1f} min in the last session" if metrics else ""))
    lines.append(f"  checkpoint {ckpt.name if ckpt else 'none yet'}")
    samples = sorted(run.samples.glob("*.png"))
    if samples:
        lines.append(f"  samples   {len(samples)} preview grid(s), newest {samples[-1].name}")
    if metrics:
        tail = metrics[-last:]
        lines.append("  last losses " + ", ".join(f"{r['step']}: {r['loss']:.4f}" for r in tail))
    return "\n".join(lines)


__all__ = ["CheckpointError", "describe_run", "is_run_folder", "open_run", "run_classes"]
