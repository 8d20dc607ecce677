"""A judge: a small classifier trained on a run's own labelled data, to read guided samples against.

A guidance sweep asks of every sample "does it look like its label?". The judge answers: a small CNN
for images (two 3×3 convolutions with max-pooling, then a linear layer over a 4×4 average-pooled map,
on images in [−1, 1] as the dataset makes them), a small MLP for 2D points. It trains on the data's
labelled items (``labelled_indices``) less a held-out tenth, and reports its accuracy on that held-out
part, so a sweep's accuracy can be read against what the judge achieves on real data.

:func:`judge_scores` gives, for samples and the labels they were drawn for:

- accuracy: the fraction the judge assigns to their label (argmax of its predictive distribution);
- spread: for each label, the entropy in bits of the judge's mean predictive distribution over that
  label's samples, averaged over the labels: 0 when every sample of a label is judged one class with
  certainty, up to log₂ K when a label's samples spread evenly over all K classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from diffview.core.data.labels import labelled_indices

CONFIDENT = 0.9  # a sample "reads as" a class when the judge gives it at least this probability
HELD_OUT_FRACTION = 0.1
MAX_HELD_OUT = 1000
PREDICT_BATCH = 512


def _cnn(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * 16, classes),
    )


def _mlp(dim: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes))


@dataclass(eq=False)
class Judge:
    """A trained classifier of the data's classes; :meth:`predict` gives its probabilities."""

    net: nn.Module  # eval mode, CPU
    kind: str  # "images" or "points"
    class_names: tuple[str, ...]
    held_out_accuracy: float  # on the held-out real items (nan when there were too few to hold any out)
    held_out: int  # how many real items that accuracy is over
    steps: int  # training steps taken
    held_out_confident: float = math.nan  # the fraction of the held-out items given one class with p ≥ CONFIDENT
    held_out_indices: torch.Tensor | None = None  # the data's indices it held out (int64 [held_out])

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """p(class | x), float32 [N, K]: images in [−1, 1] (or uint8, converted as the dataset does), or points."""
        return torch.softmax(self.net[-1](self.features(x)), dim=1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations before its last layer, float32 [N, F], of the inputs :meth:`predict` takes."""
        x = torch.as_tensor(x)
        x = x.to(torch.float32) / 127.5 - 1.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        parts = [self.net[:-1](x[i:i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)]
        return torch.cat(parts) if parts else torch.zeros(0, self.net[-1].in_features)


def _items(data, indices: torch.Tensor) -> torch.Tensor:
    """The data's items at ``indices`` as the judge sees them: float32 images in [−1, 1], or points."""
    if data.kind == "images":
        return data.images_uint8(indices).to(torch.float32) / 127.5 - 1.0
    return data.points_at(indices).to(torch.float32)


def train_judge(data, steps: int = 300, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                stop: Callable[[], bool] | None = None, batch_size: int = 128, lr: float = 2e-3) -> Judge | None:
    """Train a judge on ``data``'s labelled items (a held-out tenth, at most MAX_HELD_OUT, kept out), with
    Adam for ``steps`` steps of ``batch_size``; ``progress(step, steps)`` after each step. Returns None once
    ``stop()``, asked before every step, is True. ValueError for data without labels."""
    labelled = labelled_indices(data)
    classes = len(data.class_names)
    g = torch.Generator().manual_seed(seed)
    order = labelled[torch.randperm(len(labelled), generator=g)]
    n_hold = min(MAX_HELD_OUT, int(len(order) * HELD_OUT_FRACTION)) if len(order) >= 10 else 0
    hold, train = order[:n_hold], order[n_hold:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _cnn(data.channels, classes) if data.kind == "images" else _mlp(data.dim, classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    labels = data.labels
    net.train()
    for step in range(steps):
        if stop is not None and stop():
            return None
        idx = train[torch.randint(len(train), (min(batch_size, len(train)),), generator=g)]
        loss = nn.functional.cross_entropy(net(_items(data, idx)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, steps)
    net.eval()
    judge = Judge(net, data.kind, tuple(data.class_names), math.nan, n_hold, steps, held_out_indices=hold)
    if n_hold:
        judge.held_out_accuracy, _ = judge_scores(judge, _items(data, hold), labels[hold])
        judge.held_out_confident = confident_fraction(judge.predict(_items(data, hold)))
    return judge


def confident_fraction(probabilities: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """The fraction of rows of p(class | x) whose largest probability is at least ``threshold``."""
    p = torch.as_tensor(probabilities)
    return float((p.max(dim=1).values >= threshold).float().mean()) if len(p) else math.nan


def judge_scores(judge: Judge, samples: torch.Tensor, labels: torch.Tensor | int) -> tuple[float, float]:
    """(accuracy, spread) of ``samples`` drawn for ``labels`` (one per sample, or one for all): see the module's
    docstring. Spread is in bits, 0 … log₂ K."""
    p = judge.predict(samples)
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    y = y.expand(len(p)) if y.numel() == 1 else y
    if len(y) != len(p):
        raise ValueError(f"got {len(y)} labels for {len(p)} samples")
    if not len(p):
        return math.nan, math.nan
    accuracy = float((p.argmax(1) == y).float().mean())
    entropies = []
    for c in y.unique():
        mean = p[y == c].mean(0)
        entropies.append(float(-(mean * torch.log2(mean.clamp_min(1e-12))).sum()))  # H(E[p(·|x)]) in bits
    return accuracy, sum(entropies) / len(entropies)


__all__ = ["CONFIDENT", "Judge", "confident_fraction", "judge_scores", "train_judge"]
