"""Sample quality per CPU minute on the built-in 28×28 digits.

Each candidate recipe trains for the same budget of process CPU time (2 threads × the wall
minutes asked for, so other load on the machine does not skew it), then samples 256 digits
(DDIM, 50 steps, EMA weights) and a judge scores them: a small CNN trained here on the
built-in digits plus an 11th "scribble" class (blends of two different digits, smoothed-noise
blobs, scrambled strokes). A sample is *readable* when the judge gives one digit class
probability >= 0.9. Printed per recipe: steps reached, readable fraction, the ratio to the
judge's readable fraction on held-out real digits (the reference), and class coverage
(entropy of the predicted digits / log 10). Grids are written for a person to look at.

A conditional recipe (``small-cond``) is also scored per guidance scale S ∈ {1, 2, 3, 5}: 256 samples,
the ten digits in turn, and *accuracy* = the fraction the judge reads (≥ 0.9) as the digit asked for;
and its unconditional samples (the null class) for readability and coverage.

    python benchmarks/quality_per_minute.py --minutes 5 --recipes small,s24,s16
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffview.core import make_schedule
from diffview.core.data.digits import make_digits
from diffview.core.data.images import ImageDataset
from diffview.core.io.export import save_grid, to_uint8
from diffview.core.models.unet import PRESETS, UNetConfig
from diffview.core.sampling import sample
from diffview.core.train.config import TrainConfig
from diffview.core.train.trainer import DoneEvent, StepEvent, Trainer

# Candidate architectures (the ones not already presets are registered for this benchmark only).
EXTRA_PRESETS = {
    "s16": UNetConfig(base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s24": UNetConfig(base_channels=24, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s24w": UNetConfig(base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s16w": UNetConfig(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,), groups=8),
    "p2": PRESETS["small"],
    "p2w": UNetConfig(base_channels=48, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), groups=8,
                      patch_size=2),
}
RECIPES = {
    # name: (preset, TrainConfig overrides)
    "small": ("small", {}),
    "s16": ("s16", {}),
    "s24": ("s24", {}),
    "s24w": ("s24w", {}),
    "s24-b32": ("s24", {"batch_size": 32}),
    "s24-b128": ("s24", {"batch_size": 128}),
    "s24-v": ("s24", {"objective": "v"}),
    "s24-lr1e-3": ("s24", {"lr": 1e-3}),
    "s24-lr4e-3": ("s24", {"lr": 4e-3}),
    "s24-linear": ("s24", {"schedule": "linear"}),
    "small-b32": ("small", {"batch_size": 32}),
    "s16-b32": ("s16", {"batch_size": 32}),
    "s16-minsnr": ("s16", {"loss_weighting": "min_snr"}),
    "s16-v": ("s16", {"objective": "v"}),
    "s16-lr4e-3": ("s16", {"lr": 4e-3}),
    "s16w": ("s16w", {}),
    "p2": ("p2", {}),
    "p2-b32": ("p2", {"batch_size": 32}),
    "p2w": ("p2w", {}),
    "s16-v-b32": ("s16", {"objective": "v", "batch_size": 32}),
    "s24-v-minsnr": ("s24", {"objective": "v", "loss_weighting": "min_snr"}),
    "p2-v": ("p2", {"objective": "v"}),
    "s16-v-minsnr": ("s16", {"objective": "v", "loss_weighting": "min_snr"}),
    "s16-v-b32-lr1e-3": ("s16", {"objective": "v", "batch_size": 32, "lr": 1e-3}),
    # class-conditional with classifier-free guidance (p(∅) = 0.1), scored per guidance scale
    "small-cond": ("small", {"conditional": True}),
    "small-cond-p0.2": ("small", {"conditional": True, "cond_dropout": 0.2}),
}
GUIDANCE_SCALES = (1.0, 2.0, 3.0, 5.0)


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 49, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 11))

    def forward(self, x):
        return self.net(x)


def scribbles(images: torch.Tensor, labels: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """Images in [−1, 1] that are not a digit: blends, blobs, scrambled strokes."""
    k = n // 3
    i, j = torch.randint(0, len(images), (2, 4 * k), generator=g)
    keep = labels[i] != labels[j]
    i, j = i[keep][:k], j[keep][:k]
    blends = torch.maximum(images[i], images[j])
    noise = torch.randn(k, 1, 7, 7, generator=g)
    blobs = F.interpolate(noise, size=28, mode="bicubic", align_corners=False)
    blobs = torch.where(blobs > 0.8, 1.0, -1.0)
    tiles = images[torch.randint(0, len(images), (n - 2 * k,), generator=g)].unfold(2, 7, 7).unfold(3, 7, 7)
    tiles = tiles.reshape(n - 2 * k, 1, 16, 7, 7)
    perm = torch.stack([torch.randperm(16, generator=g) for _ in range(n - 2 * k)])
    tiles = torch.gather(tiles, 2, perm[:, None, :, None, None].expand_as(tiles))
    scrambled = tiles.reshape(n - 2 * k, 1, 4, 4, 7, 7).permute(0, 1, 2, 4, 3, 5).reshape(n - 2 * k, 1, 28, 28)
    return torch.cat([blends, blobs, scrambled])


def train_judge(seconds_log=print) -> tuple[Judge, float]:
    imgs, labels = make_digits(10_000, seed=0)
    x = imgs.float() / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    junk = scribbles(x, labels, 3000, g)
    xs = torch.cat([x, junk])
    ys = torch.cat([labels, torch.full((len(junk),), 10)])
    torch.manual_seed(0)  # the judge's weights and dropout: the same judge every run
    judge = Judge()
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for epoch in range(3):
        perm = torch.randperm(len(xs), generator=g)
        for b in range(0, len(xs), 128):
            idx = perm[b : b + 128]
            xb = xs[idx]
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()  # small translations
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(judge(xb), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge.eval()
    test_imgs, _ = make_digits(2000, seed=1)
    real = readability(judge, test_imgs.float() / 127.5 - 1)[0]
    seconds_log(f"judge trained in {time.perf_counter() - t0:.0f} s; readable fraction of held-out real digits: "
                f"{real:.3f}")
    return judge, real


@torch.no_grad()
def readability(judge: Judge, x: torch.Tensor) -> tuple[float, float]:
    p = F.softmax(judge(x), dim=1)
    conf, cls = p.max(dim=1)
    readable = (cls < 10) & (conf >= 0.9)
    counts = torch.bincount(cls[readable], minlength=10)[:10].double()
    if counts.sum() == 0:
        return 0.0, 0.0
    q = counts / counts.sum()
    entropy = -(q[q > 0] * q[q > 0].log()).sum().item() / math.log(10)
    return readable.float().mean().item(), entropy


def run_recipe(name: str, cpu_seconds: float, data: ImageDataset, out: Path, threads: int) -> dict:
    preset, overrides = RECIPES[name]
    cfg = TrainConfig(model=preset, steps=100_000, preview_every=10**9, checkpoint_every=10**9,
                      threads=threads, lr_decay="constant", **overrides)
    trainer = Trainer(cfg, dataset=data)
    c0, w0, steps, last = time.process_time(), time.perf_counter(), 0, None
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            steps, last = ev.step, ev.loss
            if time.process_time() - c0 >= cpu_seconds:
                trainer.stop()
        elif isinstance(ev, DoneEvent) and ev.reason == "failed":
            raise RuntimeError(ev.message)
    wall = time.perf_counter() - w0
    g = torch.Generator().manual_seed(123)
    schedule = make_schedule(cfg.schedule, cfg.timesteps)
    with torch.no_grad():
        x = sample(trainer.ema.model, (256, 1, 28, 28), schedule, sampler="ddim", steps=50,
                   objective=cfg.objective, generator=g)
    save_grid(to_uint8(x[:100]), out / f"{name}.png", nrow=10, scale=3)
    guided = {}
    if cfg.conditional:
        labels = torch.arange(256) % 10
        for s in GUIDANCE_SCALES:
            with torch.no_grad():
                guided[s] = sample(trainer.ema.model, (256, 1, 28, 28), schedule, sampler="ddim", steps=50,
                                   objective=cfg.objective, generator=torch.Generator().manual_seed(123),
                                   label=labels, guidance_scale=s)
            order = torch.argsort(labels[:100], stable=True)  # one row per digit in the grid
            save_grid(to_uint8(guided[s][:100][order]), out / f"{name}-S{s:g}.png", nrow=10, scale=3)
    return {"recipe": name, "steps": steps, "wall_s": wall, "loss": last,
            "params_M": trainer.model.num_parameters() / 1e6, "samples": x, "guided": guided}


@torch.no_grad()
def accuracy(judge: Judge, x: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of samples the judge reads (probability ≥ 0.9) as the digit they were asked for."""
    p = F.softmax(judge(x), dim=1)
    conf, cls = p.max(dim=1)
    return ((cls == labels) & (conf >= 0.9)).float().mean().item()


