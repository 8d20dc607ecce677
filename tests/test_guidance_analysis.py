"""Guidance, looked at (core/analysis/guidance.py) and the judge that scores a sweep (core/analysis/judge.py)."""

import math

import pytest
import torch
from helpers import ToyConditional

from diffview.core.analysis.guidance import SWEEP_SCALES, eps_parts, guidance_sweep, sweep_noise
from diffview.core.analysis.judge import judge_scores, train_judge
from diffview.core.data.points import PointDataset
from diffview.core.data.source import load_source
from diffview.core.diffusion import predict_x0_eps
from diffview.core.guidance import NULL_LABEL
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle
from diffview.core.schedule import make_schedule

CLASSES = ("a", "b", "c")


def toy_handle(objective="eps", seed=0):
    return ModelHandle(ToyConditional(3, seed=seed).eval(), make_schedule("cosine", 50), objective, ImageShape(1, 8),
                       FromTraining(1), "a toy conditional model", class_names=CLASSES)


# ----------------------------------------------------------------------------- the parts of ε̃
@pytest.mark.parametrize("objective", ["eps", "v"])
def test_eps_parts_are_the_conditional_and_unconditional_predictions_as_eps(objective):
    h = toy_handle(objective)
    x = torch.randn(5, 1, 8, 8)
    t = 30
    eps_c, eps_u = eps_parts(h, x, t, 2)
    tt = torch.full((5,), t)
    want_c = predict_x0_eps(h.model(x, tt, torch.full((5,), 2)), x, tt, h.schedule, objective, clip_x0=False)[1]
    want_u = predict_x0_eps(h.model(x, tt, None), x, tt, h.schedule, objective, clip_x0=False)[1]
    torch.testing.assert_close(eps_c, want_c)
    torch.testing.assert_close(eps_u, want_u)
    assert (eps_c - eps_u).abs().max() > 0.1  # the label matters
    c, u = eps_parts(h, x, t, NULL_LABEL)
    torch.testing.assert_close(c, u)  # ∅ against ∅: nothing for guidance to amplify


# ----------------------------------------------------------------------------- the sweep
def test_a_sweep_has_every_cell_with_one_x_T_per_row_and_equals_sampling_each_cell_alone():
    h = toy_handle()
    progress = []
    cells = list(guidance_sweep(h, ["c", 0], SWEEP_SCALES, per_cell=3, seed=7, steps=10,
                                progress=lambda i, n: progress.append((i, n))))
    assert [(c.row, c.column) for c in cells] == [(r, j) for j in range(6) for r in range(2)]
    assert [c.label for c in cells[:2]] == [2, 0] and [c.scale for c in cells[::2]] == list(SWEEP_SCALES)
    assert progress[-1] == (60, 60) and len(progress) == 60
    x_T = sweep_noise(h, 2, 3, 7)
    for c in cells:
        assert c.images.shape == (3, 1, 8, 8) and c.images.dtype.name == "uint8"
        torch.testing.assert_close(c.x_T, x_T[3 * c.row:3 * c.row + 3], rtol=0, atol=0)  # one x_T per row
    assert not torch.equal(x_T[:3], x_T[3:])  # the rows differ
    for c in cells:
        alone = h.sample(3, seed=7 + c.row, sampler="ddim", steps=10, label=c.label, guidance_scale=c.scale)
        torch.testing.assert_close(c.x0, alone, atol=1e-5, rtol=1e-5)
    at = {(c.row, c.scale): c.x0 for c in cells}
    assert (at[(0, 0.0)] - at[(0, 3.0)]).abs().max() > 0.05  # S changes the samples
    unconditional = h.sample(3, seed=7, sampler="ddim", steps=10)
    torch.testing.assert_close(at[(0, 0.0)], unconditional, atol=1e-5, rtol=1e-5)  # S = 0 is p(x)


