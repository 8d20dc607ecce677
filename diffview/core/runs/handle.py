"""A model you can sample from, and an opened run around one.

:class:`ModelHandle` is what every consumer of a model gets (the CLI's ``sample``, the app's Sampling
and analysis tabs, :func:`~diffview.core.runs.open.open_run`): the network in eval mode, its schedule
and objective, the shape of what it makes (:class:`ImageShape` or :class:`PointShape`), where it came
from (:class:`FromRun`, :class:`FromDiffusers`, :class:`FromTraining`) and a label for captions.
:class:`LoadedRun` is an opened run folder or diffusers folder: its metadata and its handle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Protocol, runtime_checkable

import torch

from diffview.core.diffusion import model_variance
from diffview.core.sampling import SampleStep, final_sample, iter_sample, noise_from_seed
from diffview.core.schedule import NoiseSchedule

if TYPE_CHECKING:
    from diffview.core.train.config import TrainConfig


@dataclass(frozen=True)
class ImageShape:
    """Square images: ``channels`` × ``size`` × ``size``."""

    channels: int
    size: int
    kind: ClassVar[str] = "images"

    def batch(self, n: int) -> tuple[int, ...]:
        return (n, self.channels, self.size, self.size)

    def __str__(self) -> str:
        return f"{self.channels}×{self.size}×{self.size}"


@dataclass(frozen=True)
class PointShape:
    """Points of ``dim`` coordinates (the 2D lab's data)."""

    dim: int
    kind: ClassVar[str] = "points"

    def batch(self, n: int) -> tuple[int, ...]:
        return (n, self.dim)

    def __str__(self) -> str:
        return f"{self.dim}D points"


DataShape = ImageShape | PointShape


def data_shape(kind: str, channels: int, image_size: int | None = None) -> DataShape:
    """The shape of a dataset or checkpoint's samples from its kind ("images" or "points") and sizes."""
    if kind == "points":
        return PointShape(int(channels))
    if kind != "images":
        raise ValueError(f"unknown data kind {kind!r}; a model makes images or points")
    return ImageShape(int(channels), int(image_size))


@dataclass(frozen=True)
class FromRun:
    """A diffview run folder's checkpoint at ``step``."""

    root: Path
    step: int

    def __str__(self) -> str:
        return f"{self.root.name} at step {self.step:,}"


@dataclass(frozen=True)
class FromDiffusers:
    """A folder written by diffusers' ``save_pretrained``."""

    root: Path

    def __str__(self) -> str:
        return f"the diffusers model {self.root.name}"


@dataclass(frozen=True)
class FromTraining:
    """The weights of the model being trained, copied at ``step``."""

    step: int

    def __str__(self) -> str:
        return f"the training run at step {self.step:,}"


Origin = FromRun | FromDiffusers | FromTraining


@runtime_checkable
class PendingModel(Protocol):
    """A stand-in for a network that is only taken on a worker (the app's copy of live weights):
    ``resolve()`` → (the network, its label)."""

    def resolve(self) -> tuple[torch.nn.Module, str]: ...


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """A model you can sample from: see the module's docstring."""

    model: torch.nn.Module | PendingModel  # eval mode; pending until :meth:`resolved` on a worker
    schedule: NoiseSchedule
    objective: str  # what the network predicts: "eps", "x0" or "v"
    shape: DataShape
    origin: Origin
    label: str  # for captions: str(origin), or more exact (a live copy's step range)
    class_names: tuple[str, ...] = ()  # a class-conditional model's classes (label i is class_names[i]), else ()

    @property
    def conditional(self) -> bool:
        """Whether the model takes a class label (and so can be guided towards one)."""
        return bool(self.class_names)

    def class_index(self, name: str | int) -> int:
        """The label of the class named ``name`` (or given by its index), or a ValueError listing the classes."""
        if not self.conditional:
            raise ValueError(f"{self.label} is not class-conditional: it was trained without labels")
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(self.class_names):
            return name
        if str(name) in self.class_names:
            return self.class_names.index(str(name))
        raise ValueError(f"no class {name!r}; the classes are {', '.join(self.class_names)}")

    @property
    def clip_x0(self) -> bool:
        """Whether samplers clip x̂_0 to [−1, 1]: images live there, points do not."""
        return isinstance(self.shape, ImageShape)

    @property
    def variance(self) -> str:
        """The reverse variance σ²_t the network was trained for (a diffusers model may learn it)."""
        return model_variance(self.model)

    def sample_shape(self, n: int) -> tuple[int, ...]:
        return self.shape.batch(n)

    def resolved(self) -> ModelHandle:
        """This handle with a pending model taken (call on a worker); itself when the model is already here."""
        if not isinstance(self.model, PendingModel):
            return self
        model, label = self.model.resolve()
        return replace(self, model=model, label=label)

    def iter_sample(self, n: int, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                    seed: int = 0, device: str | torch.device = "cpu", x_T: torch.Tensor | None = None,
                    label: torch.Tensor | int | None = None, guidance_scale: float = 1.0, spacing: str = "trailing",
                    s_churn: float = 0.0) -> Iterator[SampleStep]:
        """The reverse process for ``n`` samples from the fixed ``seed`` (or from ``x_T``), step by step:
        x_T and then every step's noise come from one generator seeded ``seed``. ``sampler``, ``steps``, ``eta``,
        ``spacing`` and ``s_churn`` are core.sampling.iter_sample's. A conditional model samples
        the class ``label`` (an index, or one per sample) guided at ``guidance_scale`` (core/guidance.py);
        None samples it unconditionally."""
        if isinstance(self.model, PendingModel):
            raise ValueError(f"the weights of {self.label} are not copied yet: take them with resolved() first")
        x_T, g = noise_from_seed(self.sample_shape(n), seed) if x_T is None else (
            x_T, torch.Generator().manual_seed(seed))
        model = self.model.to(device)
        if label is not None and not self.conditional:
            raise ValueError(f"{self.label} is not class-conditional: it was trained without labels")
        label = None if label is None else torch.as_tensor(label, dtype=torch.long).to(device)
        with torch.no_grad():
            yield from iter_sample(model, x_T.shape, self.schedule, sampler=sampler, steps=steps, eta=eta,
                                   objective=self.objective, x_T=x_T.to(device), generator=g, clip_x0=self.clip_x0,
                                   label=label, guidance_scale=guidance_scale, spacing=spacing, s_churn=s_churn)

    def sample(self, n: int, *, stop: Callable[[], bool] | None = None, **kwargs) -> torch.Tensor | None:
        """x_0 of :meth:`iter_sample` (same arguments); None once ``stop()``, asked after every step, is True."""
        return final_sample(self.iter_sample(n, **kwargs), stop)


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """A run folder (or a diffusers folder) opened: where it is, how it was trained, and its model."""

    root: Path
    config: TrainConfig | None  # None for a model diffview did not train (a diffusers folder)
    checkpoint: Path  # the checkpoint file, or a diffusers folder's UNet folder
    step: int
    ema: bool  # whether ``handle`` holds the EMA weights
    handle: ModelHandle  # the weights asked for, CPU
    raw_model: torch.nn.Module | None = None  # the raw (non-EMA) weights too, when opened with ``raw_too``

    def handle_for(self, ema: bool = True) -> ModelHandle:
        """The EMA or the raw weights' handle; a run opened without ``raw_too`` (or a diffusers folder) has one."""
        return self.handle if ema or self.raw_model is None else replace(self.handle, model=self.raw_model)


__all__ = ["DataShape", "FromDiffusers", "FromRun", "FromTraining", "ImageShape", "LoadedRun", "ModelHandle",
           "Origin", "PendingModel", "PointShape", "data_shape"]
