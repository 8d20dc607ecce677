"""The ``diffview`` command: ``diffview`` opens the app; subcommands work headless.

    diffview train [FOLDER | --dataset digits] [--out RUN] …   train, with a progress bar
    diffview sample RUN [--n 64] [--sampler ddim] …              a grid PNG (and a GIF of the reverse process)
    diffview info RUN                                            what a run is and how far it got

RUN may also be a folder written by diffusers' save_pretrained (a UNet2DModel and its scheduler).
Under torchrun (``torchrun --nproc_per_node=N -m diffview train …``) every process runs ``train``;
rank 0 alone writes the run folder and prints, the others print only their own errors.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from diffview import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, not a usage block."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from diffview.core.data.toy2d import TOY_DATASETS
    from diffview.core.diffusion import OBJECTIVES
    from diffview.core.models.registry import MODEL_PRESETS
    from diffview.core.sampling import SAMPLERS
    from diffview.core.schedule import SCHEDULES

    parser = _Parser(prog="diffview",
                     description="Train a denoising diffusion model and watch the mathematics at work. "
                                 "Without a command, opens the app.")
    parser.add_argument("--version", action="version", version=f"diffview {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model headless, with a progress bar",
                       description="Train on an image folder or a built-in dataset. Ctrl-C stops after the "
                                   "current step and writes a checkpoint.")
    t.add_argument("folder", nargs="?", help="a folder of images (searched recursively), or a CSV of 2D points")
    t.add_argument("--dataset", help=f"a built-in dataset: digits (default) or shapes; or 2D points: "
                                     f"{', '.join(TOY_DATASETS)}")
    t.add_argument("--out", help="the run folder to write (default: runs/NAME-DATE-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    t.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file; flags override them")
    t.add_argument("--steps", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--image-size", type=_positive_int)
    t.add_argument("--channels", choices=("auto", "1", "3"))
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--timesteps", type=_positive_int)
    t.add_argument("--objective", choices=OBJECTIVES)
    t.add_argument("--model", choices=MODEL_PRESETS)
    t.add_argument("--lr", type=_float)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: one per core)")
    t.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (a first step of compiling; measure whether it helps)")
    t.add_argument("--dist-timeout", type=_positive_int, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others before giving up (default 120)")
    t.add_argument("--preview-every", type=_positive_int)
    t.add_argument("--checkpoint-every", type=_positive_int)

    s = sub.add_parser("sample", help="sample a grid of images from a trained run")
    s.add_argument("run", help="a run folder written by 'diffview train', or a diffusers model folder")
    s.add_argument("--n", type=_positive_int, default=64, help="number of images (default 64)")
    s.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    s.add_argument("--steps", type=_positive_int, help="sampling steps (default: 50 for DDIM, T for DDPM)")
    s.add_argument("--eta", type=_float, default=0.0, help="DDIM η: 0 deterministic, 1 like DDPM")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    s.add_argument("--out", help="the grid PNG (default: RUN/samples/sample-….png)")
    s.add_argument("--gif", help="also write the reverse process as a GIF (x_t beside x̂_0)")
    s.add_argument("--csv", help="2D runs: also write the sampled points as x,y rows")
    s.add_argument("--device", default="cpu")

    i = sub.add_parser("info", help="what a run is, how far it got, and its last losses")
    i.add_argument("run")
    return parser


COMMANDS = ("train", "sample", "info")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `diffview FOLDER` / `diffview RUN_DIR` opens the app there; anything else is a command.
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        if len(argv) > 1:
            build_parser().error(f"unexpected arguments after {argv[0]!r}: {' '.join(argv[1:])}")
        return _open_app(argv[0])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "info":
            from diffview.core.runs.open import describe_run

            print(describe_run(args.run))
            return 0
        return _open_app(None)
    except (ValueError, OSError, RuntimeError) as e:  # DataError, CheckpointError, bad settings, IO
        print(f"diffview: error: {e}", file=sys.stderr)
        return 1


def _open_app(path: str | None) -> int:
    if path is not None and not Path(path).exists():
        print(f"diffview: error: {path!r} is neither a command ({', '.join(COMMANDS)}) nor an existing folder",
              file=sys.stderr)
        return 2
    from diffview.guistack import gui_import_problem

    try:
        from diffview.gui import main_window  # noqa: F401  (Qt, pyqtgraph and the app's own modules, loaded now)
        from diffview.gui.app import run_app
    except ImportError as e:
        print(f"diffview: error: the desktop app cannot start: {gui_import_problem(e)}. The headless commands "
              "still work: diffview train, sample, info", file=sys.stderr)
        return 1
    return run_app(path)


def _train_config(args):
    from diffview.core.train.config import RESUMABLE_SETTINGS, TrainConfig
    from diffview.core.train.resume import load_run_config

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
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "image_size": args.image_size,
                 "channels": args.channels, "schedule": args.schedule, "timesteps": args.timesteps,
                 "objective": args.objective, "model": args.model, "lr": args.lr, "seed": args.seed,
                 "device": args.device, "threads": args.threads, "preview_every": args.preview_every,
                 "checkpoint_every": args.checkpoint_every, "dist_timeout": args.dist_timeout,
                 "compile": args.compile}
    if args.resume:
        changed = [k for k, v in overrides.items() if v is not None and k not in RESUMABLE_SETTINGS]
        if changed:
            raise ValueError(f"--resume keeps the run's settings; only --steps, --device, --threads and "
                             f"--dist-timeout may change (got --{changed[0].replace('_', '-')})")
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg.validate()


def _train(args) -> int:
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
    done = None
    try:
        for ev in trainer.run():
            if isinstance(ev, tr.StepEvent):
                if bar is None:
                    bar = tqdm(total=ev.total_steps, initial=ev.step - 1, unit="step", dynamic_ncols=True,
                               smoothing=0.1, file=sys.stderr)
                bar.update(1)
                bar.set_postfix_str(f"loss {ev.loss:.4f}  {ev.images_per_sec:.0f} img/s  lr {ev.lr:.2e}", refresh=False)
            elif isinstance(ev, (tr.LogEvent, tr.WarningEvent)):
                prefix = "warning: " if isinstance(ev, tr.WarningEvent) else ""
                (tqdm.write if bar else print)(prefix + ev.message, file=sys.stderr)
            elif isinstance(ev, tr.PreviewEvent) and ev.path:
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


def _sample(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from diffview.core.io.export import make_grid, save_gif, save_grid, to_uint8
    from diffview.core.runs.handle import FromDiffusers, PointShape
    from diffview.core.runs.open import open_run

    run = open_run(args.run, ema=not args.raw)
    model = run.handle
    if args.raw and run.config is None:
        raise ValueError(f"--raw: {run.root} is a diffusers model, saved with one set of weights; leave out --raw")
    steps = args.steps or (50 if args.sampler == "ddim" else model.schedule.timesteps)
    if steps > model.schedule.timesteps:
        raise ValueError(f"--steps {steps} exceeds the run's T = {model.schedule.timesteps}")
    if not 0.0 <= args.eta <= 1.0:
        raise ValueError(f"--eta must lie in [0, 1], got {args.eta}")
    # a diffusers folder (often a download cache) is not written into: its default grid goes to the current folder
    out = Path(args.out) if args.out else (run.root / "samples" if run.config else Path(".")) / (
        f"sample-{args.sampler}{steps}-seed{args.seed}" + (f"-step{run.step}.png" if run.config else ".png"))
    if isinstance(model.shape, PointShape):
        return _sample_points(run, args, steps, out)
    if args.csv:
        raise ValueError("--csv writes 2D points; this run makes images")
    keep_every = max(1, steps // 60)
    frames, final = [], None
    t0 = time.perf_counter()
    for st in tqdm(model.iter_sample(args.n, sampler=args.sampler, steps=steps, eta=args.eta, seed=args.seed,
                                     device=args.device), total=steps, unit="step", file=sys.stderr):
        if args.gif and (st.index % keep_every == 0 or st.t_prev < 0):
            frames.append(np.concatenate([make_grid(to_uint8(st.x_t)), make_grid(to_uint8(st.x0_pred))], axis=1))
        final = st.x_prev
    seconds = time.perf_counter() - t0
    meta = {"seed": args.seed, "step": run.step, "schedule": model.schedule.name,
            "timesteps": model.schedule.timesteps, "sampler": args.sampler, "sampler_steps": steps, "eta": args.eta,
            "objective": model.objective,
            "weights": "diffusers" if isinstance(model.origin, FromDiffusers) else "raw" if args.raw else "ema",
            "run": str(run.root)}
    images = to_uint8(final)
    save_grid(images, out, metadata=meta, scale=2)
    print(f"Wrote {args.n} samples to {out} ({args.sampler}, {steps} steps, {seconds:.1f} s)", file=sys.stderr)
    if args.gif:
        frames.append(np.concatenate([make_grid(images), make_grid(images)], axis=1))
        save_gif(frames, args.gif, scale=2)
        print(f"Wrote the reverse process (x_t | x̂_0, {len(frames)} frames) to {args.gif}", file=sys.stderr)
    return 0


def _sample_points(run, args, steps: int, out: Path) -> int:
    """2D runs: a scatter plot PNG (the data faintly behind), the points as CSV, and the distance to the data."""
    from diffview.core.data.points import PointDataset, distance_to_data, save_points_csv, scatter_image
    from diffview.core.data.source import load_source
    from diffview.core.io.export import save_grid

    if args.gif:
        raise ValueError("--gif shows images; for 2D runs open the run in the app to watch the trajectories")
    t0 = time.perf_counter()
    final = run.handle.sample(args.n, sampler=args.sampler, steps=steps, eta=args.eta, seed=args.seed,
                              device=args.device)
    seconds = time.perf_counter() - t0
    points = final.float().cpu()
    try:
        data = load_source(run.config.dataset)[0]
    except ValueError:  # a CSV that has since moved: the samples still get written
        data = None
    dataset = data if isinstance(data, PointDataset) else None
    meta = {"seed": args.seed, "step": run.step, "sampler": args.sampler, "sampler_steps": steps, "eta": args.eta,
            "objective": run.handle.objective, "run": str(run.root)}
    message = f"Wrote {args.n:,} points to {out} ({args.sampler}, {steps} steps, {seconds:.1f} s)"
    if dataset is not None:
        distance, floor, n = distance_to_data(points, dataset)
        meta.update(sliced_wasserstein=round(distance, 5), data_floor=round(floor, 5))
        message += (f"; sliced Wasserstein distance to the data {distance:.4f} on {n:,} points "
                    f"(two draws of the data: {floor:.4f})")
    image = scatter_image(points, size=512, reference=dataset.points if dataset is not None else None)
    save_grid(image[None], out, metadata=meta, padding=0)
    print(message, file=sys.stderr)
    if args.csv:
        save_points_csv(points, args.csv)
        print(f"Wrote the points to {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
