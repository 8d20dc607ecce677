"""Memorisation: each sample's nearest training images by L2 in pixel space (Carlini et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


# ----------------------------------------------------------------------------- memorisation
@dataclass
class Neighbours:
    index: np.ndarray  # [N] the nearest training image of each sample
    distance: np.ndarray  # [N] its L2 distance in pixel space ([−1, 1] images)
    rms: np.ndarray  # [N] the same as root-mean-square per pixel, in 0..255 levels
    near_copy: np.ndarray  # [N] bool: distance < ratio × mean distance to the k nearest (Carlini et al. 2023)


def nearest_training_images(samples: torch.Tensor, train, *, k: int = 50, ratio: float = 1 / 3,
                            chunk: int = 4096, stop: Callable[[], bool] | None = None) -> Neighbours | None:
    # ‖x − y‖² = ‖x‖² − 2⟨x, y⟩ + ‖y‖² to rank, the exact ‖x − y‖² kept for each running winner
    """For each sample, its nearest training image in L2 (pixels), and whether it is a near-copy.

    ``samples`` are float images in [−1, 1]; ``train`` is a float tensor of the same kind, or an image
    dataset (``images_uint8(indices)``, e.g. a streamed folder), read ``chunk`` images at a time: only
    one chunk and the running k nearest distances are ever held. A sample is flagged when its distance
    to the nearest image is below ``ratio`` times its mean distance to the ``k`` nearest: copies stand
    out from their neighbourhood, whatever the data. ``stop()`` is asked between chunks (None if True).
    """
    from diffview.core.data.images import ImageDataset

    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n_train = len(train)
    s = samples.flatten(1).double()
    best_d2 = torch.full((len(s),), float("inf"), dtype=torch.float64)
    best_i = torch.zeros(len(s), dtype=torch.long)
    k = max(1, min(k, n_train))
    topk = torch.full((len(s), k), float("inf"), dtype=torch.float64)
    s2 = (s * s).sum(1, keepdim=True)
    for lo in range(0, n_train, chunk):
        if stop is not None and stop():
            return None
        idx = torch.arange(lo, min(lo + chunk, n_train))
        streamed = hasattr(train, "images_uint8")
        part = ImageDataset.to_float(train.images_uint8(idx)) if streamed else train[lo:lo + chunk]
        y = part.flatten(1).double()
        d2 = (s2 - 2 * s @ y.T + (y * y).sum(1)[None]).clamp_(min=0)
        i = d2.argmin(1)
        exact = (s - y[i]).pow(2).sum(1)  # no cancellation error for the chunk's winner
        better = exact < best_d2
        best_d2, best_i = torch.where(better, exact, best_d2), torch.where(better, i + lo, best_i)
        topk = torch.cat([topk, d2], 1).topk(k, dim=1, largest=False).values
    dist = best_d2.sqrt()
    mean_k = topk.clamp(min=0).sqrt().mean(1)
    rms = (best_d2 / s.shape[1]).sqrt() * 127.5
    near = dist < ratio * mean_k if n_train > 1 else dist == 0
    return Neighbours(best_i.numpy(), dist.numpy(), rms.numpy(), near.numpy())
