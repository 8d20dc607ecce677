"""Where a finished run's samples stand: the lines ``diffview train`` prints at the end.

- Labelled images (a built-in with classes, a folder of class folders): a judge trained on the data's own
  labels (core/analysis/judge.py) reads the last preview's samples, against its held-out real images:
  the Fréchet distance between its features of the samples and of half the held-out images, beside the
  same distance for as many other real images (the floor at the same N, the mean over the other half's
  draws); how the samples spread over the classes; and the fraction it reads as one class with p ≥ 0.9.
  The distance leads because a small judge is confident on early blobs too: after 6 steps on the digits it
  read 69% of the 36 samples as one class (74% of real digits), 27 of them as one digit, while the distance
  stood at 2,945 against a floor of 68 (287 at step 200, where only 8% were confident; 71 at the default
  1,300 steps, at the floor, with 44% confident). The real images are held out from the judge, not from the
  diffusion model, so a model that copied its training images would reach the floor too (the Memorisation
  view tells). The features (256 for images) outnumber the samples, so the distance means something only
  beside its floor at the same N, which is why the two are printed together.
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
    from diffview.core.analysis.judge import train_judge
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
            return _judged(judge, data, preview)
    if not loss_by_t.steps:
        return []
    cells = [f"{lo}–{hi}: {'—' if m is None else f'{m:.4f}'}" for lo, hi, m in loss_by_t.bins()]
    return [f"Loss by timestep t over the last {loss_by_t.steps} steps (high where the model still finds that "
            f"noise level hard):", "  " + ", ".join(cells)]


def _judged(judge, data, preview: PreviewEvent) -> list[str]:
    from diffview.core.analysis.frechet import frechet_distance
    from diffview.core.analysis.judge import CONFIDENT, confident_fraction

    samples = torch.from_numpy(preview.images)
    real = data.images_uint8(judge.held_out_indices)
    p, n = judge.predict(samples), len(samples)
    guided = "" if preview.guidance_scale is None else f" (one row per class, guided at S = {preview.guidance_scale:g})"
    lines = [f"Samples at step {preview.step}{guided}, read by a classifier trained on the data's "
             f"{len(judge.class_names)} classes ({judge.held_out_accuracy:.0%} correct on {judge.held_out} real "
             "images held out from its training):"]
    half = len(real) // 2  # the floor's draws of n real images from one half, the reference the other half
    if n >= 2 and half >= n:
        real_f = judge.features(real)
        reference = real_f[half:]
        distance = frechet_distance(judge.features(samples), reference)
        draws = [frechet_distance(real_f[k:k + n], reference) for k in range(0, half - n + 1, n)]
        lines.append(f"  Fréchet distance in its features to {len(real) - half} of those real images: {distance:.1f}, "
                     f"against {sum(draws) / len(draws):.1f} for {n} other real images (the floor, "
                     f"{f'the mean of {len(draws)} draws' if len(draws) > 1 else 'one draw'}); blur and missing "
                     "classes raise it.")
    lines += [f"  Classes: the samples fall in {_spread(p, judge.class_names)}; the real images in "
              f"{_spread(judge.predict(real), judge.class_names)}.",
              f"  Confident (one class with p ≥ {CONFIDENT:g}): {confident_fraction(p):.0%} of the {n} samples, "
              f"{judge.held_out_confident:.0%} of the real images."]
    return lines


def _spread(p: torch.Tensor, class_names) -> str:
    """"k of K, the commonest (its name) holding x%": how the judge's argmax spreads ``p`` [N, K] over the classes."""
    counts = torch.bincount(p.argmax(dim=1), minlength=len(class_names))
    top = int(counts.argmax())
    return (f"{int((counts > 0).sum())} of {len(class_names)}, the commonest ({class_names[top]}) holding "
            f"{int(counts[top]) / len(p):.0%}")


__all__ = ["LossByT", "samples_report"]
