"""``diffview invert`` and ``diffview interpolate``: DDIM inversion of an image to its x_T and back, with the
reconstruction's RMS error in grey levels, and a morph between two images (inverted) or two seeds, decoded
along the slerp between their x_T (core/analysis/inversion.py).

An input image is decoded exactly as a training image from a folder is (core/data/files.py ``decode_image``):
EXIF orientation applied, alpha on white, the shorter side resized to the model's size (Lanczos) and the
centre cropped square; then ``to_channels`` makes it the model's channels (colour to grey by ITU-R 601 luma,
grey to three equal channels). So the model sees the image as it saw its training data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def _open(args):
    """The run's handle (EMA unless --raw), checked to make images, and the steps asked for."""
    from diffview.core.runs.handle import ImageShape
    from diffview.core.runs.open import open_run

    run = open_run(args.run, ema=not args.raw)
    if args.raw and run.config is None:
        raise ValueError(f"--raw: {run.root} is a diffusers model, saved with one set of weights; leave out --raw")
    handle = run.handle
    if not isinstance(handle.shape, ImageShape):
        raise ValueError(f"{handle.label} makes {handle.shape}: {args.command} works on image models")
    T = handle.schedule.timesteps
    steps = args.steps or min(50, T)
    if steps > T:
        raise ValueError(f"--steps {steps} exceeds the run's T = {T}")
    return run, handle, steps


def load_image(path: str, handle) -> torch.Tensor:
    """An image file as the model's x_0: float32 [1, C, S, S] in [−1, 1], decoded like a training image (see the
    module's docstring); a one-line ValueError for a missing, unreadable or corrupt file."""
    from diffview.core.data.files import SkipFile, decode_image, to_channels
    from diffview.core.data.images import ImageDataset

    if not Path(path).is_file():
        raise ValueError(f"image {path} does not exist")
    try:
        arr = decode_image(path, handle.shape.size)
    except SkipFile as e:
        raise ValueError(f"cannot use the image {path}: {e.reason}") from None
    _note_conversion(path, arr, handle.shape)
    return ImageDataset.to_float(torch.from_numpy(to_channels(arr, handle.shape.channels).copy())[None])


def _note_conversion(path: str, arr, shape) -> None:
    """Say on stderr when the file was not already the model's size and channels, and what was done."""
    from PIL import Image

    with Image.open(path) as img:
        size = img.size
    done = []
    if size != (shape.size, shape.size):
        done.append(f"resized (shorter side) and centre-cropped from {size[0]}×{size[1]} to {shape.size}×{shape.size}")
    colour = arr.ndim == 3
    if colour and shape.channels == 1:
        done.append("converted to grey (ITU-R 601 luma)")
    elif not colour and shape.channels == 3:
        done.append("its grey copied to three channels")
    if done:
        print(f"{path}: {' and '.join(done)}, as training images are", file=sys.stderr)


def _condition(handle, names: list[str] | None, scale: float | None, default: float) -> tuple[dict, str]:
    """(``label``/``guidance_scale`` kwargs, a few words) for --label NAME; a note goes to stderr for a conditional
    run without one (it is inverted and decoded unconditionally, the null class)."""
    if not names:
        if scale is not None:
            raise ValueError("--guidance-scale guides towards a class: give --label NAME"
                             if handle.conditional else "--guidance-scale needs a class-conditional run")
        if handle.conditional:
            print(f"{handle.label} is class-conditional: this runs unconditionally; --label NAME keeps to a class",
                  file=sys.stderr)
        return {}, ""
    if not handle.conditional:
        raise ValueError(f"--label: {handle.label} is not class-conditional (it was trained without labels)")
    if len(names) > 1:
        raise ValueError(f"--label: give one class, got {len(names)}")
    label = handle.class_index(names[0])
    s = default if scale is None else scale
    if not 0.0 <= s <= 100.0:
        raise ValueError(f"--guidance-scale must lie in [0, 100], got {s}")
    return {"label": label, "guidance_scale": float(s)}, f", class {handle.class_names[label]} at S = {s:g}"


