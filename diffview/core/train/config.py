"""TrainConfig: every hyperparameter of a run, saved with it as JSON and loadable from TOML."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from diffview.core.diffusion import OBJECTIVES
from diffview.core.losses import T_SAMPLINGS, WEIGHTINGS
from diffview.core.models.registry import MODEL_PRESETS
from diffview.core.sampling import SAMPLERS
from diffview.core.schedule import SCHEDULES
from diffview.core.train.budget import check_budget
from diffview.core.train.loss_balance import ADAPTIVE
from diffview.core.train.precision import PRECISIONS

LOSS_WEIGHTINGS = WEIGHTINGS + (ADAPTIVE,)  # core/losses.py's fixed weights, or core/train/loss_balance.py's

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None


@dataclass
class TrainConfig:
    """Defaults were chosen by measuring sample quality per CPU minute on 28×28 digits
    (``benchmarks/quality_per_minute.py``); see benchmarks/README.md."""

    # data
    dataset: str = "digits"  # a built-in name or a folder of images
    image_size: int | None = None  # None: the built-in's own size, 32 for a folder
    channels: str = "auto"  # "auto", "1" or "3"
    flip: bool = False
    # diffusion
    schedule: str = "cosine"
    timesteps: int = 1000
    objective: str = "v"
    loss_weighting: str = "adaptive"  # each t's loss over its running mean (core/train/loss_balance.py), or a fixed one
    t_sampling: str = "uniform"  # how training draws t: "uniform", or "lognormal" in σ (EDM; core/losses.py)
    # model
    model: str = "small"
    dropout: float | None = None  # None: the model preset's own (0.1 for ddpm-cifar10, as Ho et al.; else 0)
    # class-conditional training with classifier-free guidance (Ho & Salimans 2021; core/guidance.py)
    conditional: bool = False  # learn p(x | y) and, through the null class, p(x)
    cond_dropout: float = 0.1  # the probability a label is replaced by the null class ∅ during training
    class_names: list | None = None  # the data's classes, recorded by the trainer for a conditional run
    guidance_scale: float = 3.0  # S for previews and the default of `diffview sample` (benchmarks/README.md)
    # optimisation
    batch_size: int = 64  # per process when several train together (torchrun)
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_decay: str = "cosine"  # "cosine" to 10% at the last step, or "constant"
    horizons: list | None = None  # [[start, end], …] the rate decays over, one more per resume that changed
    # the total steps (core/lr_schedule.py); recorded by the trainer, None for a new run
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay_k = min(ema_decay, (1 + k) / (10 + k))
    steps: int = 1300  # about 5 minutes of the default model on a slow pair of CPU cores (benchmarks/README.md)
    minutes: float | None = None  # train this long instead: steps fitted when the warm-up ends (core/train/budget.py)
    seed: int = 0
    # hardware
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    threads: int | None = None  # CPU threads for torch; None: one per core
    compile: bool = False  # torch.compile the model (optional: measure it with benchmarks/train_throughput.py)
    precision: str = "auto"  # the network's matmuls: "bf16" autocast, "fp32", or "auto" (core/train/precision.py)
    # several processes (torchrun; see core/distributed.py), recorded by the trainer
    world_size: int = 1  # processes that train the run
    global_batch_size: int | None = None  # batch_size × world_size
    dist_timeout: int = 120  # seconds a process waits for the others before giving up
    # reporting
    log_every: int = 10
    preview_every: int = 250
    preview_n: int = 36
    preview_sampler: str = "heun"  # with core/sampling.py's default S_churn: the best per NFE measured
    preview_steps: int = 13  # 24 network evaluations for Heun
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    tensorboard: bool = False  # also TensorBoard event files in RUN/tb (core/train/tensorboard.py)

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first bad field and what it allows."""
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("objective", self.objective, OBJECTIVES)
        _choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        _choice("t_sampling", self.t_sampling, T_SAMPLINGS)
        _choice("model", self.model, MODEL_PRESETS)
        _choice("preview_sampler", self.preview_sampler, SAMPLERS)
        _choice("lr_decay", self.lr_decay, ("cosine", "constant"))
        _choice("channels", str(self.channels), ("auto", "1", "3"))
        _choice("precision", self.precision, PRECISIONS)
        for name in ("timesteps", "batch_size", "steps", "log_every", "preview_every", "checkpoint_every",
                     "keep_checkpoints", "preview_n", "preview_steps", "world_size", "dist_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 4):
            raise ValueError(f"image_size must be an integer >= 4, got {self.image_size!r}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must lie in (0, 1), got {self.lr!r}")
        if self.dropout is not None and (isinstance(self.dropout, bool) or not 0 <= self.dropout < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.horizons is not None:
            _check_horizons(self.horizons)
        if isinstance(self.cond_dropout, bool) or not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond_dropout must lie in [0, 1), got {self.cond_dropout!r}")
        if isinstance(self.guidance_scale, bool) or not 0 <= self.guidance_scale <= 100:
            raise ValueError(f"guidance_scale must lie in [0, 100], got {self.guidance_scale!r}")
        if self.class_names is not None and not (isinstance(self.class_names, (list, tuple)) and self.class_names
                                                 and all(isinstance(c, str) for c in self.class_names)):
            raise ValueError(f"class_names must be a non-empty list of names, got {self.class_names!r}")
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"tensorboard must be true or false, got {self.tensorboard!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if self.global_batch_size is not None and (not isinstance(self.global_batch_size, int)
                                                   or self.global_batch_size < 1):
            raise ValueError(f"global_batch_size must be a positive integer, got {self.global_batch_size!r}")
        check_budget(self.minutes, self.warmup_steps)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads!r}")
        return self

    @classmethod
    def for_dataset(cls, dataset: str, **settings: Any) -> "TrainConfig":
        """Defaults suited to ``dataset`` (2D points get the MLP's), then ``settings`` on top."""
        return cls(**{"dataset": dataset, **defaults_for(dataset), **settings})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cfg = cls(**{**defaults_for(d.get("dataset", cls.dataset)), **d})
        cfg.channels = str(cfg.channels)
        return cfg

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "TrainConfig":
        if tomllib is None:  # pragma: no cover
            raise ValueError("reading TOML needs Python 3.11 or newer")
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"config file {path} cannot be read: {e}") from None
        data = data.get("train", data)  # either a [train] table or top-level keys
        return cls.from_dict(data)


