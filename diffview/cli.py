"""The ``diffview`` command: ``diffview`` opens the app; subcommands work headless."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffview",
        description="Train a denoising diffusion model and watch the mathematics at work.",
    )
    parser.add_argument("--version", action="version", version=f"diffview {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(f"diffview {__version__}")
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
