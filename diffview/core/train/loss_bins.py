"""The training loss by timestep: per-sample losses added up in equal bins of t over 0 … T−1, shared by the
Training tab's plot and TensorBoard's histogram so the two always bin alike."""

from __future__ import annotations

import numpy as np

__all__ = ["T_BINS", "TimestepBins"]

T_BINS = 20


class TimestepBins:
    """Sums and counts of per-sample losses in ``bins`` equal bins of t: sample t goes to ⌊t · bins / T⌋,
    computed in integers (so a t on a bin's edge is never put in the bin below by rounding)."""

    def __init__(self, timesteps: int, bins: int = T_BINS):
        self.timesteps, self.bins = timesteps, bins
        self.sum, self.count = np.zeros(bins), np.zeros(bins)

    def add(self, timesteps: np.ndarray, losses: np.ndarray) -> None:
        index = np.minimum(np.asarray(timesteps, dtype=np.int64) * self.bins // self.timesteps, self.bins - 1)
        np.add.at(self.sum, index, losses)
        np.add.at(self.count, index, 1)

    def clear(self) -> None:
        self.sum[:], self.count[:] = 0, 0

    @property
    def width(self) -> float:
        return self.timesteps / self.bins

    def edges(self) -> np.ndarray:
        return np.arange(self.bins + 1) * self.width

    def centres(self) -> np.ndarray:
        return (np.arange(self.bins) + 0.5) * self.width

    def means(self) -> np.ndarray:
        """Each bin's mean loss, 0 where no sample fell."""
        return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), 0.0)
