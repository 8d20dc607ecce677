"""``diffview sample``: a grid PNG of a run's samples (a class per row, guided, for a conditional run), a GIF
of the reverse process, the samples as an .npz for other tools' scores, and 2D runs' scatter plots."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch


def sample(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from diffview.core.io.export import make_grid, save_gif, save_grid, to_uint8
    from diffview.core.runs.handle import FromDiffusers, PointShape
    from diffview.core.runs.open import open_run
    from diffview.core.sampling import default_churn, default_steps, nfe

    run = open_run(args.run, ema=not args.raw)
    model = run.handle
    if args.raw and run.config is None:
        raise ValueError(f"--raw: {run.root} is a diffusers model, saved with one set of weights; leave out --raw")
    steps = args.steps or default_steps(args.sampler, model.schedule.timesteps)
    if steps > model.schedule.timesteps:
        raise ValueError(f"--steps {steps} exceeds the run's T = {model.schedule.timesteps}")
    if not 0.0 <= args.eta <= 1.0:
        raise ValueError(f"--eta must lie in [0, 1], got {args.eta}")
    if args.churn is None:
        args.churn = default_churn(args.sampler)
    if args.churn < 0 or (args.churn and args.sampler != "heun"):
        raise ValueError(f"--churn is heun's S_churn ≥ 0, got {args.churn:g} with --sampler {args.sampler}")
    # the cost, which also refuses a spacing that cannot place the steps
    cost = nfe(args.sampler, steps, model.schedule, args.spacing, s_churn=args.churn)
    guide = sample_labels(model, args.label, args.n, args.guidance_scale,
                          run.config.guidance_scale if run.config else None)
    # a diffusers folder (often a download cache) is not written into: its default grid goes to the current folder
    tag = f"-S{guide.scale:g}" if guide.labels is not None else ""
    out = Path(args.out) if args.out else (run.root / "samples" if run.config else Path(".")) / (
        f"sample-{args.sampler}{steps}{tag}-seed{args.seed}" + (f"-step{run.step}.png" if run.config else ".png"))
    if guide.note:
        print(guide.note, file=sys.stderr)
    if isinstance(model.shape, PointShape):
        return _sample_points(run, args, steps, out, guide)
    if args.csv:
        raise ValueError("--csv writes 2D points; this run makes images")
    keep_every = max(1, steps // 60)
    frames, final = [], None
    t0 = time.perf_counter()
    for st in tqdm(model.iter_sample(guide.n, sampler=args.sampler, steps=steps, eta=args.eta, seed=args.seed,
                                     device=args.device, spacing=args.spacing, s_churn=args.churn, **guide.kwargs()),
                   total=steps, unit="step", file=sys.stderr):
        if args.gif and (st.index % keep_every == 0 or st.t_prev < 0):
            frames.append(np.concatenate([make_grid(to_uint8(st.x_t), guide.nrow),
                                          make_grid(to_uint8(st.x0_pred), guide.nrow)], axis=1))
        final = st.x_prev
    seconds = time.perf_counter() - t0
    meta = {"seed": args.seed, "step": run.step, "schedule": model.schedule.name,
            "timesteps": model.schedule.timesteps, "sampler": args.sampler, "sampler_steps": steps, "nfe": cost,
            "spacing": args.spacing, "s_churn": args.churn, "eta": args.eta,
            "objective": model.objective,
            "weights": "diffusers" if isinstance(model.origin, FromDiffusers) else "raw" if args.raw else "ema",
            "run": str(run.root), **guide.metadata()}
    images = to_uint8(final)
    save_grid(images, out, nrow=guide.nrow, metadata=meta, scale=2)
    churn = f", S_churn {args.churn:g}" if args.churn else ""
    print(f"Wrote {guide.n} samples to {out} ({args.sampler}, {steps} steps{churn}, {cost} NFE{guide.describe()}, "
          f"{seconds:.1f} s)",
          file=sys.stderr)
    if args.npz:
        write_npz(args.npz, images.transpose(0, 2, 3, 1), guide, model.conditional)
    if args.gif:
        frames.append(np.concatenate([make_grid(images, guide.nrow), make_grid(images, guide.nrow)], axis=1))
        save_gif(frames, args.gif, scale=2)
        print(f"Wrote the reverse process (x_t | x̂_0, {len(frames)} frames) to {args.gif}", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class Guide:
    """What ``sample`` draws: how many samples, their classes (None: unconditional) and the guidance scale."""

    n: int
    labels: torch.Tensor | None = None  # one class per sample, grouped in rows of ``nrow``
    names: tuple[str, ...] = ()  # the rows' class names
    scale: float = 1.0
    nrow: int | None = None
    note: str = ""

    def kwargs(self) -> dict:
        return {} if self.labels is None else {"label": self.labels, "guidance_scale": self.scale}

    def metadata(self) -> dict:
        return {} if self.labels is None else {"rows": ", ".join(self.names), "guidance_scale": self.scale}

    def describe(self) -> str:
        if self.labels is None:
            return ""
        return f", {len(self.names)} class{'es' if len(self.names) != 1 else ''} guided at S = {self.scale:g}"


def sample_labels(handle, names: list[str] | None, n: int | None, scale: float | None,
                  default_scale: float | None) -> Guide:
    """The classes ``--label`` asks for (``all``: every class), ``n`` samples each (default 8), guided at
    ``scale`` (default: the run's); without ``--label``, ``n`` (default 64) unconditional samples."""
    if not names:
        if scale is not None and handle.conditional:
            raise ValueError("--guidance-scale guides towards a class: give --label NAME (or --label all)")
        if scale is not None:
            raise ValueError("--guidance-scale needs a class-conditional run (trained with --conditional)")
        note = (f"{handle.label} is class-conditional: these samples are unconditional; --label NAME or "
                "--label all samples its classes" if handle.conditional else "")
        return Guide(64 if n is None else n, note=note)
    if not handle.conditional:
        raise ValueError(f"--label: {handle.label} is not class-conditional (it was trained without labels); "
                         "train with --conditional to sample a class")
    wanted = list(handle.class_names) if any(name == "all" for name in names) else names
    classes = [handle.class_index(name) for name in wanted]
    s = default_scale if scale is None else scale
    if s is None or not 0.0 <= s <= 100.0:
        raise ValueError(f"--guidance-scale must lie in [0, 100], got {s}")
    per = 8 if n is None else n
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per)
    return Guide(len(labels), labels, tuple(handle.class_names[c] for c in classes), float(s), per)


