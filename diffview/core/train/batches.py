"""Training batches: (x_0, y) drawn reproducibly, for one process or this rank's slice of a torchrun job.

    next_batch = batch_source(data, 64, generator, seed)                   # unconditional: y is None
    next_batch = batch_source(data, 64, generator, seed, conditional=True,  # labels, ∅ with probability
                              cond_dropout=0.1)                             # cond_dropout (Ho & Salimans, Alg. 1)
    x0, y = next_batch()

In-memory data is indexed from ``generator`` (the trainer's data generator, whose state every checkpoint
keeps, so a resume continues exactly). Every rank of a job draws the whole global batch of
``batch_size × world_size`` from the same generator and keeps its own slice, so the generators stay
identical across ranks. Data too large for memory streams through a DataLoader whose worker decodes
files ahead of each step. A conditional model trains on the labelled items only (an image folder's
root images have no class, label −1): indices are drawn among them.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffview.core.data.images import StreamingImageDataset
from diffview.core.data.labels import labelled_indices
from diffview.core.guidance import NULL_LABEL

Batch = tuple[torch.Tensor, torch.Tensor | None]


def drop_labels(y: torch.Tensor, p: float, generator: torch.Generator, lo: int = 0, total: int | None = None):
    # y ← ∅ with probability p_uncond   (Ho & Salimans 2021, Alg. 1: the same network learns p(x) and p(x | y))
    """``y`` with each label replaced by the null class with probability ``p`` (one torch.rand over the global
    batch of ``total``, sliced from ``lo``, so every rank draws the same coins)."""
    total = len(y) if total is None else total
    drop = torch.rand(total, generator=generator)[lo:lo + len(y)] < p
    return torch.where(drop, torch.full_like(y, NULL_LABEL), y)


def batch_source(data, batch_size: int, generator: torch.Generator, seed: int, *, rank: int = 0,
                 world_size: int = 1, conditional: bool = False,
                 cond_dropout: float = 0.0) -> Callable[[], Batch]:
    """A function returning the next (x_0 float32 in [−1, 1], labels or None) of this rank's batch."""
    lo, total = rank * batch_size, batch_size * world_size
    items = labelled_indices(data) if conditional else None
    labels = torch.as_tensor(data.labels) if conditional else None

    def with_labels(x: torch.Tensor, idx: torch.Tensor) -> Batch:
        if labels is None:
            return x, None
        return x, drop_labels(labels[idx], cond_dropout, generator, lo, total)

    if isinstance(data, StreamingImageDataset):
        n = len(data) if items is None else len(items)
        if world_size == 1:
            sampler = _ForeverRandom(n, seed)
        else:  # decode only this rank's images
            sampler = _SliceOfGlobalBatches(n, seed, total, lo, batch_size)
        loader = torch.utils.data.DataLoader(_Indexed(data, items), batch_size=batch_size, sampler=sampler,
                                             num_workers=1, persistent_workers=True, prefetch_factor=4,
                                             generator=torch.Generator().manual_seed(seed + rank))  # the worker's flips
        batches = iter(loader)

        def streamed() -> Batch:
            x, idx = next(batches)
            return with_labels(x, idx)

        return streamed

    if items is None:
        if world_size == 1:
            return lambda: (data.sample_batch(batch_size, generator), None)
        return lambda: (data.sample_batch(total, generator)[lo:lo + batch_size], None)

    def indexed() -> Batch:
        idx = items[torch.randint(len(items), (total,), generator=generator)]
        x = data.points_at(idx) if data.kind == "points" else data.get_batch(idx, generator)  # images: their flips
        x = x[lo:lo + batch_size]
        return with_labels(x, idx[lo:lo + batch_size])

    return indexed


class _Indexed(torch.utils.data.Dataset):
    """``data``'s item i, or its ``items[i]``-th item, with that item's index (for its label)."""

    def __init__(self, data, items: torch.Tensor | None):
        self.data, self.items = data, items

    def __len__(self) -> int:
        return len(self.data) if self.items is None else len(self.items)

    def __getitem__(self, i: int):
        j = i if self.items is None else int(self.items[i])
        return self.data[j], j


class _ForeverRandom(torch.utils.data.Sampler):
    """Uniform random indices with replacement, without end, from a seeded generator."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randint(self.n, (1024,), generator=g).tolist()


class _SliceOfGlobalBatches(torch.utils.data.Sampler):
    """Endless uniform indices with replacement, in global batches of ``total`` from a seeded
    generator (the same on every rank); yields only ``size`` indices from ``lo`` of each."""

    def __init__(self, n: int, seed: int, total: int, lo: int, size: int):
        self.n, self.seed, self.total, self.lo, self.size = n, seed, total, lo, size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randint(self.n, (self.total,), generator=g)[self.lo:self.lo + self.size].tolist()


__all__ = ["Batch", "batch_source", "drop_labels"]
