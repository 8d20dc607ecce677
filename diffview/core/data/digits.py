"""The built-in ``digits``: 28×28 grayscale handwritten-looking digits 0–9, white on black like MNIST:
glyphs of Pillow's built-in font under random affine jitter (rotation, scale, slant, shift), stroke
thickness and a smooth elastic distortion, all applied in batches with ``grid_sample``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_CHUNK = 1000  # images generated per batch (bounds memory)
_TPL = 112  # side of a glyph template; the 28×28 frame maps onto it (4 template pixels per pixel)
_BOX = 20 / 28  # MNIST fits each digit into a 20×20 box of the 28×28 frame
_STROKES = (0, 2, 4, 6)  # stroke widths of the templates (pixels, drawn at font size 160)
_REACH = 1.5  # sampling stops this far out in template units (1 = the template's edge) …
_GAP = 32  # … which the black gap between atlas tiles covers: (_REACH − 1)·_TPL/2 = 28 pixels, plus bilinear's 1
_BLUR = 3.0  # Gaussian blur of a template; a per-image threshold on it sets the stroke thickness
# The font's 4, 5, 6, 8 and 9 have narrow gaps that thick strokes close (a 6 turns into an 8), so
# their strokes stay thinner: the widest _STROKES index and the lowest threshold for each digit.
_MAX_STROKE = np.array([3, 3, 3, 3, 1, 1, 1, 3, 1, 1])
_MIN_THRESHOLD = np.array([0.38, 0.38, 0.38, 0.38, 0.42, 0.45, 0.45, 0.38, 0.42, 0.45])





def make_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` handwritten-looking digits: (uint8 images [n, 1, 28, 28], int64 labels [n]).

    White strokes on black, roughly centred and filling about 20×20 of the frame like MNIST.
    Labels are balanced (each digit ⌊n/10⌋ or ⌈n/10⌉ times) in a shuffled order.
    """
    return _make_digits(n, seed)


