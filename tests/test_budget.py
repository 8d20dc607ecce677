"""A run trained for a budget in minutes (core/train/budget.py): its steps are fitted from its warm-up's own speed
when the warm-up ends, so every step's rate is the one its recorded config gives, and a resume stays exact."""

import json
import math

import pytest
from helpers import square_dataset, tiny_config
from test_resume import assert_identical, final_state, train

from diffview.cli import main as cli_main
from diffview.core.train.budget import MIN_WARMUP, StepBudget, check_budget
from diffview.core.train.lr_schedule import lr_at
from diffview.core.train.resume import load_run_config
from diffview.core.train.trainer import LogEvent, Trainer


@pytest.mark.parametrize("warmup", [10, 11, 37, 100, 250])
@pytest.mark.parametrize("minutes", [0.01, 0.5, 5, 90])
def test_the_budget_is_fitted_once_from_the_warm_up_s_later_steps(warmup, minutes):
    budget = StepBudget(minutes, warmup)
    skipped = math.ceil(0.2 * warmup)  # the first fifth carries one-off costs and is not timed
    fits = []
    for step in range(1, warmup + 30):
        seconds = 0.9 if step <= skipped else 0.02 + 0.001 * (step % 3)  # slow first steps, then a steady rate
        budget.observe(step, seconds)
        fits.append(budget.fitted(step))
    per_step = sum(0.02 + 0.001 * (s % 3) for s in range(skipped + 1, warmup + 1)) / (warmup - skipped)
    spent = 0.9 * skipped + per_step * (warmup - skipped)
    expected = warmup + max(1, math.floor((60 * minutes - spent) / per_step))
    assert fits[warmup - 1] == expected and budget.per_step == pytest.approx(per_step, rel=1e-12)
    assert [f for i, f in enumerate(fits) if i != warmup - 1] == [None] * (len(fits) - 1)


def test_a_budget_already_spent_still_trains_one_step_past_the_warm_up():
    budget = StepBudget(0.001, 10)  # 60 ms, and each step takes a second
    for step in range(1, 11):
        budget.observe(step, 1.0)
    assert budget.fitted(10) == 11


def test_a_run_resumed_in_its_warm_up_is_timed_from_the_steps_it_trains_now():
    budget = StepBudget(1, 20, start_step=15)
    for step in range(16, 21):
        budget.observe(step, 0.5)
    assert budget.fitted(20) == 20 + math.floor((60 - 2.5) / 0.5)


@pytest.mark.parametrize("minutes", [0, -1, math.nan, math.inf, True, "5", 7 * 24 * 60 + 1])
def test_a_bad_budget_is_refused_with_its_value(minutes):
    with pytest.raises(ValueError, match="minutes must lie in"):
        tiny_config(minutes=minutes, warmup_steps=MIN_WARMUP).validate()


def test_a_budget_needs_a_warm_up_to_time():
    with pytest.raises(ValueError, match="warmup_steps must be at least 10"):
        check_budget(5, 9)
    check_budget(5, 10)
    check_budget(None, 0)


def test_a_budget_run_records_its_fitted_steps_and_equals_a_run_of_those_steps(tmp_path):
    cfg = tiny_config(minutes=0.005, steps=10**6, warmup_steps=12, checkpoint_every=10**6)
    trainer = Trainer(cfg, tmp_path / "budget", dataset=square_dataset(jitter=True))
    events = list(trainer.run())
    notes = [e.message for e in events if isinstance(e, LogEvent) and "minutes of training" in e.message]
    fitted = load_run_config(tmp_path / "budget").steps
    assert len(notes) == 1 and f"{fitted:,} steps" in notes[0] and 12 < fitted < 10**6
    assert trainer.step == fitted and load_run_config(tmp_path / "budget").minutes == 0.005
    rows = [json.loads(line) for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    final = load_run_config(tmp_path / "budget")
    assert len(rows) == fitted and all(r["lr"] == lr_at(r["step"] - 1, final) for r in rows)
    # the same run with its steps given: bit for bit the same weights, EMA and optimiser
    train(tiny_config(steps=fitted, warmup_steps=12), tmp_path / "steps", dataset=square_dataset(jitter=True))
    assert_identical(final_state(tmp_path / "budget"), final_state(tmp_path / "steps"))


def test_a_budget_run_stopped_in_its_warm_up_is_fitted_when_it_resumes(tmp_path):
    cfg = tiny_config(minutes=0.003, steps=10**6, warmup_steps=12)
    losses, _, done = train(cfg, tmp_path / "run", stop_at=5, dataset=square_dataset(jitter=True))
    assert done.reason == "stopped" and load_run_config(tmp_path / "run").steps == 10**6  # not fitted yet
    again = load_run_config(tmp_path / "run")
    rest, _, done = train(again, tmp_path / "run", resume=True, dataset=square_dataset(jitter=True))
    fitted = load_run_config(tmp_path / "run").steps
    assert done.reason == "finished" and 12 < fitted < 10**6 and len(losses) + len(rest) == fitted
    assert load_run_config(tmp_path / "run").horizons == [[0, fitted]]


def test_a_fitted_run_resumes_to_its_steps_without_fitting_again(tmp_path):
    cfg = tiny_config(minutes=0.003, steps=10**6, warmup_steps=12, checkpoint_every=10**6)
    first, _, _ = train(cfg, tmp_path / "run", dataset=square_dataset(jitter=True))
    fitted = load_run_config(tmp_path / "run").steps
    again = load_run_config(tmp_path / "run")
    again.steps = fitted + 7
    trainer = Trainer(again, tmp_path / "run", resume=True, dataset=square_dataset(jitter=True))
    events = list(trainer.run())
    assert trainer.step == fitted + 7 and not any("minutes of training" in getattr(e, "message", "") for e in events)


def test_the_command_line_trains_for_minutes_and_refuses_them_beside_steps(tmp_path, capsys):
    assert cli_main(["train", "--dataset", "moons", "--minutes", "0.01", "--out", str(tmp_path / "r"),
                     "--threads", "1", "--preview-every", "1000000"]) == 0
    err = capsys.readouterr().err
    steps = load_run_config(tmp_path / "r").steps
    assert "0.01 minutes of training" in err and f"Finished {steps} steps" in err
    assert cli_main(["train", "--dataset", "moons", "--minutes", "1", "--steps", "10"]) == 1
    assert "leave out --steps" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "r"), "--minutes", "1"]) == 1
    assert "--resume trains to the run's own steps" in capsys.readouterr().err


def test_the_settings_panel_trains_for_minutes_with_the_steps_box_then_set_by_the_budget(qtbot):
    from diffview.gui.settings_panel import SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    assert panel.minutes.value() == 0 and panel.config().minutes is None and panel.steps.isEnabled()
    panel.minutes.setValue(2.5)
    assert panel.config().minutes == 2.5 and not panel.steps.isEnabled()
    panel.config().validate()
    panel.set_state("running")
    assert not panel.minutes.isEnabled() and not panel.steps.isEnabled()
    panel.set_state("idle")
    panel.minutes.setValue(0)
    assert panel.config().minutes is None and panel.steps.isEnabled()
    panel.set_config(tiny_config(minutes=4.0, warmup_steps=MIN_WARMUP))
    assert panel.minutes.value() == 4.0 and not panel.steps.isEnabled()