# 2D points: an MLP trains in seconds; these settings were chosen by measuring the sliced Wasserstein
# distance to the data per CPU second on ``moons`` (benchmarks/README.md).
POINT_DEFAULTS: dict[str, Any] = {
    "model": "mlp", "objective": "v", "batch_size": 256, "lr": 2e-3, "warmup_steps": 100, "steps": 2000,
    "ema_decay": 0.995, "preview_every": 200, "preview_n": 2000, "preview_sampler": "ddpm", "preview_steps": 100,
    "checkpoint_every": 1000,
}


DIGITS_SIDE = 28  # the built-in digits' side, which TrainConfig's image defaults were measured on


def image_defaults(image_size: int, count: int) -> dict[str, Any]:
    """The steps and batch for ``count`` images of side ``image_size``, scaled from TrainConfig's defaults
    (measured on the 28×28 digits, benchmarks/README.md): a step of the default model costs in proportion to
    its pixels, so larger images get fewer steps, by 28²/side² (to tens, at least twice the warm-up), to keep the
    digits' training time; smaller ones keep the default steps (a step's fixed costs dominate there, and a
    smaller image needs no more steps to learn). The batch is at most the images there are."""
    base = TrainConfig()
    if image_size < 1 or count < 1:
        raise ValueError(f"image_defaults needs a positive side and count, got {image_size} and {count}")
    steps = 10 * math.floor(base.steps * min(1.0, DIGITS_SIDE ** 2 / image_size ** 2) / 10 + 0.5)
    steps = max(min(2 * base.warmup_steps, base.steps), steps)
    return {"steps": steps, "batch_size": min(base.batch_size, count)}


def defaults_for(dataset: str) -> dict[str, Any]:
    """The settings that differ from TrainConfig's defaults for this kind of data."""
    from diffview.core.data.points import is_points_source

    return dict(POINT_DEFAULTS) if is_points_source(dataset) else {}


# what a resumed run may change: the rest are the run's own (its data, model, optimiser, schedule, reporting)
RESUMABLE_SETTINGS = ("steps", "device", "threads", "dist_timeout", "compile", "precision", "guidance_scale",
                      "tensorboard")
# set by the trainer for the processes present (core/distributed.py) and by a resume (horizons)
RECORDED_SETTINGS = ("batch_size", "world_size", "global_batch_size", "horizons", "class_names")


def _check_horizons(horizons: Any) -> None:
    def pair(h: Any) -> bool:
        return (isinstance(h, (list, tuple)) and len(h) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in h) and 0 <= h[0] < h[1])

    ok = isinstance(horizons, (list, tuple)) and len(horizons) > 0 and all(pair(h) for h in horizons)
    if not (ok and horizons[0][0] == 0 and all(a[0] < b[0] for a, b in zip(horizons, horizons[1:]))):
        raise ValueError(f"horizons must be [[0, end], [start, end], …] with starts increasing and each start "
                         f"before its end, got {horizons!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
