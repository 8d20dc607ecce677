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


def _two_classes(n=1000, size=8):
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


def _number(line, before, unit=""):
    return float(re.search(rf"{before} ([\d.]+){unit}", line).group(1))


def _report(data, images):
    lines = samples_report(data, PreviewEvent(40, images.numpy(), "ddim", 25, 0.1, None), LossByT(50),
                           judge_steps=150)
    assert len(lines) == 4 and lines[0].startswith("Samples at step 40, read by a classifier trained on the data's 2 "
                                                   "classes"), lines
    assert "100 real images held out from its training" in lines[0]  # a tenth of 1000
    distance, floor = _number(lines[1], "real images:"), _number(lines[1], "against")
    assert "to 50 of those real images" in lines[1] and "(the floor, one draw)" in lines[1]  # 36 of the other 50
    return lines, distance, floor


def test_a_judge_reads_the_preview_of_labelled_images_against_held_out_real_ones():
    data = _two_classes()
    real = data.images_uint8(torch.arange(36))  # training images: as good as real samples can be
    lines, distance, floor = _report(data, real)
    assert distance < 3 * floor, lines
    assert "the samples fall in 2 of 2" in lines[2] and "the real images in 2 of 2" in lines[2]
    assert _number(lines[3], "p ≥ 0.9\\):", "%") >= 90 and _number(lines[3], "samples,", "%") >= 90, lines
    blank = torch.full((36, 1, 8, 8), 128, dtype=torch.uint8)
    lines, distance, floor = _report(data, blank)
    assert distance > 10 * floor, lines  # an empty grey image is far from both classes
    assert "the samples fall in 1 of 2" in lines[2] and "holding 100%" in lines[2]


def test_one_class_read_with_confidence_is_not_called_good():
    # what a confident fraction alone misses: every sample one class, each read with certainty
    data = _two_classes()
    one_class = data.images_uint8(torch.arange(0, 72, 2))  # 36 top-left squares
    lines, distance, floor = _report(data, one_class)
    assert _number(lines[3], "p ≥ 0.9\\):", "%") >= 90, lines
    assert "the samples fall in 1 of 2, the commonest (top-left) holding 100%" in lines[2], lines
    assert distance > 3 * floor, lines


def test_the_distance_is_left_out_where_too_few_real_images_are_held_out():
    data = _two_classes(n=300)  # 30 held out: fewer than the 36 samples' floor needs
    lines = samples_report(data, PreviewEvent(40, data.images_uint8(torch.arange(36)).numpy(), "ddim", 25, 0.1,
                                              None, guidance_scale=3.0), LossByT(50), judge_steps=150)
    assert len(lines) == 3 and "Fréchet" not in " ".join(lines) and lines[1].startswith("  Classes:"), lines
    assert lines[0].startswith("Samples at step 40 (one row per class, guided at S = 3), read by"), lines


def test_unlabelled_images_get_the_loss_by_t():
    acc = LossByT(timesteps=20)
    acc.add(_step(1, [0, 19], [0.5, 0.125]))
    lines = samples_report(square_dataset(), PreviewEvent(1, np.zeros((4, 1, 8, 8), np.uint8), "ddim", 5, 0.1, None),
                           acc)
    assert lines[0].startswith("Loss by timestep t over the last 1 steps")
    assert "0–1: 0.5000" in lines[1] and "18–19: 0.1250" in lines[1] and "2–3: —" in lines[1]
    assert samples_report(square_dataset(), None, LossByT(20)) == []
