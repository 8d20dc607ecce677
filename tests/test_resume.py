"""Resuming a run: to the same total bit for bit, to a new total with the learning rate continuing
smoothly (core/lr_schedule.py), and always on the run's own settings and data (core/resume.py)."""

import shutil

import pytest
import torch
from helpers import square_dataset, tiny_config, write_image_folder

from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.train.lr_schedule import FLOOR, extend_horizons, lr_at
from diffview.core.train.resume import load_run_config
from diffview.core.train.run_data import load_run_data
from diffview.core.train.trainer import DoneEvent, StepEvent, Trainer


def train(cfg, run_dir, resume=False, stop_at=None, dataset=None):
    """(losses, lrs, the DoneEvent) of one session."""
    trainer = Trainer(cfg, run_dir, resume=resume, dataset=dataset)
    losses, lrs, done = [], [], None
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            losses.append(ev.loss)
            lrs.append(ev.lr)
            if ev.step == stop_at:
                trainer.stop()  # stopping writes a checkpoint at this step
        elif isinstance(ev, DoneEvent):
            done = ev
    return losses, lrs, done


def resume(run_dir, steps, stop_at=None, dataset="squares"):
    """Resume to ``steps``; the square runs are given their in-memory data again (config.json names none)."""
    cfg = load_run_config(run_dir)
    cfg.steps = steps
    data = square_dataset(jitter=True) if dataset == "squares" else dataset
    return train(cfg, run_dir, resume=True, stop_at=stop_at, dataset=data)


def assert_identical(a, b, where="checkpoint"):
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def final_state(run_dir):
    state = load_checkpoint(RunDir(run_dir).latest_checkpoint())
    keys = ("step", "model", "ema", "ema_updates", "optimizer", "rng", "lr_schedule", "loss_balance")
    return {k: state[k] for k in keys if k in state}  # loss_balance: adaptive weighting's (core/train/loss_balance.py)


DROPOUT = dict(dropout=0.1, warmup_steps=2, checkpoint_every=10**6)  # dropout: its masks must resume exactly too


def test_a_resume_to_the_same_total_is_bit_exact_in_losses_weights_ema_and_optimizer(tmp_path):
    full, full_lr, _ = train(tiny_config(steps=14, **DROPOUT), tmp_path / "a", dataset=square_dataset(jitter=True))
    part, part_lr, _ = train(tiny_config(steps=14, **DROPOUT), tmp_path / "b", stop_at=6,
                             dataset=square_dataset(jitter=True))
    rest, rest_lr, done = resume(tmp_path / "b", 14)
    assert done.reason == "finished" and len(part) == 6
    assert part + rest == full and part_lr + rest_lr == full_lr
    assert_identical(final_state(tmp_path / "b"), final_state(tmp_path / "a"))
    assert load_run_config(tmp_path / "b").horizons == [[0, 14]]  # the same total adds no horizon


def test_a_resume_to_a_new_total_continues_the_rate_and_ends_at_the_floor(tmp_path):
    cfg = tiny_config(steps=20, lr=2e-3, **DROPOUT)
    first, first_lr, _ = train(cfg, tmp_path / "run", stop_at=10, dataset=square_dataset(jitter=True))
    rest, rest_lr, done = resume(tmp_path / "run", 80)
    assert done.reason == "finished" and len(rest) == 70
    planned = [lr_at(n, tiny_config(steps=20, lr=2e-3, **DROPOUT)) for n in range(21)]
    assert first_lr == planned[:10]
    # the join: the first resumed step takes the rate the 20-step plan had there, so the ratio to the
    # last trained step is one step of that plan's decay (the old rule jumped to the 80-step cosine)
    assert abs(rest_lr[0] / first_lr[-1] - planned[10] / planned[9]) < 1e-9
    lrs = first_lr + rest_lr
    assert all(b <= a * (1 + 1e-12) for a, b in zip(lrs[2:], lrs[3:]))  # never rises after the warm-up
    extended = load_run_config(tmp_path / "run")
    assert extended.horizons == [[0, 20], [10, 80]]
    assert load_checkpoint(RunDir(tmp_path / "run").latest_checkpoint())["config"]["horizons"] == [[0, 20], [10, 80]]
    floor = FLOOR * 2e-3
    assert abs(lr_at(80, extended) - floor) < 1e-15 and floor < rest_lr[-1] < floor * 1.01  # one step before the end


def test_resuming_an_extended_run_again_to_its_total_is_bit_exact(tmp_path):
    cfg = tiny_config(steps=12, **DROPOUT)
    train(cfg, tmp_path / "x", stop_at=6, dataset=square_dataset(jitter=True))
    shutil.copytree(tmp_path / "x", tmp_path / "y")
    whole, _, _ = resume(tmp_path / "x", 30)  # extended once, uninterrupted
    part, _, _ = resume(tmp_path / "y", 30, stop_at=17)  # extended, stopped, resumed again to the same total
    rest, _, done = resume(tmp_path / "y", 30)
    assert done.reason == "finished" and part + rest == whole
    assert_identical(final_state(tmp_path / "y"), final_state(tmp_path / "x"))
    assert load_run_config(tmp_path / "y").horizons == [[0, 12], [6, 30]]


