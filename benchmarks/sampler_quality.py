"""Quality against cost: every sampler at equal NFE on a trained digits run and a trained 2D run.

    python benchmarks/sampler_quality.py                          # trains both (default settings), then measures
    python benchmarks/sampler_quality.py --digits-run runs/a --points-run runs/b   # measures opened runs

Training: the default recipe (``TrainConfig.for_dataset``) through the one Trainer, stopped after
``--digits-minutes`` (5) and ``--points-minutes`` (1) minutes' CPU time on ``--threads`` (2) threads.
Then, from one x_T, each sampler at each NFE budget (the most steps within it, core.sampling.steps_for_nfe):
- digits, the ODE samplers (DDIM η=0, Heun, DPM-Solver++(2M)): the RMS distance in grey levels to
  DPM-Solver++(2M) with 250 steps from the same x_T, and the fewest NFE within 1, 2 and 5 grey levels;
- 2D points, every sampler (DDPM and DDIM η=1 too): the sliced Wasserstein distance to the data, its floor,
  and the fewest NFE within 10% of DDPM with all T steps (the sampler the model was trained for).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffview.core.analysis.samplers import (
    SAMPLER_NAMES,
    QualityCurves,
    quality_by_nfe,
    run_sampler,
    sampler_spec,
)
from diffview.core.data.points import distance_to_data
from diffview.core.data.source import load_source
from diffview.core.runs.handle import ModelHandle, PointShape
from diffview.core.runs.open import open_run
from diffview.core.sampling import ODE_SAMPLERS, SAMPLERS, noise_from_seed
from diffview.core.schedule import make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.events import DoneEvent, StepEvent
from diffview.core.train.trainer import Trainer

GREY_THRESHOLDS = (1.0, 2.0, 5.0)  # grey levels: one quantisation step, and what a side-by-side grid hides
POINTS_MARGIN = 1.10  # within 10% of DDPM with all T steps


def train(dataset: str, minutes: float, threads: int, keep: str | None = None) -> tuple[ModelHandle, object, str]:
    """The default recipe on ``dataset`` until ``minutes`` × ``threads`` CPU-minutes; its EMA model as a handle.
    With ``keep`` the run is written to keep/dataset (its checkpoint at the stop), to measure again or open."""
    cfg = TrainConfig.for_dataset(dataset, threads=threads, preview_every=10**9, checkpoint_every=10**9)
    trainer = Trainer(cfg, Path(keep) / dataset if keep else None)
    c0, w0, step, loss = time.process_time(), time.perf_counter(), 0, float("nan")
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            step, loss = ev.step, ev.loss
            if time.process_time() - c0 >= minutes * 60 * threads:
                trainer.stop()
        elif isinstance(ev, DoneEvent) and ev.reason == "failed":
            raise SystemExit(ev.message)
    schedule = make_schedule(cfg.schedule, cfg.timesteps)
    data = trainer.dataset
    shape = PointShape(data.dim) if data.kind == "points" else None
    about = (f"{dataset}: {cfg.model}, {cfg.objective}, {cfg.schedule} T={cfg.timesteps}, {step:,} of {cfg.steps:,} "
             f"steps in {time.perf_counter() - w0:.0f} s on {threads} threads, loss {loss:.4f}")
    from diffview.core.runs.handle import FromTraining, ImageShape

    shape = shape or ImageShape(data.channels, data.image_size)
    return ModelHandle(trainer.ema.model, schedule, cfg.objective, shape, FromTraining(step), about), data, about


def opened(path: str) -> tuple[ModelHandle, object, str]:
    run = open_run(path)
    data = load_source(run.config.dataset)[0] if isinstance(run.handle.shape, PointShape) else None
    cfg = run.config
    return run.handle, data, (f"{run.root} at step {run.step:,}: {cfg.model}, {cfg.objective}, {cfg.schedule} "
                              f"T={cfg.timesteps}")


def table(curves: QualityCurves, unit: str) -> None:
    print(f"  {'sampler':<18} {'budget':>6} {'steps':>5} {'NFE':>4} {unit:>10} {'time':>7}")
    for p in curves.points:
        print(f"  {SAMPLER_NAMES[p.sampler]:<18} {p.budget:>6} {p.spec.steps:>5} {p.nfe:>4} {p.distance:>10.4f} "
              f"{p.seconds:>6.2f}s")


def digits(handle: ModelHandle, n: int, budgets: list[int], seed: int) -> None:
    x_T, _ = noise_from_seed(handle.sample_shape(n), seed)
    curves = quality_by_nfe(handle.model, x_T, handle.schedule, ODE_SAMPLERS, budgets, objective=handle.objective,
                            clip_x0=handle.clip_x0, metric="reference", seed=seed)
    print(f"  {n} images from one x_T (seed {seed}); reference DPM-Solver++(2M), NFE {curves.reference_nfe}, "
          f"{curves.reference_seconds:.2f} s")
    table(curves, "RMS grey")
    for thr in GREY_THRESHOLDS:
        got = ", ".join(f"{SAMPLER_NAMES[s]} {curves.fewest_nfe(s, thr) or '> ' + str(budgets[-1])}"
                        for s in ODE_SAMPLERS)
        print(f"  fewest NFE within {thr:g} grey levels RMS: {got}")


def points(handle: ModelHandle, data, n: int, budgets: list[int], seed: int) -> None:
    x_T, _ = noise_from_seed(handle.sample_shape(n), seed)
    full = run_sampler(handle.model, x_T, handle.schedule, sampler_spec("ddpm", handle.schedule.timesteps,
                       handle.schedule), objective=handle.objective, clip_x0=False, seed=seed)
    d_full, floor, used = distance_to_data(full.samples, data)
    curves = quality_by_nfe(handle.model, x_T, handle.schedule, SAMPLERS, budgets, objective=handle.objective,
                            clip_x0=False, metric="data", data=data, seed=seed)
    print(f"  {used:,} points from one x_T (seed {seed}); floor {floor:.4f}; DDPM with all "
          f"{handle.schedule.timesteps} steps {d_full:.4f} ({full.seconds:.1f} s)")
    table(curves, "SW")
    thr = POINTS_MARGIN * d_full
    got = ", ".join(f"{SAMPLER_NAMES[s]} {curves.fewest_nfe(s, thr) or '> ' + str(budgets[-1])}" for s in SAMPLERS)
    print(f"  fewest NFE within 10% of DDPM-{handle.schedule.timesteps} (SW ≤ {thr:.4f}): {got}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits-run", help="a trained digits run folder (else train one)")
    p.add_argument("--points-run", help="a trained 2D run folder (else train one)")
    p.add_argument("--points-dataset", default="moons")
    p.add_argument("--digits-minutes", type=float, default=5.0)
    p.add_argument("--points-minutes", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budgets", default="5,10,20,50,100")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--points", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", metavar="DIR", help="write the runs it trains to DIR/<dataset> (to reopen)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    for kind, run, train_args in (("points", args.points_run, (args.points_dataset, args.points_minutes)),
                                  ("digits", args.digits_run, ("digits", args.digits_minutes))):
        handle, data, about = opened(run) if run else train(*train_args, args.threads, args.keep)
        handle.model.eval()
        print(about, flush=True)
        with torch.no_grad():
            if kind == "points":
                points(handle, data, args.points, budgets, args.seed)
            else:
                digits(handle, args.images, budgets, args.seed)


if __name__ == "__main__":
    main()
