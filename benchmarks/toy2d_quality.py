"""2D points: how close each recipe's samples get to the data, per CPU second.

    python benchmarks/toy2d_quality.py                     # the default recipe on moons
    python benchmarks/toy2d_quality.py --dataset checkerboard --set objective=eps --set schedule=linear

Trains the MLP through the one Trainer, then samples 10,000 points with DDPM (all T steps and
respaced to 250) and DDIM (50 steps) and prints each sampler's sliced Wasserstein distance to
the data and its ratio to the floor: the distance between two independent draws of the data.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffview.core.data.points import distance_to_data, load_points
from diffview.core.sampling import sample
from diffview.core.train.config import TrainConfig
from diffview.core.train.events import DoneEvent
from diffview.core.train.trainer import Trainer


def _setting(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, int(value)
    except ValueError:
        try:
            return key, float(value)
        except ValueError:
            return key, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="moons")
    p.add_argument("--set", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                   help="a TrainConfig setting to change, e.g. objective=eps")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.for_dataset(args.dataset, threads=args.threads, preview_every=10**6, **dict(args.set))
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    done = [e for e in trainer.run() if isinstance(e, DoneEvent)][-1]
    seconds = time.perf_counter() - t0
    if done.reason != "finished":
        raise SystemExit(done.message)
    data = load_points(args.dataset)[0]
    print(f"{args.dataset}: {cfg.model}, {cfg.objective}, {cfg.schedule} T={cfg.timesteps}, batch {cfg.batch_size}, "
          f"lr {cfg.lr:g}, {cfg.steps} steps in {seconds:.1f} s on {args.threads} thread(s)")
    for sampler, steps in (("ddpm", cfg.timesteps), ("ddpm", 250), ("ddim", 50)):
        t0 = time.perf_counter()
        with torch.no_grad():
            x = sample(trainer.ema.model, (10_000, 2), trainer.schedule, sampler=sampler, steps=steps,
                       objective=cfg.objective, clip_x0=False, generator=torch.Generator().manual_seed(3))
        d, floor, n = distance_to_data(x, data)
        print(f"  {sampler} {steps:>4} steps: SW {d:.4f}, floor {floor:.4f}, ratio {d / floor:.2f} "
              f"({n:,} points, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
