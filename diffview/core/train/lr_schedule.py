"""The learning rate at every step, and what a resume that changes the total steps does to it.

A run's *horizons* are the spans its rate decays over: ``[[0, S_0]]`` for a run trained to S_0 in one
go, and one more ``[s_k, S_k]`` each time it was resumed at step s_k to a new total S_k. Over the
first, the rate warms up linearly for ``warmup_steps`` and then follows the cosine from ``lr`` to the
floor (10 % of ``lr``) at S_0 (Loshchilov & Hutter 2017, eq. 5, without restarts). Over each later
one it follows the cosine from the rate reached at s_k to the floor at S_k, so the rate never jumps
at a join, and a resume to the same total continues the run exactly as if it had not stopped.
"""

from __future__ import annotations

import math

FLOOR = 0.1  # the rate at the end of a horizon, as a fraction of lr


def horizons_of(cfg) -> list[list[int]]:
    """The run's horizons; a config without any (a new run, or one from before them) has ``[[0, steps]]``."""
    return [list(map(int, h)) for h in cfg.horizons] if cfg.horizons else [[0, int(cfg.steps)]]


def lr_at(step: int, cfg) -> float:
    """The rate at 0-based ``step``: linear warm-up, then constant or the cosine over each horizon."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_decay == "constant":
        return cfg.lr
    horizons = horizons_of(cfg)
    k = max(i for i, (start, _) in enumerate(horizons) if i == 0 or start <= step)
    rate = cfg.lr
    for i in range(k + 1):
        end_at = step if i == k else horizons[i + 1][0]
        rate = _cosine(end_at, horizons[i], cfg, rate, first=i == 0)
    return rate


def _cosine(step: int, horizon: list[int], cfg, top: float, first: bool) -> float:
    """η_t = η_min + ½(η_top − η_min)(1 + cos(π·t/T)) over ``horizon`` (SGDR eq. 5), from ``top``."""
    begin = max(horizon[0], cfg.warmup_steps)
    progress = min(1.0, max(0.0, (step - begin) / max(1, horizon[1] - begin)))
    if first:  # written as before horizons existed, so older runs resume bit for bit
        return top * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))
    floor = FLOOR * cfg.lr
    return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def extend_horizons(horizons: list[list[int]], step: int, total: int, warmup_steps: int) -> list[list[int]]:
    """The horizons of a run resumed at ``step`` to train to ``total`` steps.

    The same total keeps them. Another total adds ``[step, total]``, after dropping any horizon whose
    decay no trained step has used yet (it starts at or after ``step``, or the warm-up is not over):
    the rates of the steps already trained never change, so a resume of a resume stays exact.
    """
    kept = [list(h) for h in horizons if max(h[0], warmup_steps) < step]
    if not kept:
        return [[0, total]]
    if kept[-1][1] == total or total <= step:
        return kept
    return kept + [[step, total]]


__all__ = ["FLOOR", "extend_horizons", "horizons_of", "lr_at"]
