"""Opening a finished or interrupted run: its model, schedule, history; sampling from it.

A folder written by diffusers' ``save_pretrained`` opens here too (see :mod:`.hf`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from diffview.core.io.checkpoint import CheckpointError, RunDir, load_checkpoint
from diffview.core.train.config import TrainConfig
from diffview.core.diffusion import SampleStep, iter_sample
from diffview.core.schedule import NoiseSchedule, make_schedule
from diffview.core.train.trainer import model_from_checkpoint


@dataclass
class LoadedRun:
    root: Path
    config: TrainConfig | None  # None for a model diffview did not train (a diffusers folder)
    checkpoint: Path  # the checkpoint file, or a diffusers folder's UNet folder
    step: int
    model: torch.nn.Module  # eval mode, CPU
    schedule: NoiseSchedule
    channels: int
    image_size: int
    ema: bool
    objective: str = "eps"
    source: str = "diffview"  # "diffview": a run it trains further; "diffusers": sample only
    data_kind: str = "images"  # or "points": 2D points and an MLP
    raw_model: torch.nn.Module | None = None  # the raw (non-EMA) weights too, when opened with ``raw_too``

    def model_for(self, ema: bool = True) -> torch.nn.Module:
        """The EMA or the raw model; a run opened without ``raw_too`` (or a diffusers folder) has only one."""
        return self.model if ema or self.raw_model is None else self.raw_model

    def sample_shape(self, n: int) -> tuple[int, ...]:
        if self.data_kind == "points":
            return (n, self.channels)
        return (n, self.channels, self.image_size, self.image_size)

    def iter_sample(self, n: int, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                    seed: int = 0, device: str | torch.device = "cpu",
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        """The reverse process for ``n`` samples from the fixed ``seed`` (or from ``x_T``), step by step."""
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(self.sample_shape(n), generator=g) if x_T is None else x_T
        model = self.model.to(device)
        with torch.no_grad():
            yield from iter_sample(model, x_T.shape, self.schedule, sampler=sampler, steps=steps, eta=eta,
                                   objective=self.objective, x_T=x_T.to(device), generator=g,
                                   clip_x0=self.data_kind == "images")


def open_run(path: str | os.PathLike, *, ema: bool = True, checkpoint: str | os.PathLike | None = None,
             raw_too: bool = False) -> LoadedRun:
    """Load a run folder's latest (or the given) checkpoint, or a diffusers folder; raises CheckpointError
    with a clear reason. ``raw_too`` also builds the raw weights (``raw_model``) from the same read, so
    switching between EMA and raw weights never reads the checkpoint again."""
    from diffview.core.runs import diffusers_model as hf

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
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt} does not hold a usable diffview model ({e})") from None
    return LoadedRun(run.root, config, ckpt, int(state["step"]), model,
                     make_schedule(config.schedule, config.timesteps), int(state["channels"]),
                     int(state["image_size"]), ema, objective=config.objective,
                     data_kind=str(state.get("data_kind", "images")), raw_model=raw)


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` opens as a run: a diffview run folder or a diffusers model folder."""
    from diffview.core.runs import diffusers_model as hf

    return RunDir(path).is_run() or hf.looks_like_diffusers(path)


def describe_run(path: str | os.PathLike, last: int = 5) -> str:
    """A few human lines: what the run is, how far it got, its last losses."""
    from diffview.core.runs import diffusers_model as hf

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


__all__ = ["CheckpointError", "LoadedRun", "describe_run", "is_run_folder", "open_run"]
