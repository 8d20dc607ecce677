"""The training loop: plain Python that yields events and checks stop/pause flags between steps.

    trainer = Trainer(TrainConfig(steps=2000), run_dir="runs/digits")
    for event in trainer.run():
        ...  # StepEvent, PreviewEvent, CheckpointEvent, LogEvent, WarningEvent, then one DoneEvent

The loop never prints. The CLI turns events into a progress bar, the app into Qt signals.
Events carry only CPU copies of small arrays, so they may cross threads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Iterator, cast

import torch

from diffview.core.data.labels import labelled_indices
from diffview.core.data.protocol import ImageData, TrainingData
from diffview.core.data.source import source_kind
from diffview.core.io.checkpoint import CheckpointError, RunDir, load_checkpoint
from diffview.core.io.files import atomic_write_text
from diffview.core.losses import training_loss
from diffview.core.models.registry import architecture, build_model, describe_model, fresh_copy, model_from_architecture
from diffview.core.schedule import make_schedule
from diffview.core.train import distributed
from diffview.core.train.budget import StepBudget
from diffview.core.train.config import TrainConfig
from diffview.core.train.ema import EMA
from diffview.core.train.events import CheckpointEvent, DoneEvent, LogEvent, PreviewEvent, StepEvent, WarningEvent
from diffview.core.train.loss_balance import ADAPTIVE, LossBalance
from diffview.core.train.lr_schedule import horizons_of, lr_at
from diffview.core.train.optim import keep_kernel, make_adamw
from diffview.core.train.precision import describe_precision, trains_in_bf16
from diffview.core.train.preview import draw_preview, preview_noise
from diffview.core.train.resume import resumed_config
from diffview.core.train.rng import dropout_seed, own_dropout, seeded_build
from diffview.core.train.run_data import check_run_data, checkpoint_data_fields, load_training_data
from diffview.core.train.tensorboard import MISSING, TensorBoardLog, tensorboard_available


# ----------------------------------------------------------------------------- pieces
def pick_device(name: str = "auto") -> torch.device:
    """CUDA if available, then Apple MPS, then the CPU; or the device named."""
    if name != "auto":
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} was asked for but Apple MPS is not available here")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device, threads: int | None = None) -> str:
    """"CUDA (name)", "Apple MPS", or "CPU, n threads" (``threads``, else this thread's torch setting)."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS"
    n = threads or torch.get_num_threads()
    return f"CPU, {n} thread{'s' if n != 1 else ''}"


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains a UNet on images, or an MLP on 2D points, by ``config``; writes a run folder when
    ``run_dir`` is given.

    ``resume=True`` continues the run in ``run_dir`` from its latest checkpoint, exactly, by the run's
    own settings: ``config`` may change only RESUMABLE_SETTINGS (the total steps, the device, threads,
    dist_timeout, compile, precision, …; anything else differing is a ValueError), and the data is loaded by the
    run's data settings, while ``run()`` starts (so on the thread that runs it). A ``dataset`` given for a resume
    must match them. A new total continues the learning rate from where it is (core/lr_schedule.py).
    """

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike | None = None, *, resume: bool = False,
                 dataset: TrainingData | None = None):
        self.config = config.validate()
        self.run_dir = RunDir(run_dir) if run_dir is not None else None
        self.resume = resume
        self._dataset = dataset
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.step = 0
        self.report = None
        self._weights_lock = threading.Lock()  # held while the weights change, so a snapshot is consistent
        self._notes: list[str] = []  # log lines found while setting up
        self.model = self.ema = None

    # flags, safe to call from any thread
    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def unpause(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def run(self) -> Iterator[object]:
        """The training loop as a generator of events; always ends with one DoneEvent."""
        try:
            yield from self._run()
        except (ValueError, CheckpointError, OSError) as e:
            yield DoneEvent("failed", self.step, str(e))

    def _setup(self) -> Iterator[object]:
        cfg = self.config
        self.dist = distributed.join(cfg, resume=self.resume)  # torchrun's job, or a job of one process
        self.device = self.dist.device or pick_device(cfg.device)
        if self.device.type == "cpu":
            threads = cfg.threads or max(1, (os.cpu_count() or 1) // self.dist.local_world_size)
            torch.set_num_threads(threads)
        state = None
        if self.resume:
            ckpt, state = self.dist.from_main(self._read_latest_checkpoint)  # rank 0 reads, all load
            self.config = cfg = resumed_config(self.config, state, self.dist.world_size)
            flips = f", flips {'on' if cfg.flip else 'off'}" if source_kind(cfg.dataset) == "images" else ""
            yield LogEvent(f"Resuming {ckpt.parent.parent} from {ckpt.name} (step {state['step']}) on its own "
                           f"data: {cfg.dataset}{flips}.")
        else:
            cfg.horizons = [[0, cfg.steps]]
        if not self.dist.is_main:
            self.run_dir = None  # only rank 0 writes the run folder

        if self._dataset is None:
            self._dataset, self.report = load_training_data(cfg)
            yield LogEvent(self.report.summary())
            for w in self.report.warnings:
                yield WarningEvent(w)
        elif self.resume:
            check_run_data(self._dataset, cfg)
        data = self._dataset
        if data.kind == "images":  # the run records what "auto" resolved to, and the flips it trained with
            images = cast(ImageData, data)
            cfg.channels, cfg.image_size = str(images.channels), images.image_size
            cfg.flip = bool(getattr(images, "flip", cfg.flip))  # a stand-in that draws its own batches may have none
        self.schedule = make_schedule(cfg.schedule, cfg.timesteps)
        num_classes = self._check_classes(data) if cfg.conditional else 0
        if state is not None and ("unet" in state or "mlp" in state):  # a resume: the checkpoint's own network,
            self.model = model_from_architecture(state).to(self.device)  # even if its preset has changed since
        else:
            self.model = seeded_build(lambda: build_model(cfg.model, data, dropout=cfg.dropout,
                                                          num_classes=num_classes), cfg.seed).to(self.device)
        self._channels_last = self.device.type == "cuda" and data.kind == "images"  # NHWC suits cuDNN's bf16 kernels
        self._bf16 = trains_in_bf16(cfg.precision, self.device, data.kind)
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_warmup)
        self.balance = LossBalance(cfg.timesteps) if cfg.loss_weighting == ADAPTIVE else None
        self._dropout_gen = torch.Generator(device=self.device)  # reseeded each step: see core/rng.py
        self._dropout_active = own_dropout(self.model, self._dropout_gen) > 0
        self.opt = make_adamw(self.model.parameters(), self.device, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        if state is not None:
            self._load_state(state)
        self._net = self.dist.wrap(self.model)  # DDP in a job; self.model stays the plain module
        if cfg.compile:
            self._net = torch.compile(self._net)
        if self.run_dir is not None:
            self.run_dir.create()
            atomic_write_text(self.run_dir.config, cfg.to_json())
            if state is not None:
                self.run_dir.truncate_metrics(self.step)
        for note in self._notes:
            yield LogEvent(note)
        classes = f", conditional on {num_classes} classes (∅ with p = {cfg.cond_dropout:g})" if num_classes else ""
        yield LogEvent(
            f"Training a {describe_model(self.model, cfg.model)}{classes} on "
            f"{describe_device(self.device)} ({describe_precision(self._bf16)}); {cfg.schedule} schedule, "
            f"T={cfg.timesteps}, {cfg.objective} objective"
            + (f" ({cfg.loss_weighting} loss weighting)" if cfg.loss_weighting != "none" else "")
            + f", batch {cfg.batch_size}, lr {cfg.lr:g}."
            + (f" {self.dist.describe()}: global batch {cfg.global_batch_size}." if self.dist.active else "")
        )

    def _check_classes(self, data: TrainingData) -> int:
        """The number of classes a conditional run learns, its names recorded in the config (a resume's must
        be the data's)."""
        labelled = len(labelled_indices(data))  # a clear ValueError for data without labels
        names = [str(c) for c in data.class_names]
        if self.config.class_names is not None and list(self.config.class_names) != names:
            raise ValueError(f"the run was trained on the classes {', '.join(self.config.class_names)}, but its "
                             f"data now has {', '.join(names) or 'none'}")
        self.config.class_names = names
        if labelled < len(data):
            self._notes.append(f"Conditional training on the {labelled:,} labelled items: {len(data) - labelled:,} "
                               f"of {len(data):,} have no class and are left out.")
        return len(names)

    @property
    def dataset(self) -> TrainingData | None:
        """The data this trainer trains on (for a resume: the run's own, once ``run()`` has loaded it)."""
        return self._dataset

    def _read_latest_checkpoint(self):
        if self.run_dir is None:
            raise ValueError("resume needs a run folder")
        ckpt = self.run_dir.latest_checkpoint()
        if ckpt is None:
            raise CheckpointError(f"{self.run_dir.root} has no checkpoint to resume from")
        return ckpt, load_checkpoint(ckpt)

    def _run(self) -> Iterator[object]:
        yield from self._setup()
        cfg, data = self.config, self._dataset
        preview_x = preview_noise(cfg, data)
        next_batch = self.dist.batch_source(data, cfg.batch_size, self.gen, cfg.seed + self.step,
                                            conditional=cfg.conditional, cond_dropout=cfg.cond_dropout)
        metrics = open(self.run_dir.metrics, "a", encoding="utf-8") if self.run_dir else None
        board = None  # TensorBoard's copy of the record, on request (the main process of a run with a folder)
        if cfg.tensorboard and self.run_dir and self.dist.is_main:
            if tensorboard_available():  # a resume drops what an earlier session logged after its checkpoint
                board = TensorBoardLog(self.run_dir.root / "tb", cfg.timesteps, self.step + 1 if self.resume else None)
            else:
                yield WarningEvent(f"{MISSING}; training goes on without it.")
        last_ckpt_step = self.step if self.resume else None
        budget = StepBudget(cfg.minutes, cfg.warmup_steps, self.step) if cfg.minutes and \
            self.step < cfg.warmup_steps else None  # fits cfg.steps to the minutes when the warm-up ends
        t_start, rate = time.perf_counter(), None
        try:
            while self.step < cfg.steps:
                if not self._running.is_set():
                    yield LogEvent(f"Paused at step {self.step}.")
                    self._running.wait()
                    if not self._stop.is_set():
                        yield LogEvent(f"Resumed at step {self.step}.")
                if self.dist.any(self._stop.is_set()):  # every process stops at the same step
                    self._stop.set()
                    break
                t0 = time.perf_counter()
                x0, y = next_batch()
                x0 = x0.to(self.device, non_blocking=True)
                y = None if y is None else y.to(self.device, non_blocking=True)
                if self._channels_last:
                    x0 = x0.contiguous(memory_format=torch.channels_last)
                lr = lr_at(self.step, cfg)
                if self._dropout_active:  # this rank's own masks for this step (core/rng.py)
                    self._dropout_gen.manual_seed(dropout_seed(cfg.seed, self.dist.rank, self.step))
                for group in self.opt.param_groups:
                    group["lr"] = lr
                self.model.train()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16):
                    losses, t = training_loss(self._net, x0, self.schedule, objective=cfg.objective,
                                              weighting="none" if self.balance else cfg.loss_weighting,
                                              generator=self.gen, y=y,
                                              t_sampling=cfg.t_sampling,
                                              **self.dist.timesteps_and_noise(x0, self.schedule, self.gen,
                                                                              cfg.t_sampling))
                # what the backward sees; the views are shown the unweighted losses
                loss = losses.mean() if self.balance is None else (losses * self.balance.weights(t).to(losses)).mean()
                shown, losses, t = self.dist.gather_losses(losses.mean(), losses, t)  # the global batch's, every rank
                if not torch.isfinite(shown):
                    kept = f"the last checkpoint (step {last_ckpt_step}) is intact" if last_ckpt_step else \
                        "no checkpoint was written"
                    yield DoneEvent("failed", self.step,
                                    f"Loss became {shown.item()} at step {self.step + 1}; training stopped and {kept}. "
                                    "Try a lower learning rate.")
                    return
                if self.balance is not None:
                    self.balance.observe(losses, t)  # the next step's weights
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                with self._weights_lock:
                    self.opt.step()
                    self.ema.update(self.model)
                    self.step += 1

                dt = time.perf_counter() - t0
                rate = dt if rate is None else 0.9 * rate + 0.1 * dt
                if budget is not None:
                    budget.observe(self.step, dt)
                    fitted = self.dist.from_main(lambda: budget.fitted(self.step)) \
                        if self.step == budget.fit_at else None  # rank 0's total on every rank
                    if fitted is not None:
                        yield self._fit_steps(fitted, budget.per_step)
                elapsed = time.perf_counter() - t_start
                loss_value = float(shown.item())
                ev = StepEvent(self.step, loss_value, losses.detach().float().cpu().numpy(), t.cpu().numpy(), lr,
                               len(losses) / rate, elapsed, rate * (cfg.steps - self.step), cfg.steps)
                logged = None
                if metrics and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    logged = {"step": self.step, "loss": round(loss_value, 6), "lr": lr,
                              "images_per_sec": round(ev.images_per_sec, 2), "elapsed": round(elapsed, 2)}
                    metrics.write(json.dumps(logged) + "\n")
                    metrics.flush()
                if board:
                    board.step(ev, logged)
                yield ev
                if (self.step % cfg.preview_every == 0 or self.step == cfg.steps) and self.dist.is_main:
                    preview = self.preview(preview_x)
                    if board:
                        board.preview(preview)
                    yield preview
                if self.run_dir and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps):
                    yield self.save()
                    last_ckpt_step = self.step
            stopped = self._stop.is_set() and self.step < cfg.steps
            if stopped and self.run_dir and last_ckpt_step != self.step and self.step > 0:
                yield self.save()
            yield DoneEvent("stopped" if stopped else "finished", self.step,
                            f"Stopped at step {self.step}." if stopped else f"Finished {self.step} steps.")
        finally:
            if metrics:
                metrics.close()
            if board:
                board.close()

    # ------------------------------------------------------------------ helpers
    def _fit_steps(self, steps: int, per_step: float | None) -> LogEvent:
        """Fix the run's total steps to a budget's, before any step's rate depends on it (core/train/budget.py)."""
        cfg = self.config
        cfg.steps = steps
        cfg.horizons = None if cfg.horizons is None else [[0, steps]]  # before the warm-up ends there is one
        if self.run_dir is not None and self.dist.is_main:
            atomic_write_text(self.run_dir.config, cfg.to_json())
        rate = f" at the warm-up's {1000 * per_step:.0f} ms a step" if per_step else ""  # None on ranks > 0
        return LogEvent(f"{cfg.minutes:g} minutes of training: {steps:,} steps{rate}.")

    def snapshot_model(self, ema: bool = True) -> torch.nn.Module | None:
        """A CPU copy of the (EMA) model as of the last finished step; safe from any thread."""
        if self.model is None:
            return None
        return fresh_copy(self.model, self.copy_weights(ema)[1])

    def copy_weights(self, ema: bool = True, into: dict[str, torch.Tensor] | None = None
                     ) -> tuple[int, dict[str, torch.Tensor]]:
        """(step, CPU weights) of the (EMA) model as of the last finished step, all from that one step; safe
        from any thread once the model exists. ``into``: tensors of the same names and shapes (a training
        process's shared memory) to copy into, else new ones."""
        assert self.model is not None, "the model is built by run()"
        with self._weights_lock:
            source = (self.ema.model if ema else self.model).state_dict()
            if into is None:
                into = {k: v.detach().to("cpu", copy=True) for k, v in source.items()}
            else:
                for k, v in source.items():
                    into[k].copy_(v.detach())
            return self.step, into

    def preview(self, x_T: torch.Tensor) -> PreviewEvent:
        """Samples of the EMA model from ``x_T`` (core/train/preview.py), saved in the run folder."""
        return draw_preview(self.ema.model, self.schedule, self.config, self._dataset, x_T, self.step, self.device,
                            self.run_dir)

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            **architecture(self.model),
            **checkpoint_data_fields(self._dataset),
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "ema_updates": self.ema.updates,
            "optimizer": self.opt.state_dict(),
            "lr_schedule": {"kind": self.config.lr_decay, "warmup_steps": self.config.warmup_steps, "step": self.step,
                            "horizons": horizons_of(self.config)},
            # the only generator with a state to keep: dropout's is reseeded from (seed, rank, step)
            "rng": {"data": self.gen.get_state()},
            **({"loss_balance": self.balance.state_dict()} if self.balance is not None else {}),
        }

    def _load_state(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.ema.model.load_state_dict(state["ema"])
            self.ema.updates = int(state["ema_updates"])
            self.opt.load_state_dict(state["optimizer"])
            keep_kernel(self.opt, self.device)
            self.step = int(state["step"])
            self.gen.set_state(state["rng"]["data"])
            if self.balance is not None:
                self.balance.load_state_dict(state["loss_balance"])
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint does not match this run's model or settings ({e})") from None

    def save(self) -> CheckpointEvent:
        assert self.run_dir is not None
        path = self.run_dir.write_checkpoint(self.state_dict(), self.step, self.config.keep_checkpoints)
        return CheckpointEvent(self.step, str(path))


__all__ = [
    "CheckpointEvent", "DoneEvent", "LogEvent", "PreviewEvent", "StepEvent", "WarningEvent",
    "Trainer", "describe_device", "pick_device",
]