@pytest.mark.parametrize("warmup", [0, 1, 10])
def test_lr_is_continuous_at_every_join_and_reaches_the_floor(warmup):
    """Every join step s of a 200-step plan, extended to several new totals (and shortened)."""
    lr = 1e-3
    plan = tiny_config(steps=200, lr=lr, warmup_steps=warmup)
    old = [lr_at(n, plan) for n in range(201)]
    for s in range(1, 200):
        for total in (s + 1, s + 7, 150, 400, 1600):
            if total <= s:
                continue
            cfg = tiny_config(steps=total, lr=lr, warmup_steps=warmup,
                              horizons=extend_horizons([[0, 200]], s, total, warmup))
            new = [lr_at(n, cfg) for n in range(total + 1)]
            assert new[:s] == old[:s], (s, total)  # the steps already trained keep their rates exactly
            if s >= 2 and old[s - 1] > FLOOR * lr:
                assert abs(new[s] / new[s - 1] - old[s] / old[s - 1]) < 1e-9, (s, total)
            if total > warmup:  # a run that ends by the end of its warm-up never decays
                assert abs(new[total] - FLOOR * lr) < 1e-15, (s, total)
            decaying = new[max(warmup, 1) - 1:]
            assert all(b <= a * (1 + 1e-12) for a, b in zip(decaying, decaying[1:])), (s, total)


def test_extend_horizons_keeps_only_what_trained_steps_used():
    assert extend_horizons([[0, 100]], 40, 100, 10) == [[0, 100]]  # the same total
    assert extend_horizons([[0, 100]], 40, 400, 10) == [[0, 100], [40, 400]]
    assert extend_horizons([[0, 100]], 10, 400, 10) == [[0, 400]]  # still warming up: nothing decayed yet
    assert extend_horizons([[0, 100], [40, 400]], 40, 100, 10) == [[0, 100]]  # resumed at the join: undone
    assert extend_horizons([[0, 100], [40, 400]], 41, 900, 10) == [[0, 100], [40, 400], [41, 900]]
    cfg = tiny_config(horizons=[[0, 5], [3, 2]])
    with pytest.raises(ValueError, match="horizons must be"):
        cfg.validate()


# ----------------------------------------------------------------------------- the run's own data
@pytest.fixture
def flip_run(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", n=6, size=8)
    cfg = tiny_config(dataset=str(folder), flip=True, image_size=8, steps=8, lr_decay="constant")
    losses, _, _ = train(cfg, tmp_path / "run", stop_at=4)
    return tmp_path / "run", folder, losses


def test_a_resume_loads_the_run_s_own_data_and_matches_the_uninterrupted_run(flip_run, tmp_path):
    run, folder, first = flip_run
    whole, _, _ = train(tiny_config(dataset=str(folder), flip=True, image_size=8, steps=8, lr_decay="constant"),
                        tmp_path / "whole")
    cfg = load_run_config(run)
    cfg.steps = 8
    trainer = Trainer(cfg, run, resume=True)
    rest = [e.loss for e in trainer.run() if isinstance(e, StepEvent)]
    assert trainer.dataset.flip is True and (trainer.dataset.image_size, trainer.dataset.channels) == (8, 1)
    assert first + rest == whole
    data, report = load_run_data(run)
    assert data.flip is True and data.image_size == 8 and data.channels == 1 and report.used == 6


def test_a_resume_refuses_data_or_settings_that_are_not_the_run_s(flip_run):
    from diffview.core.data.images import load_image_folder

    run, folder, _ = flip_run
    unflipped, _ = load_image_folder(folder, image_size=8, flip=False)  # what the app used to pass
    _, _, done = resume(run, 8, dataset=unflipped)
    assert done.reason == "failed" and "flips: the run's on, this dataset's off" in done.message
    cfg = load_run_config(run)
    cfg.flip = False
    _, _, done = train(cfg, run, resume=True)
    assert done.reason == "failed" and "keeps its own settings: flip is True in the run, not False" in done.message
    _, _, done = resume(run, 3)
    assert done.reason == "failed" and "at step 4; resume it to at least 4 steps" in done.message
    assert RunDir(run).latest_checkpoint().name == "step_0000004.pt"  # nothing was written


def test_a_resume_builds_the_checkpoint_s_network_even_if_its_preset_changed_since(tmp_path, monkeypatch):
    from dataclasses import replace

    from diffview.core.models import unet

    train(tiny_config(steps=4, checkpoint_every=10**6), tmp_path / "r", stop_at=2, dataset=square_dataset(jitter=True))
    monkeypatch.setitem(unet.PRESETS, "tiny", replace(unet.PRESETS["tiny"], base_channels=16))  # a later release's
    rest, _, done = resume(tmp_path / "r", 4)
    assert done.reason == "finished" and len(rest) == 2
    assert load_checkpoint(RunDir(tmp_path / "r").latest_checkpoint())["unet"]["base_channels"] == 8
