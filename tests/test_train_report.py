"""What `diffview train` says at the end about where its samples stand (core/analysis/report.py)."""

import re

import numpy as np
import torch
from helpers import square_dataset

from diffview.core.analysis.report import LossByT, samples_report
from diffview.core.data.images import ImageDataset
from diffview.core.train.events import PreviewEvent, StepEvent


def _step(step, t, losses):
    return StepEvent(step, float(np.mean(losses)), np.asarray(losses, np.float32), np.asarray(t, np.int64), 1e-3,
                     100.0, 1.0, 0.0, 10)


def test_loss_by_t_bins_the_last_steps_exactly():
    acc = LossByT(timesteps=100, window=2)
    acc.add(_step(1, [5, 95], [9.0, 9.0]))  # falls out of the window of 2
    acc.add(_step(2, [0, 9, 10, 99], [1.0, 3.0, 0.5, 0.25]))
    acc.add(_step(3, [50], [2.0]))
    bins = acc.bins(10)
    assert acc.steps == 2 and len(bins) == 10
    assert bins[0] == (0, 9, 2.0) and bins[1] == (10, 19, 0.5) and bins[5] == (50, 59, 2.0)
    assert bins[9] == (90, 99, 0.25) and bins[3][2] is None
    assert LossByT(7).bins(3) == [(0, 1, None), (2, 4, None), (5, 6, None)]  # edges round(7k/3): 0, 2, 5, 7


def _two_classes(n=300, size=8):
    g = torch.Generator().manual_seed(0)
    imgs = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    for i in range(n):
        o = int(torch.randint(0, 2, (1,), generator=g))
        if labels[i]:
            imgs[i, 0, 4 + o - 1:8 + o - 1, 4 + o - 1:8 + o - 1] = 255
        else:
            imgs[i, 0, o:o + 4, o:o + 4] = 255
    return ImageDataset(imgs, labels=labels, class_names=["top-left", "bottom-right"])


def _percent(line, before):
    return int(re.search(rf"{before} (\d+)%", line).group(1))


def test_a_judge_reads_the_preview_of_labelled_images():
    data = _two_classes()
    real = PreviewEvent(40, data.images_uint8(torch.arange(36)).numpy(), "ddim", 25, 0.1, None)
    blank = PreviewEvent(40, torch.full((36, 1, 8, 8), 128, dtype=torch.uint8).numpy(), "ddim", 25, 0.1, None)
    [good] = samples_report(data, real, LossByT(50), judge_steps=150)
    assert "step 40" in good and "2 classes" in good and "36 preview samples" in good
    assert _percent(good, "reads") >= 90 and _percent(good, "against") >= 90
    [bad] = samples_report(data, blank, LossByT(50), judge_steps=150)
    assert _percent(bad, "reads") < 50, bad  # an empty grey image is neither class with confidence


def test_unlabelled_images_get_the_loss_by_t():
    acc = LossByT(timesteps=20)
    acc.add(_step(1, [0, 19], [0.5, 0.125]))
    lines = samples_report(square_dataset(), PreviewEvent(1, np.zeros((4, 1, 8, 8), np.uint8), "ddim", 5, 0.1, None),
                           acc)
    assert lines[0].startswith("Loss by timestep t over the last 1 steps")
    assert "0–1: 0.5000" in lines[1] and "18–19: 0.1250" in lines[1] and "2–3: —" in lines[1]
    assert samples_report(square_dataset(), None, LossByT(20)) == []
