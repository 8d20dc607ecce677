"""Adaptive loss weighting (core/train/loss_balance.py): each bin of timesteps' running mean loss, its weight the
inverse normalised to average 1, the means saved with a checkpoint; the views see the unweighted losses."""

import numpy as np
import pytest
import torch
from helpers import square_dataset, tiny_config
from test_resume import final_state, resume, train

from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.train.config import LOSS_WEIGHTINGS
from diffview.core.train.loss_balance import ADAPTIVE, BINS, MOMENTUM, LossBalance
from diffview.core.train.trainer import DoneEvent, StepEvent, Trainer


def reference(timesteps, steps, bins=BINS, momentum=MOMENTUM):
    """The running means by plain Python: bin k holds t with ⌊t·bins/T⌋ = k; a bin's first mean is taken whole."""
    bins = min(bins, timesteps)
    mean, seen = [0.0] * bins, [False] * bins
    for losses, t in steps:
        groups = {}
        for value, tt in zip(losses.tolist(), t.tolist()):
            groups.setdefault(min(tt * bins // timesteps, bins - 1), []).append(value)
        for k, values in groups.items():
            m = sum(values) / len(values)
            mean[k] = momentum * mean[k] + (1 - momentum) * m if seen[k] else m
            seen[k] = True
    return mean, seen


@pytest.mark.parametrize("timesteps", [1, 2, 7, 19, 20, 21, 50, 1000, 4000])
def test_the_running_means_and_weights_match_a_plain_reference_at_every_t(timesteps):
    g = torch.Generator().manual_seed(timesteps)
    steps = []
    for i in range(40):
        t = torch.randint(0, timesteps, (int(torch.randint(1, 70, (1,), generator=g)),), generator=g)
        if i == 0:
            t[:2] = torch.tensor([0, timesteps - 1])  # both ends of [0, T)
        steps.append((torch.rand(len(t), generator=g, dtype=torch.float64) * 3 + 0.01, t))
    balance = LossBalance(timesteps)
    for losses, t in steps:
        balance.observe(losses.float(), t)
    mean, seen = reference(timesteps, [(losses.float().double(), t) for losses, t in steps])
    assert balance.bins == min(BINS, timesteps)
    assert balance.seen.tolist() == seen
    torch.testing.assert_close(balance.mean, torch.tensor(mean, dtype=torch.float64), rtol=1e-12, atol=0)
    # w_k = (1/m_k) / (the mean of 1/m over uniformly drawn t whose bin was seen), and each t gets its bin's weight
    every_t = torch.arange(timesteps)
    bins = torch.tensor([min(t * balance.bins // timesteps, balance.bins - 1) for t in every_t.tolist()])
    inv_at_t = np.array([1 / mean[k] for k in bins.tolist() if seen[k]])
    expected = [1 / m / inv_at_t.mean() if s else 1.0 for m, s in zip(mean, seen)]
    torch.testing.assert_close(balance.bin_weights(), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert torch.equal(balance.weights(every_t), balance.bin_weights()[bins])
    if all(seen):  # the weights average 1 over uniform t, whatever the bins' spans (T = 7, 19, 21: unequal)
        assert float(balance.weights(every_t).mean()) == pytest.approx(1.0, rel=1e-12)


def test_before_any_loss_every_weight_is_one_and_the_bins_split_t_evenly():
    balance = LossBalance(1000)
    assert torch.equal(balance.weights(torch.tensor([0, 500, 999])), torch.ones(3, dtype=torch.float64))
    assert balance.bin_of(torch.tensor([0, 49, 50, 999])).tolist() == [0, 0, 1, 19]
    balance.observe(torch.tensor([2.0, 1.0]), torch.tensor([0, 999]))  # two bins seen: weights 2/3 and 4/3
    assert balance.weights(torch.tensor([0, 999, 500])).tolist() == pytest.approx([2 / 3, 4 / 3, 1.0], rel=1e-15)


def test_state_round_trips_and_a_mismatch_is_refused():
    a = LossBalance(100)
    a.observe(torch.rand(30), torch.randint(0, 100, (30,)))
    b = LossBalance(100)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.mean, b.mean) and torch.equal(a.seen, b.seen)
    with pytest.raises(ValueError, match="does not match"):
        LossBalance(200).load_state_dict(a.state_dict())
    bad = a.state_dict() | {"mean": torch.full((20,), float("nan"))}
    with pytest.raises(ValueError, match="does not match"):
        LossBalance(100).load_state_dict(bad)
    for damaged in ({"momentum": 1.5}, {"momentum": -0.1}, {"mean": -a.mean}):  # a hostile or damaged file
        with pytest.raises(ValueError, match="does not match"):
            LossBalance(100).load_state_dict(a.state_dict() | damaged)
    subnormal = LossBalance(100)  # finite and positive, but 1/5e-324 is inf: the weights must stay finite
    subnormal.load_state_dict(a.state_dict() | {"mean": a.mean.clone().index_fill_(0, torch.tensor([3]), 5e-324),
                                                "seen": torch.ones(20, dtype=torch.bool)})
    assert torch.isfinite(subnormal.bin_weights()).all() and subnormal.bin_weights()[3] > 1
    with pytest.raises(ValueError):
        LossBalance(0)


def test_adaptive_is_a_training_choice_and_a_bad_one_is_refused_naming_all():
    assert LOSS_WEIGHTINGS == ("none", "min_snr", ADAPTIVE)
    with pytest.raises(ValueError, match="choose one of none, min_snr, adaptive"):
        tiny_config(loss_weighting="uncertainty").validate()


def events(cfg, run_dir=None):
    return [ev for ev in Trainer(cfg, run_dir, dataset=square_dataset(jitter=True)).run() if isinstance(ev, StepEvent)]


def test_the_trainer_weights_the_backward_alone_and_checkpoints_its_means(tmp_path):
    cfg = tiny_config(steps=12, loss_weighting=ADAPTIVE, precision="fp32")
    steps = events(cfg, tmp_path)
    for ev in steps:  # the views are shown the unweighted losses
        assert ev.loss == pytest.approx(float(np.mean(ev.losses)), rel=1e-6)
    replay = LossBalance(cfg.timesteps)
    for ev in steps:
        replay.observe(torch.from_numpy(ev.losses), torch.from_numpy(ev.timesteps))
    saved = load_checkpoint(RunDir(tmp_path).latest_checkpoint())["loss_balance"]
    assert torch.equal(saved["mean"], replay.mean) and torch.equal(saved["seen"], replay.seen)

    plain = events(tiny_config(steps=12, loss_weighting="none", precision="fp32"))
    # step 1 weighs every sample 1, so steps 1 and 2 are the unweighted run's; from step 3 the weights tell
    assert [ev.loss for ev in steps[:2]] == [ev.loss for ev in plain[:2]]
    assert all(a.loss != b.loss for a, b in zip(steps[2:], plain[2:]))


def test_a_resume_continues_the_balance_bit_for_bit(tmp_path):
    cfg = dict(steps=14, loss_weighting=ADAPTIVE, warmup_steps=2, checkpoint_every=10**6)
    full, _, _ = train(tiny_config(**cfg), tmp_path / "a", dataset=square_dataset(jitter=True))
    part, _, _ = train(tiny_config(**cfg), tmp_path / "b", stop_at=6, dataset=square_dataset(jitter=True))
    rest, _, done = resume(tmp_path / "b", 14)
    assert done.reason == "finished" and part + rest == full
    a, b = (load_checkpoint(RunDir(p).latest_checkpoint())["loss_balance"] for p in (tmp_path / "a", tmp_path / "b"))
    assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["seen"], b["seen"])
    assert "loss_balance" in final_state(tmp_path / "a")


def test_a_checkpoint_without_its_balance_is_refused_with_a_line(tmp_path):
    cfg = tiny_config(steps=4, loss_weighting=ADAPTIVE, checkpoint_every=2)
    events(cfg, tmp_path)
    path = RunDir(tmp_path).latest_checkpoint()
    state = load_checkpoint(path)
    del state["loss_balance"]
    torch.save(state, path)
    cfg.steps = 6
    done = list(Trainer(cfg, tmp_path, resume=True, dataset=square_dataset(jitter=True)).run())[-1]
    assert isinstance(done, DoneEvent) and done.reason == "failed"
    assert "does not match this run's model or settings" in done.message and "loss_balance" in done.message
