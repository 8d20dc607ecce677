"""What the Trainer yields: one event per step, plus previews, checkpoints, messages and the end.

Events carry only CPU copies of small arrays (numpy), so they may cross threads; the CLI turns
them into a progress bar, the app into Qt signals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StepEvent:
    step: int  # steps completed
    loss: float  # mean loss of this step's batch
    losses: np.ndarray  # per-sample losses of this batch (float32 [B])
    timesteps: np.ndarray  # their timesteps (int64 [B]), for loss by t
    lr: float
    images_per_sec: float
    elapsed: float  # seconds of training in this session
    eta: float  # seconds left at the current rate
    total_steps: int


@dataclass
class PreviewEvent:
    step: int
    images: np.ndarray  # uint8 [N, C, H, W] from the EMA model and a fixed seed (2D: one scatter plot)
    sampler: str
    sample_steps: int
    seconds: float
    path: str | None
    points: np.ndarray | None = None  # 2D runs: the sampled points, float32 [N, 2]
    distance: float | None = None  # 2D runs: sliced Wasserstein distance to as many data points
    nrow: int | None = None  # images per grid row (a conditional run: one row per class), None: square
    labels: np.ndarray | None = None  # a conditional run: each sample's class, int64 [N]
    guidance_scale: float | None = None  # a conditional run: the S its samples were guided at


@dataclass
class CheckpointEvent:
    step: int
    path: str


@dataclass
class LogEvent:
    message: str


@dataclass
class WarningEvent:
    message: str


@dataclass
class DoneEvent:
    reason: str  # "finished", "stopped" or "failed"
    step: int
    message: str = ""
