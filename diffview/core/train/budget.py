"""A run trained for a wall-clock budget (``TrainConfig.minutes``) instead of a step count.

The learning rate's cosine (core/lr_schedule.py) needs the total steps before it starts, and during the
linear warm-up the rate does not depend on them. So a run with a budget times its own warm-up steps and,
when the warm-up ends, fixes ``steps`` to those that fill the budget at the measured rate. Every step's
rate is then the one its config.json (written again with the fitted steps) gives, so the run, a resume of
it and anyone reading its config see one schedule. The budget counts the training steps' own seconds
(a pause does not count); previews and checkpoints add theirs.
"""

from __future__ import annotations

import math

MIN_WARMUP = 10  # the fewest warm-up steps a budget is fitted from
MAX_MINUTES = 7 * 24 * 60  # a week
TIMED_FROM = 0.2  # the first fifth of the warm-up is not timed: its steps carry one-off costs (allocation, caches)


def check_budget(minutes, warmup_steps) -> None:
    """Raise ValueError unless ``minutes`` is None or a positive number of minutes a run can be fitted to."""
    if minutes is None:
        return
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must lie in (0, {MAX_MINUTES}] (a week), got {minutes!r}")
    if warmup_steps < MIN_WARMUP:
        raise ValueError(f"a budget in minutes is fitted from the warm-up's steps: warmup_steps must be at least "
                         f"{MIN_WARMUP}, got {warmup_steps}")


class StepBudget:
    """Times a run's warm-up steps and fits its total steps to ``minutes`` of training when the warm-up ends.

    Feed :meth:`observe` each step's seconds; :meth:`fitted` gives the total steps once, at the step that
    ends the warm-up (``fit_at``), and None at every other step. A run resumed before its warm-up ended
    (``start_step``) is fitted from the steps it trains now, to the whole budget again."""

    def __init__(self, minutes: float, warmup_steps: int, start_step: int = 0):
        self.seconds = 60.0 * float(minutes)
        self.fit_at = int(warmup_steps)  # the steps done when the rate first depends on the total
        self.timed_from = max(start_step, math.ceil(TIMED_FROM * warmup_steps))
        self.spent = 0.0  # the steps' own seconds so far in this session
        self._timed = 0.0
        self._timed_steps = 0
        self.per_step: float | None = None  # the warm-up's seconds a step, once fitted

    def observe(self, step: int, seconds: float) -> None:
        """``step`` (steps done, 1-based) took ``seconds``."""
        self.spent += seconds
        if self.timed_from < step <= self.fit_at:
            self._timed += seconds
            self._timed_steps += 1

    def fitted(self, step: int) -> int | None:
        """At ``fit_at`` the total steps that fill the budget (at least one more than ``step``), else None."""
        if step != self.fit_at or not self._timed_steps:
            return None
        self.per_step = self._timed / self._timed_steps
        return step + max(1, math.floor((self.seconds - self.spent) / self.per_step))


__all__ = ["MAX_MINUTES", "MIN_WARMUP", "StepBudget", "check_budget"]
