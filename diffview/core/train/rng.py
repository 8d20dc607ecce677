"""The random streams a Trainer owns, so trainers side by side in one process never share one.

The app trains images and, in its 2D tab, points at the same time, on two threads of one process;
torch's global generator is shared by every thread, so a trainer that seeded it (or drew dropout
masks from it) would make the other one irreproducible. A trainer therefore draws from:

* its data generator (saved in checkpoints): batch indices, flips, timesteps and noise;
* its dropout generator, reseeded before every step from (seed, rank, step) by :func:`dropout_seed`:
  :func:`own_dropout` swaps each ``nn.Dropout`` of the network for :class:`GeneratorDropout`, so
  every rank of a distributed job draws its own masks, and a resumed run draws exactly the masks
  the uninterrupted one drew, with no generator state to save;
* the global CPU generator only while it builds its network, under :func:`seeded_build`: forked,
  seeded and restored under one lock, so two trainers' initial weights never interleave. (Code
  outside the trainers that draws from the global generator in those milliseconds could still
  perturb them; nothing in diffview does so without its own generator.)
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

import numpy as np
import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)
_BUILD_LOCK = threading.Lock()


def seeded_build(build: Callable[[], M], seed: int) -> M:
    """``build()`` with the global CPU generator seeded by ``seed``, then restored as it was."""
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return build()


def dropout_seed(seed: int, rank: int, step: int) -> int:
    """A 64-bit seed for one rank's dropout masks at one step: numpy's SeedSequence hash of the three."""
    entropy = [seed % 2**64, rank, step, 0x64726F70]  # the last word keeps this stream apart from others
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


class GeneratorDropout(nn.Module):
    """Dropout (Srivastava et al. 2014): keep each unit with probability 1 − p, scaled by 1/(1 − p) in
    training, its Bernoulli mask drawn from ``generator`` instead of torch's global generator."""

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {p!r}")
        self.p, self.generator = float(p), generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def own_dropout(model: nn.Module, generator: torch.Generator) -> int:
    """Swap every ``nn.Dropout`` in ``model`` for a :class:`GeneratorDropout` on ``generator`` (same p);
    returns how many draw masks (p > 0). Dropout has no weights, so the state dict is unchanged."""
    active = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, GeneratorDropout(child.p, generator))
                active += child.p > 0
    return active


__all__ = ["GeneratorDropout", "dropout_seed", "own_dropout", "seeded_build"]
