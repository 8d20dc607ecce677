"""Run folders and checkpoints: atomic writes, safe loads.

A run is a folder::

    RUN/config.json        the TrainConfig
    RUN/metrics.jsonl      one JSON line per logged step
    RUN/checkpoints/       step_0001000.pt …, and ``latest`` naming the newest
    RUN/samples/           preview grids, step_0001000.png …

Checkpoints hold only tensors and plain Python containers, so they load with
``torch.load(weights_only=True)``: a file that would run code when unpickled is refused."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from diffview.core.io.files import atomic_write_bytes, atomic_write_text

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint or run folder that cannot be used; the message says which and why."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Serialise ``state`` (tensors and plain containers only) atomically to ``path``."""
    import io

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; any problem is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the error below says more
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refused to load {path}: it contains objects other than tensors and plain data, "
            f"which could run code when loaded ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated and cannot be read ({e})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a diffview checkpoint (no model weights or config in it)")
    if state.get("format", 0) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was written by a newer diffview (format {state['format']}); upgrade to read it")
    return state


class RunDir:
    """The files of one training run."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"

    def create(self) -> "RunDir":
        for d in (self.root, self.checkpoints, self.samples):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def is_run(self) -> bool:
        return self.config.is_file()

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:07d}.pt"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step_{step:07d}.png"

    def list_checkpoints(self) -> list[Path]:
        return sorted(self.checkpoints.glob("step_*.pt"))

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``latest`` names, or the newest one present if the pointer is missing."""
        pointer = self.checkpoints / "latest"
        if pointer.is_file():
            candidate = self.checkpoints / pointer.read_text(encoding="utf-8").strip()
            if candidate.is_file() and candidate.parent == self.checkpoints:
                return candidate
        found = self.list_checkpoints()
        return found[-1] if found else None

    def write_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Save a checkpoint, point ``latest`` at it, and keep only the newest ``keep``."""
        path = self.checkpoint_path(step)
        save_checkpoint(state, path)
        atomic_write_text(self.checkpoints / "latest", path.name + "\n")
        for old in self.list_checkpoints()[:-max(1, keep)]:
            old.unlink(missing_ok=True)
        return path

    def read_config(self) -> dict[str, Any]:
        if not self.config.is_file():
            raise CheckpointError(f"{self.root} is not a diffview run folder (no config.json in it)")
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{self.config} cannot be read ({e})") from None

    def read_metrics(self, last: int | None = None) -> list[dict[str, Any]]:
        """The logged metric lines (a torn last line from a crash is skipped)."""
        if not self.metrics.is_file():
            return []
        rows = []
        with open(self.metrics, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        return rows[-last:] if last else rows

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric lines past ``after_step`` (a resumed run rewrites them)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))