def test_a_sweep_stops_between_model_calls():
    h = toy_handle()
    calls = []
    model = h.model
    original = model.forward
    model.forward = lambda *a: (calls.append(1), original(*a))[1]
    cells = list(guidance_sweep(h, [0, 1, 2], per_cell=2, steps=10, stop=lambda: len(calls) >= 15))
    assert len(cells) == 3 and len(calls) == 15  # the first column (10 calls), then 5 of the second


def test_a_sweep_refuses_an_unknown_class():
    with pytest.raises(ValueError, match="no class 'z'"):
        list(guidance_sweep(toy_handle(), ["z"], steps=2))


# ----------------------------------------------------------------------------- the judge
JUDGE_ACCURACY = 0.9  # measured 0.95–0.97 held out and on another draw (n = 3,000 digits, 300 steps)


@pytest.fixture
def one_torch_thread():
    """As the app's worker trains the judge on 2 cores (threads.use_worker_torch_threads): one torch thread. Two
    threads on a loaded 2-core machine ran its small convolutions 13 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_judge_learns_the_digits_and_tells_real_digits_from_noise(one_torch_thread):
    data, _ = load_source("digits", n=3000)
    steps = []
    judge = train_judge(data, progress=lambda i, n: steps.append((i, n)))
    assert steps[-1] == (300, 300) and judge.held_out == 300
    assert judge.held_out_accuracy >= JUDGE_ACCURACY, judge.held_out_accuracy
    other, _ = load_source("digits", n=500, seed=1)  # another draw: images the judge never saw
    accuracy, spread = judge_scores(judge, other.images_uint8(range(500)), other.labels)
    assert accuracy >= JUDGE_ACCURACY, accuracy
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    chance, _ = judge_scores(judge, noise, other.labels)
    assert chance <= 0.25, chance  # chance is 0.1: noise is no digit
    assert 0 <= spread < 1.0 < math.log2(10)  # each digit's samples are judged that digit, not spread out


def test_judge_scores_spread_is_the_entropy_of_each_labels_mean_prediction():
    data = PointDataset(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]).repeat(50, 1), labels=torch.tensor([0, 1] * 50),
                        class_names=("left", "right"))
    judge = train_judge(data, steps=150)
    assert judge.held_out_accuracy == 1.0
    left, right = torch.tensor([[-2.0, 0.0]] * 4), torch.tensor([[2.0, 0.0]] * 4)
    assert judge_scores(judge, left, 0) == pytest.approx((1.0, 0.0), abs=0.05)
    accuracy, spread = judge_scores(judge, torch.cat([left[:2], right[:2]]), 0)  # half judged "right"
    assert accuracy == 0.5 and spread == pytest.approx(1.0, abs=0.05)  # an even split of 2 classes: 1 bit


def test_the_judges_features_are_what_its_last_layer_reads_and_it_records_what_it_held_out():
    data = PointDataset(torch.randn(200, 2, generator=torch.Generator().manual_seed(0)),
                        labels=torch.arange(200) % 2, class_names=("a", "b"))
    judge = train_judge(data, steps=20)
    x = torch.randn(600, 2, generator=torch.Generator().manual_seed(1))  # more than one predict batch
    f = judge.features(x)
    assert f.shape == (600, 64) and (f >= 0).all()  # the MLP's last ReLU
    assert torch.allclose(torch.softmax(judge.net[-1](f), dim=1), judge.predict(x), atol=1e-6)
    hold = judge.held_out_indices
    assert len(hold) == judge.held_out == 20 and len(set(hold.tolist())) == 20
    assert judge.features(torch.zeros(0, 2)).shape == (0, 64)


def test_training_the_judge_stops_when_asked():
    data, _ = load_source("digits", n=200)
    seen = []
    assert train_judge(data, steps=100, progress=lambda i, n: seen.append(i), stop=lambda: len(seen) >= 3) is None
    assert seen == [1, 2, 3]