def _bar(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="call", file=sys.stderr)

    def progress(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, progress


def _meta(run, handle, steps: int, args, guide: dict) -> dict:
    meta = {"run": str(run.root), "step": run.step, "schedule": handle.schedule.name,
            "timesteps": handle.schedule.timesteps, "sampler": "ddim", "sampler_steps": steps, "eta": 0.0,
            "spacing": "trailing", "objective": handle.objective, "weights": "raw" if args.raw else "ema"}
    if guide:
        meta.update({"class": handle.class_names[guide["label"]], "guidance_scale": guide["guidance_scale"]})
    return meta


def invert(args) -> int:
    from diffview.core.analysis.inversion import reconstruct, rms_grey_levels
    from diffview.core.io.export import save_grid, to_uint8

    run, handle, steps = _open(args)
    guide, describe = _condition(handle, args.label, args.guidance_scale, 1.0)
    x0 = load_image(args.image, handle)
    model = handle.model.to(args.device)
    bar, progress = _bar(2 * steps)
    with bar:
        x_T, back = reconstruct(model, x0.to(args.device), handle.schedule, steps, handle.objective,
                                progress=progress, **guide)
    rms = rms_grey_levels(back.cpu(), x0)
    meta = {**_meta(run, handle, steps, args, guide), "image": str(args.image), "rms_grey_levels": round(rms, 4)}
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}-recon-ddim{steps}.png")
    save_grid(to_uint8(back), out, nrow=1, padding=0, metadata=meta)
    print(f"Wrote the reconstruction to {out} ({steps} DDIM steps up, {steps} down{describe})", file=sys.stderr)
    if args.xt:
        save_grid(to_uint8(x_T), args.xt, nrow=1, padding=0, metadata={**meta, "shows": "x_T clipped to [-1, 1]"})
        print(f"Wrote x_T (clipped to [−1, 1] to show it, as the app shows x_t) to {args.xt}", file=sys.stderr)
    print(f"RMS error {rms:.3f} grey levels (0–255 scale)")
    return 0


def interpolate(args) -> int:
    from diffview.core.analysis.inversion import interpolate as morph
    from diffview.core.io.export import make_grid, save_gif, save_grid, to_uint8
    from diffview.core.sampling import noise_from_seed

    seeds, images = args.seed or [], [p for p in (args.a, args.b) if p is not None]
    if seeds and images:
        raise ValueError("give two images A B or two seeds (--seed A --seed B), not both")
    if len(seeds) != 2 and len(images) != 2:
        raise ValueError("give two images A B, or two seeds: --seed A --seed B")
    if not 2 <= args.frames <= 64:
        raise ValueError(f"--frames must lie in 2..64, got {args.frames}")
    run, handle, steps = _open(args)
    default_s = run.config.guidance_scale if (seeds and run.config is not None) else 1.0
    guide, describe = _condition(handle, args.label, args.guidance_scale, default_s)
    if images:
        a, b = (load_image(p, handle) for p in images)
        ends, clip = "the images " + " and ".join(images), False  # the ends reconstruct their images
    else:
        a, b = (noise_from_seed(handle.sample_shape(1), s)[0] for s in seeds)
        ends, clip = f"seeds {seeds[0]} and {seeds[1]}", handle.clip_x0  # the ends are those seeds' DDIM samples
    model = handle.model.to(args.device)
    bar, progress = _bar(steps * (2 if images else 1))
    with bar:
        res = morph(model, a.to(args.device), b.to(args.device), args.frames, handle.schedule,
                    objective=handle.objective, steps=steps, invert=bool(images), clip_x0=clip, progress=progress,
                    **guide)
    frames = to_uint8(res.frames)
    meta = {**_meta(run, handle, steps, args, guide), "ends": ends, "frames": args.frames, "path": "slerp of x_T"}
    scale = args.scale or max(1, 128 // handle.shape.size)
    out = Path(args.out) if args.out else (None if args.gif else Path(f"interpolate-ddim{steps}.png"))
    if out is not None:
        save_grid(frames, out, nrow=len(frames), scale=scale, metadata=meta)
        print(f"Wrote the strip of {len(frames)} frames to {out}", file=sys.stderr)
    if args.gif:
        grids = [make_grid(f[None], nrow=1, padding=0) for f in frames]
        save_gif(grids + grids[-2:0:-1], args.gif, duration_ms=120, hold_last_ms=120, scale=scale)  # there and back
        print(f"Wrote the morph ({len(frames)} frames, there and back) to {args.gif}", file=sys.stderr)
    print(f"Interpolated {ends} in {len(frames)} frames ({steps} DDIM steps{describe})", file=sys.stderr)
    return 0
