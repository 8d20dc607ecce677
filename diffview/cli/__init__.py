"""The ``diffview`` command: ``diffview`` opens the app; subcommands work headless.

    diffview train [FOLDER | --dataset digits] [--out RUN] …   train, with a progress bar
    diffview train … --conditional                               class-conditional, for classifier-free guidance
    diffview sample RUN [--n 64] [--sampler ddim] …              a grid PNG (and a GIF of the reverse process)
    diffview sample RUN --label all --guidance-scale 3 --npz F   one row per class, guided; the samples as .npz
    diffview invert RUN IMAGE --steps 50 --out recon.png         DDIM inversion to x_T and back; the RMS error
    diffview interpolate RUN A B --frames 12 --gif morph.gif      a morph along the slerp of two images' x_T
    diffview interpolate RUN --seed 1 --seed 2 --out strip.png   … or of two seeds' x_T
    diffview info RUN                                            what a run is and how far it got

RUN may also be a folder written by diffusers' save_pretrained (a UNet2DModel and its scheduler).
Under torchrun (``torchrun --nproc_per_node=N -m diffview train …``) every process runs ``train``;
rank 0 alone writes the run folder and prints, the others print only their own errors.
"""

from __future__ import annotations

import argparse
import sys
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
    from diffview.core.sampling import DEFAULT_CHURN, DEFAULT_SAMPLER, SAMPLERS, SPACINGS
    from diffview.core.schedule import SCHEDULES
    from diffview.core.train.config import LOSS_WEIGHTINGS
    from diffview.core.train.precision import PRECISIONS

    parser = _Parser(prog="diffview",
                     description="Train a denoising diffusion model and watch the mathematics at work. "
                                 "Without a command, opens the app.")
    parser.add_argument("--version", action="version", version=f"diffview {__version__}")
    parser.add_argument("--install-desktop-entry", action="store_true",
                        help="Linux: add diffview to the desktop's launchers (a .desktop file and the icon under "
                             "$XDG_DATA_HOME, ~/.local/share)")
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
    t.add_argument("--steps", type=_positive_int, help="training steps (a folder's default is scaled to its "
                                                       "image size: benchmarks/README.md)")
    t.add_argument("--minutes", type=_float, help="train for this many minutes instead: the steps that fill them, "
                                                  "fitted from the warm-up's speed on this machine")
    t.add_argument("--batch-size", type=_positive_int, help="images per step (default 64, at most the folder's count)")
    t.add_argument("--image-size", type=_positive_int)
    t.add_argument("--channels", choices=("auto", "1", "3"))
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--timesteps", type=_positive_int)
    t.add_argument("--objective", choices=OBJECTIVES)
    t.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS,
                   help="each sample's weight in the loss: adaptive (the default: each timestep's loss over its "
                        "running mean, EDM2's balance), none, or min_snr (Min-SNR-5)")
    t.add_argument("--model", choices=MODEL_PRESETS)
    t.add_argument("--lr", type=_float)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: one per core)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="the network's arithmetic while it trains: bf16 autocast or fp32; auto (default) takes bf16 "
                        "on a GPU or a CPU with native bfloat16 (AVX512-BF16, AMX), fp32 elsewhere")
    t.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (a first step of compiling; measure whether it helps)")
    t.add_argument("--dist-timeout", type=_positive_int, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others before giving up (default 120)")
    t.add_argument("--conditional", action="store_true", default=None,
                   help="train a class-conditional model (labels from class subfolders, a built-in's classes or "
                        "a CSV's third column) that classifier-free guidance can steer")
    t.add_argument("--cond-dropout", type=_float, metavar="P",
                   help="with --conditional: the probability a label is replaced by the null class (default 0.1)")
    t.add_argument("--preview-every", type=_positive_int)
    t.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="also write TensorBoard event files into RUN/tb (loss, lr, images/s, the loss by t, the "
                        "previews); needs the tensorboard extra: pip install \"diffview[tensorboard]\"")
    t.add_argument("--checkpoint-every", type=_positive_int)

    s = sub.add_parser("sample", help="sample a grid of images from a trained run")
    s.add_argument("run", help="a run folder written by 'diffview train', or a diffusers model folder")
    s.add_argument("--n", type=_positive_int,
                   help="number of samples (default 64); with --label, per class (default 8)")
    s.add_argument("--label", action="append", metavar="NAME",
                   help="a conditional run: sample this class (repeat for several, one row each; 'all': every class)")
    s.add_argument("--guidance-scale", type=_float, metavar="S",
                   help="classifier-free guidance ε_u + S (ε_c − ε_u): 0 unconditional, 1 conditional, > 1 guided "
                        "(default: the run's, 3)")
    s.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                   help=f"default {DEFAULT_SAMPLER}, with S_churn {DEFAULT_CHURN:g}: the best samples per network "
                        "evaluation measured (benchmarks/README.md)")
    s.add_argument("--steps", type=_positive_int,
                   help="sampling steps (default: T for ddpm, 25 for heun, 50 for the others, at most T)")
    s.add_argument("--eta", type=_float, default=0.0, help="DDIM η: 0 deterministic, 1 like DDPM")
    s.add_argument("--spacing", choices=SPACINGS, default="trailing",
                   help="which timesteps the steps visit (karras: Karras et al.'s ρ = 7 ramp in σ)")
    s.add_argument("--churn", type=_float, metavar="S_CHURN",
                   help=f"heun: EDM's stochastic churn S_churn (Alg. 2; default {DEFAULT_CHURN:g}; 0: deterministic, "
                        "Alg. 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    s.add_argument("--out", help="the grid PNG (default: RUN/samples/sample-….png)")
    s.add_argument("--gif", help="also write the reverse process as a GIF (x_t beside x̂_0)")
    s.add_argument("--csv", help="2D runs: also write the sampled points as x,y rows")
    s.add_argument("--npz", help="also write the samples as arr_0 (uint8 [N, H, W, C]; 2D runs: float32 [N, 2]) and, "
                                 "for a conditional run, their labels as arr_1 (guided-diffusion's evaluation layout)")
    s.add_argument("--device", default="cpu")

    _add_inversion_parsers(sub)

    i = sub.add_parser("info", help="what a run is, how far it got, and its last losses")
    i.add_argument("run")
    return parser


def _add_inversion_parsers(sub) -> None:
    common = _Parser(add_help=False)
    common.add_argument("run", help="a run folder written by 'diffview train', or a diffusers model folder")
    common.add_argument("--steps", type=_positive_int, help="DDIM steps each way (default 50, at most T)")
    common.add_argument("--label", action="append", metavar="NAME",
                        help="a conditional run: invert and decode as this class (the morph stays within it)")
    common.add_argument("--guidance-scale", type=_float, metavar="S",
                        help="with --label: ε_u + S (ε_c − ε_u) (default 1, the conditional model, for images; "
                             "the run's, 3, for seeds)")
    common.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    common.add_argument("--device", default="cpu")

    v = sub.add_parser("invert", parents=[common], help="DDIM inversion of an image to x_T and back",
                       description="Run DDIM (η = 0) from the image up to x_T and back down with the same steps; "
                                   "print the reconstruction's RMS error in grey levels (0–255). The image is "
                                   "resized, centre-cropped and converted to the model's channels as training "
                                   "images are.")
    v.add_argument("image", help="an image file")
    v.add_argument("--out", help="the reconstruction PNG (default: IMAGE-recon-ddimN.png here)")
    v.add_argument("--xt", metavar="PNG", help="also write x_T (clipped to [−1, 1] to show it)")

    m = sub.add_parser("interpolate", parents=[common], help="a morph between two images or two seeds",
                       description="Invert two images (or draw two seeds' x_T), slerp between the two x_T and decode "
                                   "each frame with DDIM (η = 0).")
    m.add_argument("a", nargs="?", help="the first image (or use --seed twice)")
    m.add_argument("b", nargs="?", help="the second image")
    m.add_argument("--seed", type=int, action="append", help="a seed whose x_T is an end (give two)")
    m.add_argument("--frames", type=_positive_int, default=12, help="frames from A to B, both ends included "
                                                                    "(default 12)")
    m.add_argument("--out", help="the strip PNG (default without --gif: interpolate-ddimN.png here)")
    m.add_argument("--gif", help="the morph as a looping GIF, there and back")
    m.add_argument("--scale", type=_positive_int, help="enlarge each frame this many times (default: to 128 px)")


COMMANDS = ("train", "sample", "invert", "interpolate", "info")


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
            from diffview.cli.train import train

            return train(args)
        if args.command == "sample":
            from diffview.cli.sample import sample

            return sample(args)
        if args.command in ("invert", "interpolate"):
            from diffview.cli import invert

            return getattr(invert, args.command)(args)
        if args.command == "info":
            from diffview.core.runs.open import describe_run

            print(describe_run(args.run))
            return 0
        if args.install_desktop_entry:
            from diffview.desktop import install_desktop_entry

            for path in install_desktop_entry():
                print(f"wrote {path}")
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
              "still work: diffview train, sample, invert, interpolate, info", file=sys.stderr)
        return 1
    return run_app(path)


if __name__ == "__main__":
    sys.exit(main())
