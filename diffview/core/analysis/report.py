"""Where a finished run's samples stand: the lines ``diffview train`` prints at the end.

- Labelled images (a built-in with classes, a folder of class folders): a judge trained on the data's own
  labels (core/analysis/judge.py) reads the last preview's samples; *confident* = the judge gives one class
  probability ≥ 0.9. Its confident fraction on held-out real images is the reference.
- 2D points: the last preview's sliced Wasserstein distance to the data, against its floor.
- Anything else: the loss by timestep over the last steps, which says which noise levels the model
  still finds hard.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from diffview.core.train.events import PreviewEvent, StepEvent

LOSS_BINS = 10


class LossByT:
    """The per-sample losses of the last ``window`` steps, binned by timestep."""

    def __init__(self, timesteps: int, window: int = 200):
        self.timesteps = timesteps
        self._steps: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=window)

    def add(self, ev: StepEvent) -> None:
        self._steps.append((np.asarray(ev.timesteps), np.asarray(ev.losses, dtype=np.float64)))

    def bins(self, n: int = LOSS_BINS) -> list[tuple[int, int, float | None]]:
        """[(first t, last t, mean loss or None when no sample fell in the bin)] in ``n`` equal bins of t."""
        t = np.concatenate([s[0] for s in self._steps]) if self._steps else np.zeros(0, np.int64)
        loss = np.concatenate([s[1] for s in self._steps]) if self._steps else np.zeros(0)
        edges = np.linspace(0, self.timesteps, n + 1).round().astype(int)
        out = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            inside = (t >= lo) & (t < hi)
            out.append((int(lo), int(hi) - 1, float(loss[inside].mean()) if inside.any() else None))
        return out

    @property
    def steps(self) -> int:
        return len(self._steps)


def samples_report(data, preview: PreviewEvent | None, loss_by_t: LossByT, *, judge_steps: int = 300) -> list[str]:
    """Lines that say where the run's samples stand (see the module docstring)."""
    from diffview.core.analysis.judge import CONFIDENT, confident_fraction, train_judge
    from diffview.core.data.labels import labelled_indices

    if preview is not None and preview.distance is not None:  # 2D points
        from diffview.core.data.points import distance_to_data

        _, floor, n = distance_to_data(torch.from_numpy(preview.points), data)
        return [f"Samples at step {preview.step}: sliced Wasserstein distance to the data {preview.distance:.4f}, "
                f"{preview.distance / floor:.2f}× the floor of {floor:.4f} between two draws of {n} data points."]
    labelled = data.kind == "images" and data.class_names and len(labelled_indices(data)) >= 100
    if preview is not None and labelled:
        judge = train_judge(data, steps=judge_steps)
        if judge is not None and judge.held_out:
            samples = confident_fraction(judge.predict(torch.from_numpy(preview.images)))
            return [f"Samples at step {preview.step}: a judge trained on the data's {len(judge.class_names)} classes "
                    f"reads {samples:.0%} of the {len(preview.images)} preview samples as one class with "
                    f"p ≥ {CONFIDENT:g}, against {judge.held_out_confident:.0%} of {judge.held_out} held-out real "
                    f"images (it classifies {judge.held_out_accuracy:.0%} of those correctly)."]
    if not loss_by_t.steps:
        return []
    cells = [f"{lo}–{hi}: {'—' if m is None else f'{m:.4f}'}" for lo, hi, m in loss_by_t.bins()]
    return [f"Loss by timestep t over the last {loss_by_t.steps} steps (high where the model still finds that "
            f"noise level hard):", "  " + ", ".join(cells)]


__all__ = ["LossByT", "samples_report"]
