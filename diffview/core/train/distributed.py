"""Training one model on several processes: torchrun starts them, ``torch.distributed`` connects them.

    torchrun --nproc_per_node=4 -m diffview train --dataset digits --out runs/ddp

Each process (a *rank*) joins the process group torchrun describes in its environment (NCCL on
CUDA, one GPU per process at ``cuda:LOCAL_RANK``; gloo on the CPU), and the model is wrapped in
DistributedDataParallel, which averages the gradients in the backward pass.

How the work is shared, and why it is exact:

* ``batch_size`` is the batch of one process; the global batch is ``batch_size × world_size``.
  Every rank draws the same global batch from the same seeded generator (image indices, flips,
  timesteps and noise, in the order a single process draws them) and computes only its own slice
  ``[rank·b, (rank+1)·b)``. The averaged gradient is the gradient of the global batch's mean loss,
  so a step equals a single process training on the global batch (up to float summation order).
  Data streamed from disk is decoded by each rank for its own slice only.
* The generators therefore stay identical on every rank: rank 0's checkpoint resumes the whole
  job exactly, and a run may resume with any process count that divides its global batch.
* Only rank 0 touches the run folder: it reads the checkpoint to resume (and sends it to the
  others) and writes the config, metrics, previews and checkpoints.
* Dropout is the one draw that must differ between ranks: each rank reseeds its own dropout
  generator every step from (seed, rank, step) (core/rng.py), so its masks are its own and a
  resumed run draws the same ones again.
* Every step the ranks agree whether to stop (Ctrl-C reaching any of them) and see the whole
  global batch's losses, so a non-finite loss stops all of them at the same step.
* The process group has a timeout (``dist_timeout``, 120 s): a rank whose peer died or hangs
  gets an error instead of waiting forever, and raises :class:`RankFailure` with one clear line.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from diffview.core.io.checkpoint import CheckpointError
from diffview.core.losses import sample_timesteps
from diffview.core.schedule import NoiseSchedule
from diffview.core.train.batches import Batch, batch_source

T = TypeVar("T")
_current: "Distributed | None" = None


class RankFailure(RuntimeError):
    """Another process of the job failed, left or stopped answering; the message is one line."""


class Distributed:
    """This process's place in the job; a job of one (``world_size == 1``) does no communication."""

    def __init__(self, world_size: int = 1, rank: int = 0, local_rank: int = 0, local_world_size: int = 1,
                 device: torch.device | None = None, backend: str | None = None, owns_group: bool = False):
        self.world_size, self.rank, self.local_rank = world_size, rank, local_rank
        self.local_world_size = local_world_size
        self.device = device  # the device this rank must use; None: the config's choice
        self.backend = backend
        self._owns_group = owns_group
        self.mirrored_errors: set[str] = set()  # errors rank 0 reported for the whole job

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.world_size} processes ({self.backend})" if self.active else "1 process"

    # ------------------------------------------------------------------ agreeing
    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (one small all-reduce)."""
        if not self.active:
            return flag
        x = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self._collective(dist.all_reduce, x, op=dist.ReduceOp.MAX)
        return bool(x.item() > 0)

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 alone, its result (or its error) sent to every rank."""
        if not self.active:
            return fn()
        box: list = [None]
        error = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except (ValueError, OSError, CheckpointError) as e:
                error = e
                kind = "checkpoint" if isinstance(e, CheckpointError) else "os" if isinstance(e, OSError) else "value"
                box[0] = ("error", kind, str(e))
        self._collective(dist.broadcast_object_list, box, src=0)
        if error is not None:
            raise error
        if box[0][0] == "error":
            _, kind, message = box[0]
            self.mirrored_errors.add(message)
            e = {"checkpoint": CheckpointError, "os": OSError, "value": ValueError}[kind](message)
            e.from_rank0 = True  # rank 0 reports it; the other ranks need not repeat it
            raise e
        return box[0][1]

    # ------------------------------------------------------------------ the training step
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model to run forward and backward: DistributedDataParallel around ``model`` in a job.

        DDP copies rank 0's weights to every rank here. EMA and checkpoints use ``model`` itself,
        so a checkpoint's keys carry no ``module.`` prefix and load anywhere.
        """
        if not self.active:
            return model
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        try:
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        except RuntimeError as e:
            raise self._failure(e) from None

    def batch_source(self, data, batch_size: int, generator: torch.Generator, seed: int,
                     **labels) -> Callable[[], Batch]:
        """This rank's slice of each global batch, drawn as one process would draw the global batch
        (core/train/batches.py; ``labels``: its ``conditional`` and ``cond_dropout``)."""
        return batch_source(data, batch_size, generator, seed, rank=self.rank, world_size=self.world_size, **labels)

    def timesteps_and_noise(self, x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator,
                            t_sampling: str = "uniform") -> dict:
        """``t`` and ``noise`` for this rank's slice, drawn for the whole global batch as
        :func:`~diffview.core.losses.training_loss` draws them; empty (let it draw) for one process."""
        if not self.active:
            return {}
        b = x0.shape[0]
        total, lo = b * self.world_size, self.rank * b
        t = sample_timesteps(schedule, total, t_sampling=t_sampling, generator=generator)
        noise = torch.randn((total, *x0.shape[1:]), generator=generator, device=generator.device, dtype=x0.dtype)
        return {"t": t[lo:lo + b].to(x0.device), "noise": noise[lo:lo + b].to(x0.device)}

    def gather_losses(self, loss: torch.Tensor, losses: torch.Tensor, t: torch.Tensor):
        """(mean loss, per-sample losses, timesteps) of the whole global batch, the same on every rank."""
        if not self.active:
            return loss, losses, t
        b = losses.shape[0]
        packed = torch.cat([losses.detach().double(), t.double()])  # timesteps < 2^53 are exact
        parts = [torch.empty_like(packed) for _ in range(self.world_size)]
        self._collective(dist.all_gather, parts, packed)
        all_losses = torch.cat([p[:b] for p in parts]).float()
        return all_losses.mean(), all_losses, torch.cat([p[b:] for p in parts]).long()

    # ------------------------------------------------------------------ failures and the end
    def _collective(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            raise self._failure(e) from None

    def _failure(self, e: BaseException) -> RankFailure:
        return RankFailure(f"rank {self.rank}: another rank failed or left; stopping ({_first_line(e)})")

    def close(self, destroy: bool = True) -> None:
        """Leave the process group (when this object joined it); ``destroy=False`` after a failure."""
        global _current
        if destroy and self._owns_group and dist.is_initialized():
            try:  # leave together: a rank tearing gloo down while a peer still writes its checkpoint can abort
                dist.barrier()
            except Exception:  # noqa: BLE001 - a peer that is gone already: destroy regardless
                pass
            dist.destroy_process_group()
        self._owns_group = False
        if _current is self:
            _current = None


SINGLE = Distributed()


def from_env(device: str = "auto", timeout: float = 120) -> Distributed:
    """Join the job torchrun describes in the environment (``WORLD_SIZE`` > 1), once per process.

    ``device`` is the config's: ``auto`` or ``cuda…`` with CUDA present trains on
    ``cuda:LOCAL_RANK`` over NCCL, ``cpu`` over gloo. Without torchrun this is :data:`SINGLE`.
    """
    global _current
    if _current is not None:
        return _current
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if device.startswith("mps"):
        raise ValueError("several processes train on CUDA GPUs or on the CPU, not on Apple MPS")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {rank} needs GPU {local_rank} but only {torch.cuda.device_count()} "
                             "are visible; start at most one process per GPU (--nproc_per_node)")
        dev, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(dev)
    else:
        dev, backend = torch.device("cpu"), "gloo"
    owns = not dist.is_initialized()
    if owns:
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout),
                                    **({"device_id": dev} if cuda else {}))
        except (RuntimeError, ValueError) as e:
            raise RankFailure(f"rank {rank}: could not join the other {world - 1} process(es) "
                              f"({_first_line(e)})") from None
    _current = Distributed(world, rank, local_rank, local_world, dev, backend, owns)
    return _current


def join(cfg, resume: bool = False) -> Distributed:
    """The job this process trains ``cfg`` in (see :func:`from_env`), with ``cfg``'s batch fitted to it.

    A new run records ``world_size`` and ``global_batch_size``. A resumed run keeps its global
    batch and splits it over the processes now present, so it may resume on another count.
    """
    d = from_env(cfg.device, cfg.dist_timeout)
    fit_batch(cfg, d.world_size, resume)
    return d


def fit_batch(cfg, world_size: int, resume: bool = False) -> None:
    """Set ``cfg``'s per-process batch for ``world_size`` processes (see :func:`join`)."""
    if resume:
        total = cfg.global_batch_size or cfg.batch_size * cfg.world_size
        if total % world_size:
            raise ValueError(f"the run trained with a global batch of {total}, which {world_size} processes "
                             "cannot share evenly; resume with a process count that divides it")
        cfg.batch_size = total // world_size
    cfg.world_size = world_size
    cfg.global_batch_size = cfg.batch_size * world_size


def failure_message(e: BaseException) -> str | None:
    """One line for an error that means another rank failed or left, else None."""
    if isinstance(e, RankFailure):
        return str(e)
    d = _current
    dist_error = getattr(dist, "DistError", ())
    if d is not None and d.active and (isinstance(e, dist_error) or any(
            k in str(e) for k in ("Connection closed", "Connection reset", "Timed out", "NCCL", "gloo"))):
        return str(d._failure(e))
    return None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a whole number") from None


def _first_line(e: BaseException) -> str:
    """The first line of an error, without gloo's "[path/to/source.cc:78] " prefix."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line
