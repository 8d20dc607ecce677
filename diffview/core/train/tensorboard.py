"""TensorBoard event files beside ``metrics.jsonl`` (which stays the run's primary record), for people who track
their experiments there: ``RUN/tb/``, with the same scalars at the same steps as ``metrics.jsonl``, the loss by
timestep as a histogram over t at each preview, and the preview grids as images.

The ``tensorboard`` package is an optional extra (``pip install "diffview[tensorboard]"``); ``torch``'s own
``SummaryWriter`` writes the files, imported only when a run asks for them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from diffview.core.io.export import make_grid
from diffview.core.train.events import PreviewEvent, StepEvent
from diffview.core.train.loss_bins import T_BINS, TimestepBins

__all__ = ["MISSING", "T_BINS", "TensorBoardLog", "tensorboard_available"]

MISSING = ('TensorBoard logging needs the tensorboard package: pip install "diffview[tensorboard]" '
           "(or pip install tensorboard)")


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """Writes one run's events into ``folder`` (``RUN/tb``); a resumed run appends from its own step."""

    def __init__(self, folder: str | Path, timesteps: int, purge_step: int | None = None):
        if not tensorboard_available():
            raise RuntimeError(MISSING)
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(str(self.folder), purge_step=purge_step)
        self.bins = TimestepBins(timesteps)  # since the last preview; the Training tab's bins

    def step(self, ev: StepEvent, logged: dict | None) -> None:
        """Every step's per-sample losses into the loss-by-t bins; ``logged`` (the line just written to
        ``metrics.jsonl``, or None) as scalars with the same values."""
        self.bins.add(ev.timesteps, ev.losses)
        if logged is not None:
            for key, tag in (("loss", "train/loss"), ("lr", "train/lr"), ("images_per_sec", "train/images_per_sec")):
                self.writer.add_scalar(tag, logged[key], logged["step"])

    def preview(self, ev: PreviewEvent) -> None:
        """The loss by t since the last preview, as a histogram over t weighted by each bin's mean loss, and
        the preview grid (images; a 2D run has no grid)."""
        if self.bins.count.any():
            means, centres, edges = self.bins.means(), self.bins.centres(), self.bins.edges()
            self.writer.add_histogram_raw(
                "train/loss_by_t", min=float(edges[0]), max=float(edges[-1]), num=float(means.sum()),
                sum=float((means * centres).sum()), sum_squares=float((means * centres**2).sum()),
                bucket_limits=edges[1:].tolist(), bucket_counts=means.tolist(), global_step=ev.step)
            self.bins.clear()
        if ev.images is not None and ev.images.ndim == 4 and ev.images.size:
            grid = make_grid(ev.images, nrow=ev.nrow)  # uint8 [H, W, C]
            self.writer.add_image("preview", grid, ev.step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