def write_npz(path: str, samples, guide: Guide, conditional: bool) -> None:
    """arr_0: the samples; arr_1 (a conditional run): each one's label, −1 for unconditional samples."""
    import io

    import numpy as np

    from diffview.core.io.files import atomic_write_bytes

    arrays = {"arr_0": np.ascontiguousarray(samples)}
    if conditional:
        labels = np.full(guide.n, -1, np.int64) if guide.labels is None else guide.labels.numpy().astype(np.int64)
        arrays["arr_1"] = labels
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    shape = "×".join(map(str, arrays["arr_0"].shape))
    print(f"Wrote the samples to {path} (arr_0 {arrays['arr_0'].dtype} {shape}"
          + (", labels in arr_1)" if conditional else ")"), file=sys.stderr)


def _sample_points(run, args, steps: int, out: Path, guide: Guide) -> int:
    """2D runs: a scatter plot PNG (the data faintly behind), the points as CSV, and the distance to the data."""
    from diffview.core.data.points import PointDataset, distance_to_data, save_points_csv, scatter_image
    from diffview.core.data.source import load_source
    from diffview.core.io.export import save_grid

    if args.gif:
        raise ValueError("--gif shows images; for 2D runs open the run in the app to watch the trajectories")
    t0 = time.perf_counter()
    final = run.handle.sample(guide.n, sampler=args.sampler, steps=steps, eta=args.eta, seed=args.seed,
                              spacing=args.spacing, s_churn=args.churn,
                              device=args.device, **guide.kwargs())
    seconds = time.perf_counter() - t0
    points = final.float().cpu()
    try:
        data = load_source(run.config.dataset)[0]
    except ValueError:  # a CSV that has since moved: the samples still get written
        data = None
    dataset = data if isinstance(data, PointDataset) else None
    meta = {"seed": args.seed, "step": run.step, "sampler": args.sampler, "sampler_steps": steps, "eta": args.eta,
            "objective": run.handle.objective, "run": str(run.root)}
    meta.update(guide.metadata())
    message = f"Wrote {guide.n:,} points to {out} ({args.sampler}, {steps} steps{guide.describe()}, {seconds:.1f} s)"
    if dataset is not None:
        distance, floor, n = distance_to_data(points, dataset)
        meta.update(sliced_wasserstein=round(distance, 5), data_floor=round(floor, 5))
        message += (f"; sliced Wasserstein distance to the data {distance:.4f} on {n:,} points "
                    f"(two draws of the data: {floor:.4f})")
    image = scatter_image(points, size=512, reference=dataset.points if dataset is not None else None)
    save_grid(image[None], out, metadata=meta, padding=0)
    print(message, file=sys.stderr)
    if args.csv:
        save_points_csv(points, args.csv)
        print(f"Wrote the points to {args.csv}", file=sys.stderr)
    if args.npz:
        write_npz(args.npz, points.numpy().astype("float32"), guide, run.handle.conditional)
    return 0
