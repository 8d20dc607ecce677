"""Sample quality per CPU minute on the built-in 28×28 digits.

Each recipe trains for the same wall time on ``--threads`` cores (run it on a quiet machine) as a user's
``diffview train --minutes`` does: the run times its warm-up and fits its steps to the budget
(core/train/budget.py), so its learning-rate schedule ends where the budget does.
Then ``--n`` samples (default 500; ``--sampler``, default `diffview sample`'s: Heun, 25 steps, S_churn 20,
from the EMA weights, at each sample seed of ``--seeds``, default 123) are scored by a judge: a small CNN
trained here on the built-in digits plus an 11th "scribble" class (blends of two different digits,
smoothed-noise blobs, scrambled strokes).

- *readable*: the fraction the judge gives one digit class probability ≥ 0.9; *ratio*: that over the judge's
  readable fraction on held-out real digits (the reference);
- *coverage*: the entropy of the readable samples' digits / log 10 (1: all ten equally often);
- *FD*: the Fréchet distance between the judge's penultimate features (128 ReLU units) of the samples and of
  ``--n`` held-out real digits, printed with its floor, the distance between two disjoint sets of ``--n`` real
  digits: it sees blur and lost modes that the readable/unreadable split cannot.

With several ``--seeds`` the row gives the mean readable fraction over the seeds (``--n`` samples each, from the
same weights), its ratio, the lowest coverage and the mean FD, then each seed's readable fraction and coverage
and the FDs' range: one seed's 500 samples move the readable fraction by ±0.02 and the FD by several units.

A conditional recipe (``cond``) is also scored per guidance scale S ∈ {1, 2, 3, 5}: the ten digits in turn,
*accuracy* = the fraction the judge reads (≥ 0.9) as the digit asked for; and its unconditional samples (the
null class). Grids are written for a person to look at.

    python benchmarks/quality_per_minute.py --minutes 5 --recipes default,c24,c16
    python benchmarks/quality_per_minute.py --minutes 1,2,5,10 --recipes default --keep /tmp/runs   # the curve
    python benchmarks/quality_per_minute.py --score-run /tmp/runs/default-5min --samplers ddim:50,heun:25:churn=20
    python benchmarks/quality_per_minute.py --score-run /tmp/runs/default \
        --seeds 123,7,99,2024   # four sample seeds, 2,000 samples, from one run's weights, as the recipes sample
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffview.core import make_schedule
from diffview.core.analysis.frechet import frechet_distance
from diffview.core.data.digits import make_digits
from diffview.core.data.images import ImageDataset
from diffview.core.io.export import save_grid, to_uint8
from diffview.core.models.registry import MODEL_PRESETS
from diffview.core.models.unet import PRESETS, UNetConfig
from diffview.core.sampling import DEFAULT_CHURN, DEFAULT_SAMPLER, sample
from diffview.core.train import config as train_config
from diffview.core.train.config import TrainConfig
from diffview.core.train.ema import EMA
from diffview.core.train.trainer import DoneEvent, StepEvent, Trainer

# Candidate architectures (the ones not already presets are registered for this benchmark only).
EXTRA_PRESETS = {
    "s16": UNetConfig(base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s24": UNetConfig(base_channels=24, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s24w": UNetConfig(base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,), groups=8),
    "s16w": UNetConfig(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,), groups=8),
    "p2": UNetConfig(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), patch_size=2),
    "p2-noattn": UNetConfig(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
                            mid_attention=False, patch_size=2),
    "p2-24": UNetConfig(base_channels=24, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), patch_size=2),
    "p2-48": UNetConfig(base_channels=48, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), patch_size=2),
    "p4-64": UNetConfig(base_channels=64, channel_mults=(1,), num_res_blocks=2, attention_levels=(0,), patch_size=4),
    "p4-96": UNetConfig(base_channels=96, channel_mults=(1,), num_res_blocks=2, attention_levels=(0,), patch_size=4),
    "p2-24-noattn": UNetConfig(base_channels=24, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
                               mid_attention=False, patch_size=2),
    "p2-16": UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), patch_size=2),
    "p2-res2": UNetConfig(base_channels=32, channel_mults=(1, 2), num_res_blocks=2, attention_levels=(1,),
                          patch_size=2),
    "p2w": UNetConfig(base_channels=48, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), groups=8,
                      patch_size=2),
}
RECIPES = {
    # name: (preset, TrainConfig overrides)
    "default": ("small", {}),  # TrainConfig's defaults: since this issue, c24-noattn's network as `small`
    "p2-32": ("p2", {}),  # the `small` preset before: 32 channels, attention at 7×7
    "lognormal": ("p2", {"t_sampling": "lognormal"}),
    "lr4e-3": ("p2", {"lr": 4e-3}),
    "lr1e-3": ("p2", {"lr": 1e-3}),
    "b128": ("p2", {"batch_size": 128}),
    "b32": ("p2", {"batch_size": 32}),
    "noattn": ("p2-noattn", {}),
    "c24": ("p2-24", {}),
    "c48": ("p2-48", {}),
    "res2": ("p2-res2", {}),
    "p4": ("p4-64", {}),
    "p4w": ("p4-96", {}),
    "c16": ("p2-16", {}),
    "c24-lr4e-3": ("p2-24", {"lr": 4e-3}),
    "c24-noattn": ("p2-24-noattn", {}),
    "c24-b32": ("p2-24", {"batch_size": 32}),
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
    "small-b128": ("small", {"batch_size": 128}),
    "small-b128-lr3e-3": ("small", {"batch_size": 128, "lr": 3e-3}),
    "small-lr3e-3": ("small", {"lr": 3e-3}),
    "small-sigmoid": ("small", {"schedule": "sigmoid"}),
    "small-linear": ("small", {"schedule": "linear"}),
    "fp32": ("small", {"precision": "fp32"}),  # the defaults in float32 (the default "auto" is bf16 where native)
    "bf16": ("small", {"precision": "bf16"}),
    "adaptive": ("small", {"loss_weighting": "adaptive"}),  # each t's loss over its running mean (EDM2's balance)
    "unweighted": ("small", {"loss_weighting": "none"}),
    "min-snr": ("small", {"loss_weighting": "min_snr"}),
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
    "cond": ("small", {"conditional": True}),  # the defaults, class-conditional
    "small-cond": ("small", {"conditional": True}),
    "small-cond-p0.2": ("small", {"conditional": True, "cond_dropout": 0.2}),
}
GUIDANCE_SCALES = (1.0, 1.5, 2.0, 3.0, 5.0)
SAMPLER_OPTIONS = {"eta": "eta", "churn": "s_churn"}  # --samplers ddim:50:eta=1,heun:25:churn=40
DEFAULT_RECIPE_SAMPLER = f"{DEFAULT_SAMPLER}:25:churn={DEFAULT_CHURN:g}"  # `diffview sample`'s default


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


def run_recipe(name: str, seconds: float, data: ImageDataset, out: Path, threads: int,
               emas: tuple[float, ...] = (), sampler: str = DEFAULT_RECIPE_SAMPLER, n: int = 256,
               keep: Path | None = None, tag: str = "", seeds: tuple[int, ...] = (123,)) -> dict:
    """Train ``name`` for ``seconds`` of wall time (its steps fitted to the budget) and sample ``n`` images from its EMA
    weights, and from each extra EMA decay in ``emas`` (tracked beside the run's own). ``keep``: write the run
    (its final checkpoint) to ``keep/name``, for ``--score-run`` to sample again; ``tag`` is added to the names of
    its run and grids. Unconditional samples are drawn at each of ``seeds``, guided ones at the first."""
    preset, overrides = RECIPES[name]
    # the budget as a user sets it (TrainConfig.minutes): the run times its warm-up and fits its steps to the rest
    cfg = TrainConfig(model=preset, preview_every=10**9, checkpoint_every=10**9, threads=threads,
                      minutes=seconds / 60, **overrides)
    run_dir = None
    if keep is not None:
        run_dir = keep / f"{name}{tag}"
        shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(cfg, run_dir, dataset=data)
    extra: dict[float, EMA] = {}
    w0, steps, last = time.perf_counter(), 0, None
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            if not extra and emas:
                extra = {d: EMA(trainer.model, d, cfg.ema_warmup) for d in emas if d != cfg.ema_decay}
            for e in extra.values():
                e.update(trainer.model)
            steps, last = ev.step, ev.loss
            if time.perf_counter() - w0 >= 1.05 * seconds:  # slower than its warm-up measured: other load
                trainer.stop()
        elif isinstance(ev, DoneEvent) and ev.reason == "failed":
            raise RuntimeError(ev.message)
    wall = time.perf_counter() - w0
    schedule = make_schedule(cfg.schedule, cfg.timesteps)
    kind, sampler_steps, options = parse_sampler(sampler)
    models = {cfg.ema_decay: trainer.ema.model, **{d: e.model for d, e in extra.items()}}
    samples = {}
    for decay, model in sorted(models.items()):
        with torch.no_grad():
            samples[decay] = {seed: sample(model, (n, 1, 28, 28), schedule, sampler=kind, steps=sampler_steps,
                                           **options, objective=cfg.objective,
                                           generator=torch.Generator().manual_seed(seed)) for seed in seeds}
        ema_tag = "" if decay == cfg.ema_decay else f"-ema{decay:g}"
        save_grid(to_uint8(samples[decay][seeds[0]][:100]), out / f"{name}{tag}{ema_tag}.png", nrow=10, scale=3)
    guided = {}
    if cfg.conditional:
        labels = torch.arange(n) % 10
        for s in GUIDANCE_SCALES:
            with torch.no_grad():
                guided[s] = sample(trainer.ema.model, (n, 1, 28, 28), schedule, sampler=kind, steps=sampler_steps,
                                   **options, objective=cfg.objective,
                                   generator=torch.Generator().manual_seed(seeds[0]), label=labels, guidance_scale=s)
            order = torch.argsort(labels[:100], stable=True)  # one row per digit in the grid
            save_grid(to_uint8(guided[s][:100][order]), out / f"{name}{tag}-S{s:g}.png", nrow=10, scale=3)
    return {"recipe": name, "steps": steps, "wall_s": wall, "loss": last, "ema_decay": cfg.ema_decay,
            "params_M": trainer.model.num_parameters() / 1e6, "samples": samples, "guided": guided}


@torch.no_grad()
def accuracy(judge: Judge, x: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of samples the judge reads (probability ≥ 0.9) as the digit they were asked for."""
    p = F.softmax(judge(x), dim=1)
    conf, cls = p.max(dim=1)
    return ((cls == labels) & (conf >= 0.9)).float().mean().item()


def parse_sampler(item: str) -> tuple[str, int, dict]:
    """"heun:25:churn=20" → ("heun", 25, {"s_churn": 20.0})."""
    name, steps, *options = item.split(":")
    return name, int(steps), {SAMPLER_OPTIONS[k]: float(v) for k, v in (o.split("=") for o in options)}


def score(judge: Judge, by_seed: dict[int, torch.Tensor], real: float, real_f: torch.Tensor) -> str:
    """The columns readable, ratio, coverage and FD of samples drawn at one or more seeds (see the docstring)."""
    scores = [(*readability(judge, x), frechet_distance(judge_features(judge, x), real_f)) for x in by_seed.values()]
    fracs, covers, fds = zip(*scores)
    frac = sum(fracs) / len(fracs)
    row = f"{frac:>9.3f} {frac / real:>6.2f} {min(covers):>9.3f} {sum(fds) / len(fds):>7.2f}"
    if len(scores) > 1:
        row += (f"  (seeds {', '.join(map(str, by_seed))}: readable {', '.join(f'{f:.3f}' for f in fracs)}; "
                f"coverage {', '.join(f'{c:.3f}' for c in covers)}; FD {min(fds):.2f}–{max(fds):.2f})")
    return row


def score_run(path: str, judge: Judge, real: float, out: Path, samplers: str, n: int, real_f: torch.Tensor,
              seeds: tuple[int, ...] = (123,)) -> None:
    """The readable fraction of ``n`` samples from a run's EMA weights, at each of ``seeds``, with each of
    ``samplers`` ("name:steps,…"), and each one's NFE and wall time."""
    from diffview.core.runs.open import open_run
    from diffview.core.sampling import nfe

    run = open_run(path)
    for item in samplers.split(","):
        name, steps, extra = parse_sampler(item)
        t0 = time.perf_counter()
        by_seed = {seed: run.handle.sample(n, sampler=name, steps=int(steps), seed=seed, **extra) for seed in seeds}
        seconds = (time.perf_counter() - t0) / len(seeds)
        tag = item.replace(":", "-").replace("=", "")
        grid = out / f"scored-run-{tag}.png"
        save_grid(to_uint8(by_seed[seeds[0]][:100]), grid, nrow=10, scale=3)
        cost = nfe(name, int(steps), run.handle.schedule, s_churn=extra.get("s_churn", 0.0))
        print(f"{run.root} at step {run.step}, {item} ({cost} NFE, {seconds:.1f} s for {n}); grid in {grid}")
        print(f"{'readable':>9} {'ratio':>6} {'coverage':>9} {'FD':>7}")
        print(score(judge, by_seed, real, real_f), flush=True)


def judge_features(judge: Judge, x: torch.Tensor) -> torch.Tensor:
    """The judge's penultimate features (the 128 ReLU units before its last layer) of images in [−1, 1]."""
    with torch.no_grad():
        return torch.cat([judge.net[:-2](x[i:i + 500]) for i in range(0, len(x), 500)])


def real_features(judge: Judge, n: int) -> tuple[torch.Tensor, float]:
    """Features of ``n`` held-out real digits, and the real-vs-real Fréchet floor: two disjoint sets of ``n``."""
    imgs, _ = make_digits(2 * n, seed=2)
    f = judge_features(judge, imgs.float() / 127.5 - 1)
    return f[:n], frechet_distance(f[:n], f[n:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="5", help="wall minutes of training on --threads cores, or a list "
                                                   "(1,2,5,10: a quality-against-minutes curve; default 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipes", default="default")
    ap.add_argument("--emas", default="", help="extra EMA decays to track and score beside the recipe's own, e.g. "
                                               "0.99,0.995")
    ap.add_argument("--sampler", default=DEFAULT_RECIPE_SAMPLER,
                    help=f"sampler:steps[:churn=S|:eta=E] for the recipes' samples (default {DEFAULT_RECIPE_SAMPLER})")
    ap.add_argument("--out", default="benchmarks/out/quality")
    ap.add_argument("--keep", metavar="DIR", help="write each recipe's run to DIR/RECIPE (for --score-run)")
    ap.add_argument("--score-run", metavar="RUN_DIR", help="only score a run folder's latest checkpoint")
    ap.add_argument("--samplers", default=DEFAULT_RECIPE_SAMPLER,
                    help=f"with --score-run: sampler:steps,… (default {DEFAULT_RECIPE_SAMPLER}, as the recipes)")
    ap.add_argument("--n", type=int, default=500, help="samples scored per recipe or sampler (default 500)")
    ap.add_argument("--seeds", default="123", help="sample seeds, --n samples each, e.g. 123,7,99,2024 (default 123)")
    args = ap.parse_args()
    seeds = tuple(int(v) for v in args.seeds.split(","))
    PRESETS.update(EXTRA_PRESETS)
    train_config.MODEL_PRESETS = MODEL_PRESETS + tuple(EXTRA_PRESETS)  # TrainConfig.validate accepts them here
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge, real = train_judge()
    real_f, floor = real_features(judge, args.n)
    print(f"Fréchet distance in the judge's features, N = {args.n}: real-vs-real floor {floor:.2f}")
    if args.score_run:
        score_run(args.score_run, judge, real, out, args.samplers, args.n, real_f, seeds)
        return
    imgs, labels = make_digits(10_000, seed=0)
    data = ImageDataset(imgs, labels=labels)
    budgets = [float(m) * 60 for m in args.minutes.split(",")]
    emas = tuple(float(d) for d in args.emas.split(",") if d)
    print(f"budgets: {', '.join(f'{b:.0f}' for b in budgets)} s of training per recipe on {args.threads} threads; "
          f"{args.n} samples, {args.sampler}")
    print(f"{'recipe':<14} {'min':>4} {'EMA':>6} {'params':>7} {'steps':>6} {'wall':>6} {'loss':>7} {'readable':>9} "
          f"{'ratio':>6} {'coverage':>9} {'FD':>7}")
    for budget, recipe in ((b, r) for b in budgets for r in args.recipes.split(",")):
        r = run_recipe(recipe, budget, data, out, args.threads, emas, args.sampler, args.n,
                       Path(args.keep) if args.keep else None, tag="" if len(budgets) == 1 else f"-{budget / 60:g}min",
                       seeds=seeds)
        for decay, by_seed in r["samples"].items():
            print(f"{recipe:<14} {budget / 60:>4g} {decay:>6g} {r['params_M']:>6.2f}M {r['steps']:>6} "
                  f"{r['wall_s']:>5.0f}s {r['loss']:>7.4f} {score(judge, by_seed, real, real_f)}"
                  + ("  (unconditional samples)" if r["guided"] else ""), flush=True)
        for s, xs in r["guided"].items():
            acc = accuracy(judge, xs, torch.arange(len(xs)) % 10)
            gfrac, gcover = readability(judge, xs)
            fd = frechet_distance(judge_features(judge, xs), real_f)
            print(f"{'':<14} guided S = {s:g}: accuracy {acc:.3f} ({acc / real:.2f} of real), readable {gfrac:.3f}, "
                  f"coverage {gcover:.3f}, FD {fd:.2f}", flush=True)
    print(f"reference: judge's readable fraction on real held-out digits = {real:.3f}; FD floor {floor:.2f}; "
          f"grids in {out}/")


if __name__ == "__main__":
    main()