def _make_digits(n: int, seed: int, freetype: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_digits`; ``freetype=False`` draws with the bitmap-font fallback."""
    rng = np.random.default_rng([seed, 28])
    labels = rng.permutation(np.arange(n) % 10)
    atlas = _digit_atlas(freetype)
    # Which template draws each image: its digit at one of the stroke widths; a 1 is sometimes a plain bar.
    width = np.minimum(rng.choice(len(_STROKES), size=n, p=[0.2, 0.35, 0.3, 0.15]), _MAX_STROKE[labels])
    bar = rng.random(n) < 0.35
    tpl = atlas.lookup[labels, width, bar.astype(np.int64)]
    params = _digit_params(rng, n)
    lo = _MIN_THRESHOLD[labels]
    params["threshold"] = lo + params["threshold"] * (0.62 - lo)
    images = torch.empty((n, 1, 28, 28), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(n, start + _CHUNK))
        images[sl] = _render_digits(atlas, tpl[sl], {k: v[sl] for k, v in params.items()})
    return images, torch.from_numpy(labels.astype(np.int64))


def _digit_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-image random jitter: affine, thickness threshold, elastic field, ink intensity."""
    return {
        "angle": np.deg2rad(np.clip(rng.normal(0.0, 6.0, n), -12.0, 12.0)),
        "slant": np.clip(rng.normal(0.12, 0.14, n), -0.25, 0.45),  # shear: handwriting leans right
        "scale": rng.uniform(0.86, 1.04, n),
        "aspect": np.exp(np.clip(rng.normal(0.0, 0.1, n), -0.25, 0.25)),  # width/height
        "shift": rng.normal(0.0, 0.05, (n, 2)).clip(-0.12, 0.12),  # normalised units (0.07 ≈ 1 pixel)
        "threshold": rng.random(n),  # rescaled per digit to [_MIN_THRESHOLD, 0.62]
        "elastic": rng.uniform(0.04, 0.10, n),
        "coarse": rng.normal(0.0, 1.0, (n, 2, 4, 4)),
        "fine": rng.normal(0.0, 1.0, (n, 2, 7, 7)),
        "ink": rng.uniform(0.92, 1.0, n),
    }


def _render_digits(atlas: _Atlas, tpl: np.ndarray, p: dict[str, np.ndarray]) -> torch.Tensor:
    """Warp each image's template into a 28×28 frame (sampled at 56×56, then 2×2 averaged)."""
    b, out = len(tpl), 56
    f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    cos, sin = f32(np.cos(p["angle"])), f32(np.sin(p["angle"]))
    sy = f32(p["scale"])
    sx = sy * f32(p["aspect"])
    k = f32(p["slant"])
    # Forward map template→frame: A = R · Sh · S (scale, then slant x −= k·y, then rotate).
    # Sampling needs the inverse, frame→template: A⁻¹ = S⁻¹ · Sh⁻¹ · R⁻¹ with
    # R⁻¹ = [[c, s], [−s, c]], Sh⁻¹ = [[1, k], [0, 1]], S⁻¹ = diag(1/sx, 1/sy).
    a00, a01 = (cos - k * sin) / sx, (sin + k * cos) / sx
    a10, a11 = -sin / sy, cos / sy
    idx = torch.as_tensor(tpl, dtype=torch.long)
    shift = f32(p["shift"])
    centre = atlas.centres[idx]  # the template point the frame centre samples (before the shift)
    t0 = centre[:, 0] - a00 * shift[:, 0] - a01 * shift[:, 1]
    t1 = centre[:, 1] - a10 * shift[:, 0] - a11 * shift[:, 1]
    # Elastic distortion: smooth random displacement fields, coarse noise upsampled bicubically
    # (separable, so as two small matrix products U · noise · Uᵀ).
    field = _upsample(f32(p["coarse"]), out) + 0.25 * _upsample(f32(p["fine"]), out)
    field = field * f32(p["elastic"]).view(-1, 1, 1, 1)
    # Template coordinates u (normalised, align_corners=False) of each output pixel centre; the
    # template is black beyond |u| = 1, so u is clamped to ±_REACH (inside the atlas's black gap)
    # and then mapped to the same point of the atlas: u · T/W + the tile's offset.
    v = (torch.arange(out, dtype=torch.float32) + 0.5) / out * 2 - 1
    col, row = v.view(1, 1, out), v.view(1, out, 1)
    e = lambda t: t.view(-1, 1, 1)  # noqa: E731
    ux = (e(a00) * col + e(a01) * row + e(t0) + field[:, 0]).clamp_(-_REACH, _REACH)
    uy = (e(a10) * col + e(a11) * row + e(t1) + field[:, 1]).clamp_(-_REACH, _REACH)
    gx = ux * atlas.scale[0] + e(atlas.offsets[idx, 0])
    gy = uy * atlas.scale[1] + e(atlas.offsets[idx, 1])
    grid = torch.stack([gx, gy], dim=-1)
    source = atlas.image.expand(b, -1, -1, -1)  # one shared image, not b copies
    sampled = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # A soft threshold on the blurred template: a low threshold gives a thick stroke, a high one thin.
    th = f32(p["threshold"]).view(-1, 1, 1, 1)
    ink = ((sampled - th) / 0.18 + 0.5).clamp_(0.0, 1.0)
    ink = F.avg_pool2d(ink, 2) * f32(p["ink"]).view(-1, 1, 1, 1)
    return (ink * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def _upsample(noise: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, k, k] → [B, C, size, size] by bicubic interpolation (corners aligned)."""
    u = _bicubic_matrix(noise.shape[-1], size)
    return u @ noise @ u.T


@lru_cache(maxsize=8)
def _bicubic_matrix(k: int, size: int) -> torch.Tensor:
    """The [size, k] matrix of 1-D bicubic interpolation from k to ``size`` samples (corners aligned)."""
    basis = torch.eye(k).view(k, 1, k, 1)  # k unit impulses along one axis
    return F.interpolate(basis, size=(size, 1), mode="bicubic", align_corners=True)[:, 0, :, 0].T.contiguous()


@dataclass(frozen=True)
class _Atlas:
    """All glyph templates in one image, so a batch samples them without copying a template per image."""

    image: torch.Tensor  # [1, 1, H, W]
    centres: torch.Tensor  # [K, 2] each glyph's centre of mass, in its template's normalised coordinates
    offsets: torch.Tensor  # [K, 2] where template coordinate 0 lands in the atlas's normalised coordinates
    scale: tuple[float, float]  # template → atlas normalised-coordinate scale (x, y)
    lookup: np.ndarray  # [10, len(_STROKES), 2] template index of (digit, stroke-width index, plain bar)


@lru_cache(maxsize=2)
def _digit_atlas(freetype: bool = True) -> _Atlas:
    """The templates of :func:`_digit_templates` tiled into one image with _GAP black pixels between
    tiles, more than sampling reaches outside its own tile (see _REACH), so no glyph bleeds into another."""
    templates, centres, lookup = _digit_templates(freetype)
    k = len(templates)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    step = _TPL + _GAP
    height, width = _GAP + rows * step, _GAP + cols * step
    image = torch.zeros(1, 1, height, width)
    offsets = torch.zeros(k, 2)
    for i in range(k):
        r, c = divmod(i, cols)
        y0, x0 = _GAP + r * step, _GAP + c * step
        image[0, 0, y0 : y0 + _TPL, x0 : x0 + _TPL] = templates[i, 0]
        # template pixel p ↦ atlas pixel p + x0; in normalised units u ↦ u·T/W + (T + 2·x0)/W − 1
        offsets[i] = torch.tensor([(_TPL + 2 * x0) / width - 1, (_TPL + 2 * y0) / height - 1])
    return _Atlas(image, centres, offsets, (_TPL / width, _TPL / height), lookup)


@lru_cache(maxsize=2)
def _digit_templates(freetype: bool = True) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Blurred glyph templates [K, 1, _TPL, _TPL] in [0, 1], each glyph's centre of mass (normalised
    coordinates [K, 2]), and a lookup [10, len(_STROKES), 2] of the template index for (digit,
    stroke-width index, plain bar): the bar ("I") replaces the font's 1, other digits ignore it.

    The glyph's larger side spans _BOX of the template and its centre of mass sits at the
    centre, so the identity warp gives an MNIST-like placement. ``freetype=False`` forces the
    fallback for a Pillow without FreeType (the 11-pixel bitmap font, enlarged and dilated).
    """
    font = _font(160) if freetype else None
    tiles, centres = [], []
    lookup = np.zeros((10, len(_STROKES), 2), dtype=np.int64)
    for d in range(10):
        for w, stroke in enumerate(_STROKES):
            for bar in (0, 1) if d == 1 else (0,):
                tile, centre = _place(_glyph("I" if bar else str(d), font, stroke))
                lookup[d, w, bar:] = len(tiles)
                tiles.append(tile)
                centres.append(centre)
    return torch.from_numpy(np.stack(tiles)[:, None]), torch.from_numpy(np.stack(centres)), lookup


def _font(size: int) -> ImageFont.FreeTypeFont | None:
    """Pillow's built-in scalable font (Pillow ≥ 10.1 with FreeType), or None."""
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return None
    return font if isinstance(font, ImageFont.FreeTypeFont) else None


def _glyph(text: str, font: ImageFont.FreeTypeFont | None, stroke: int) -> Image.Image:
    """A white-on-black "L" image of ``text``, cropped to its ink."""
    if font is not None:
        img = Image.new("L", (320, 320), 0)
        ImageDraw.Draw(img).text((60, 40), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    else:  # bitmap font: draw small, enlarge smoothly, then thicken by dilation
        small = Image.new("L", (24, 24), 0)
        ImageDraw.Draw(small).text((6, 4), text, font=ImageFont.load_default(), fill=255)
        small = small.crop(small.getbbox())
        img = small.resize((small.width * 14, small.height * 14), Image.Resampling.BILINEAR)
        img = img.filter(ImageFilter.GaussianBlur(4)).point(lambda v: 255 if v > 110 else 0)
        img = img.filter(ImageFilter.MaxFilter(2 * (stroke // 2) + 1)) if stroke else img
    return img.crop(img.getbbox())


def _place(glyph: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``glyph`` into the MNIST box of a template, blur it; return it and its centre of mass."""
    box = _BOX * _TPL
    scale = box / max(glyph.size)
    w, h = max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))
    small = glyph.resize((w, h), Image.Resampling.LANCZOS)
    tile = Image.new("L", (_TPL, _TPL), 0)
    tile.paste(small, ((_TPL - w) // 2, (_TPL - h) // 2))
    tile = tile.filter(ImageFilter.GaussianBlur(_BLUR))
    arr = np.asarray(tile, dtype=np.float32) / 255.0
    ys, xs = np.mgrid[0:_TPL, 0:_TPL]
    mass = arr.sum()
    cx, cy = (xs * arr).sum() / mass, (ys * arr).sum() / mass
    # pixel centre → normalised coordinate (align_corners=False): (i + 0.5) / N · 2 − 1
    centre = np.array([(cx + 0.5) / _TPL * 2 - 1, (cy + 0.5) / _TPL * 2 - 1], dtype=np.float32)
    return arr, centre
