"""``diffview train``: the Trainer's events as a progress bar, alone or as one process of a torchrun job."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path


def _train_config(args):
    from diffview.core.data.source import source_kind
    from diffview.core.train.config import RESUMABLE_SETTINGS, TrainConfig
    from diffview.core.train.resume import load_run_config
    from diffview.core.train.tensorboard import MISSING, tensorboard_available

    if args.folder and args.dataset:
        raise ValueError("give either a folder or --dataset, not both")
    dataset = str(Path(args.folder).expanduser()) if args.folder else args.dataset
    if dataset and args.resume:
        raise ValueError("--resume continues a run on its own data; leave out the folder and --dataset")
    if args.folder and not Path(dataset).exists():
        raise ValueError(f"{'points file' if dataset.lower().endswith('.csv') else 'image folder'} {dataset} "
                         "does not exist")
    if args.resume:
        cfg = load_run_config(args.resume)
    elif args.config:
        cfg = TrainConfig.from_toml(args.config)
        if dataset:
            cfg.dataset = dataset
    else:  # 2D points get the MLP's defaults
        cfg = TrainConfig.for_dataset(dataset or TrainConfig.dataset)
    if args.minutes is not None and (args.steps or args.resume):
        raise ValueError("--minutes sets the steps itself: leave out --steps" if args.steps else
                         "--resume trains to the run's own steps (a budget in minutes was fitted when it began)")
    overrides = {key: getattr(args, key) for key in (
        "steps", "minutes", "batch_size", "image_size", "channels", "schedule", "timesteps", "objective",
        "loss_weighting", "model", "lr", "seed", "device", "threads", "preview_every", "checkpoint_every",
        "dist_timeout", "compile", "precision", "conditional", "cond_dropout", "tensorboard")}
    if args.folder and not args.resume and not args.config and source_kind(dataset) == "images":
        _scale_to_folder(cfg, dataset, overrides)
    if args.resume:
        changed = [k for k, v in overrides.items() if v is not None and k not in RESUMABLE_SETTINGS]
        if changed:
            raise ValueError(f"--resume keeps the run's settings; only --steps, --device, --threads, --precision, "
                             f"--tensorboard and --dist-timeout may change (got --{changed[0].replace('_', '-')})")
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if cfg.tensorboard and not tensorboard_available() and not args.resume:
        raise ValueError(MISSING)  # a resumed run that logged there goes on without it, with a warning
    return cfg.validate()


def _scale_to_folder(cfg, folder: str, overrides: dict) -> None:
    """Steps and batch scaled to the folder's image size and count (core/train/config.py's image_defaults),
    where the command line does not give them."""
    from diffview.core.data.files import find_image_files
    from diffview.core.data.images import DEFAULT_IMAGE_SIZE
    from diffview.core.train.config import image_defaults

    count = len(find_image_files(folder))
    if not count:
        return  # loading the folder says what is wrong with it
    side = overrides["image_size"] or cfg.image_size or DEFAULT_IMAGE_SIZE
    scaled = {k: v for k, v in image_defaults(side, count).items()
              if overrides[k] is None and not (k == "steps" and overrides["minutes"] is not None)}
    for key, value in scaled.items():
        setattr(cfg, key, value)
    if scaled:
        shown = ", ".join(f"{k.replace('_size', '')} {v}" for k, v in scaled.items())
        print(f"Defaults for {count} images at {side}×{side}: {shown} (--steps and --batch-size set them).",
              file=sys.stderr)


def train(args) -> int:
    """``train``, alone or as one process of a torchrun job (see core/distributed.py)."""
    from diffview.core.train import distributed

    cfg = _train_config(args)
    dist = distributed.from_env(cfg.device, cfg.dist_timeout)
    broken = False
    try:
        return _train_in(args, cfg, dist)
    except (ValueError, OSError, RuntimeError) as e:
        message = distributed.failure_message(e)
        if message is not None:
            broken = True
            print(f"diffview: error: {message}", file=sys.stderr)
            return 1
        if getattr(e, "from_rank0", False):  # rank 0 reports it for the whole job
            return 1
        raise
    finally:
        dist.close(destroy=not broken)  # a broken group may hang in its goodbye; exiting frees it


def _run_folder(args, cfg) -> Path:
    from diffview.core.models.unet import PRESETS, unet_config

    if args.resume:
        return Path(args.resume)
    name = Path(cfg.dataset).name if Path(cfg.dataset).exists() else cfg.dataset
    out = Path(args.out) if args.out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "config.json").exists():
        raise ValueError(f"{out} already holds a run; use --resume {out} to continue it, or another --out")
    if cfg.image_size and cfg.model in PRESETS:
        unet_config(cfg.model, 1).check_image_size(cfg.image_size)
    return out


def _train_in(args, cfg, dist) -> int:
    from tqdm import tqdm

    from diffview.core.analysis.report import LossByT, samples_report
    from diffview.core.train import trainer as tr

    out = dist.from_main(lambda: _run_folder(args, cfg))  # rank 0 names it (the default holds the time)
    trainer = tr.Trainer(cfg, out, resume=bool(args.resume))
    interrupts = []

    def on_sigint(signum, frame):
        now = time.monotonic()
        if interrupts and dist.active and now - interrupts[0] < 2.0:
            return  # the same Ctrl-C twice: older torchruns forward it to ranks that got it already
        interrupts.append(now)
        if len(interrupts) > 1:
            raise KeyboardInterrupt
        trainer.stop()
        if dist.is_main:
            tqdm.write("Stopping after this step and writing a checkpoint… (Ctrl-C again to abort without saving)")

    old = signal.signal(signal.SIGINT, on_sigint)
    if not dist.is_main:
        try:
            return _train_quietly(trainer, dist)
        finally:
            signal.signal(signal.SIGINT, old)
    bar = None
    done = preview = None
    loss_by_t = LossByT(cfg.timesteps)
    try:
        for ev in trainer.run():
            if isinstance(ev, tr.StepEvent):
                loss_by_t.add(ev)
                if bar is None:
                    bar = tqdm(total=ev.total_steps, initial=ev.step - 1, unit="step", dynamic_ncols=True,
                               smoothing=0.1, file=sys.stderr)
                if bar.total != ev.total_steps:  # a budget in minutes fitted the steps
                    bar.total = ev.total_steps
                bar.update(1)
                bar.set_postfix_str(f"loss {ev.loss:.4f}  {ev.images_per_sec:.0f} img/s  lr {ev.lr:.2e}", refresh=False)
            elif isinstance(ev, (tr.LogEvent, tr.WarningEvent)):
                prefix = "warning: " if isinstance(ev, tr.WarningEvent) else ""
                (tqdm.write if bar else print)(prefix + ev.message, file=sys.stderr)
            elif isinstance(ev, tr.PreviewEvent) and ev.path:
                preview = ev
                tqdm.write(f"step {ev.step}: samples in {ev.path} ({ev.seconds:.1f} s)", file=sys.stderr)
            elif isinstance(ev, tr.CheckpointEvent):
                tqdm.write(f"step {ev.step}: checkpoint {ev.path}", file=sys.stderr)
            elif isinstance(ev, tr.DoneEvent):
                done = ev
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print(f"Aborted at step {trainer.step} without saving; the last checkpoint in {out} is intact.",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, old)
        if bar:
            bar.close()
    assert done is not None
    if done.reason == "failed":
        print(f"diffview: error: {done.message}", file=sys.stderr)
        return 1
    print(f"{done.message} Run folder: {out}", file=sys.stderr)
    if trainer.dataset is not None:
        for line in samples_report(trainer.dataset, preview, loss_by_t):
            print(line, file=sys.stderr)
    print(f"Sample from it with: diffview sample {out}", file=sys.stderr)
    return 0


def _train_quietly(trainer, dist) -> int:
    """Ranks > 0 of a torchrun job: the same training, printing only this rank's own errors."""
    from diffview.core.train.trainer import DoneEvent

    done = None
    try:
        for ev in trainer.run():
            if isinstance(ev, DoneEvent):
                done = ev
    except KeyboardInterrupt:
        return 130
    if done.reason != "failed":
        return 0
    if done.message not in dist.mirrored_errors:
        print(f"diffview: error: rank {dist.rank}: {done.message}", file=sys.stderr)
    return 1