def score_run(path: str, judge: Judge, real: float, out: Path, samplers: str = "ddim:50", n: int = 256) -> None:
    """The readable fraction of ``n`` samples from a run's EMA weights, from one seed, with each of ``samplers``
    ("name:steps,…"), and each one's NFE and wall time."""
    from diffview.core.runs.open import open_run
    from diffview.core.sampling import nfe

    run = open_run(path)
    for item in samplers.split(","):
        name, steps = item.split(":")
        t0 = time.perf_counter()
        x = run.handle.sample(n, sampler=name, steps=int(steps), seed=123)
        seconds = time.perf_counter() - t0
        frac, cover = readability(judge, x)
        grid = out / f"scored-run-{name}{steps}.png"
        save_grid(to_uint8(x[:100]), grid, nrow=10, scale=3)
        print(f"{run.root} at step {run.step}, {name} {steps} steps ({nfe(name, int(steps), run.handle.schedule)} NFE, "
              f"{seconds:.1f} s): readable {frac:.3f}, ratio to real digits {frac / real:.2f}, coverage {cover:.3f}; "
              f"grid in {grid}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="wall minutes on --threads cores (default 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipes", default="small,s24,s16")
    ap.add_argument("--out", default="benchmarks/out/quality")
    ap.add_argument("--score-run", metavar="RUN_DIR", help="only score a run folder's latest checkpoint")
    ap.add_argument("--samplers", default="ddim:50", help="with --score-run: sampler:steps,… (default ddim:50)")
    ap.add_argument("--n", type=int, default=256, help="with --score-run: samples per sampler (default 256)")
    args = ap.parse_args()
    PRESETS.update(EXTRA_PRESETS)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge, real = train_judge()
    if args.score_run:
        score_run(args.score_run, judge, real, out, args.samplers, args.n)
        return
    imgs, labels = make_digits(10_000, seed=0)
    data = ImageDataset(imgs, labels=labels)
    budget = args.minutes * 60 * args.threads
    print(f"budget: {budget:.0f} CPU-seconds per recipe ({args.minutes:g} min × {args.threads} threads)")
    print(f"{'recipe':<12} {'params':>7} {'steps':>6} {'wall':>6} {'loss':>7} {'readable':>9} {'ratio':>6} "
          f"{'coverage':>9}")
    for name in args.recipes.split(","):
        r = run_recipe(name, budget, data, out, args.threads)
        frac, cover = readability(judge, r["samples"])
        print(f"{name:<12} {r['params_M']:>6.2f}M {r['steps']:>6} {r['wall_s']:>5.0f}s {r['loss']:>7.4f} "
              f"{frac:>9.3f} {frac / real:>6.2f} {cover:>9.3f}" + ("  (unconditional samples)" if r["guided"] else ""),
              flush=True)
        for s, xs in r["guided"].items():
            acc = accuracy(judge, xs, torch.arange(len(xs)) % 10)
            gfrac, gcover = readability(judge, xs)
            print(f"{'':<12} guided S = {s:g}: accuracy {acc:.3f} ({acc / real:.2f} of real), readable {gfrac:.3f}, "
                  f"coverage {gcover:.3f}", flush=True)
    print(f"reference: judge's readable fraction on real held-out digits = {real:.3f}; grids in {out}/")


if __name__ == "__main__":
    main()
