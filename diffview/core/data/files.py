"""Reading one image file, whatever its format, mode or damage, as a square uint8 crop.

Every way a file can fail becomes a ``SkipFile`` with a short human reason, never an exception
that stops a load: zero bytes, not an image, truncated, a decompression bomb, an odd mode.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""File name endings (lower case) that :func:`load_image_folder` reads; others are ignored."""

# The Pillow formats a file with one of IMAGE_EXTENSIONS may hold (JPEG also opens MPO, DIB is a
# BMP variant). Restricting Image.open to these keeps a lenient plugin from claiming a non-image file.
_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")


class SkipFile(Exception):
    """A file that cannot be used; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_image(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """Decode one file to a uint8 crop: [S, S] if it is grayscale, else [S, S, 3].

    The first frame of an animation is used, EXIF orientation is applied, alpha is
    composited onto white, 16-bit and palette images are converted, and the image is resized
    so its shorter side is ``image_size`` and centre-cropped square. RGB whose three channels
    are equal counts as grayscale. Raises ``SkipFile`` with a reason for a file it cannot use.
    """
    try:
        if os.path.getsize(path) == 0:
            raise SkipFile("empty file, 0 bytes")
        fp = open(path, "rb")
    except OSError as exc:
        raise SkipFile(f"cannot be read: {exc.strerror or exc}") from None
    with fp, warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that and raises above; both are skips.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp, formats=_open_formats()) as img:
                if img.format in ("JPEG", "MPO"):
                    img.draft(None, (2 * image_size, 2 * image_size))  # DCT-domain downscale: faster decode
                img.load()
                img = _upright(img)
                img = _to_l_or_rgb(img)
                side = min(img.size)
                box = ((img.width - side) / 2, (img.height - side) / 2, (img.width + side) / 2, (img.height + side) / 2)
                img = img.resize((image_size, image_size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
                arr = np.asarray(img, dtype=np.uint8)
        except SkipFile:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise SkipFile("too many pixels to decode safely (Pillow's decompression-bomb limit)") from None
        except UnidentifiedImageError:
            raise SkipFile("not an image, or a format Pillow cannot read") from None
        except MemoryError:
            raise SkipFile("too large to decode in the memory available") from None
        except Exception as exc:  # Pillow's plugins raise OSError, SyntaxError, ValueError, struct.error, …
            raise SkipFile(f"truncated or corrupt file: {_first_line(exc)}") from None
    if arr.ndim == 3 and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        arr = np.ascontiguousarray(arr[..., 0])
    return arr


@lru_cache(maxsize=1)
def _open_formats() -> tuple[str, ...]:
    """_FORMATS that this Pillow can open (a build may lack WebP, say)."""
    Image.init()
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block is ignored rather than fatal."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:
        pass
    return img


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to "L" or "RGB"; transparency is composited onto white."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(img), mode))  # a 2-D uint8 array is mode "L"
    try:
        if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            white.alpha_composite(rgba)
            return white.convert("RGB")
        return img.convert("RGB")  # P, CMYK, YCbCr, RGBX, …
    except (ValueError, OSError):
        raise SkipFile(f"unsupported colour mode {mode}") from None


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels scaled to uint8."""
    if mode.startswith("I;16"):
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    a = np.nan_to_num(a.astype(np.float64))
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        pass
    elif lo >= 0.0 and hi <= 65535.0:
        a = a * (255.0 / 65535.0)
    else:
        a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """A decoded crop ([S, S] or [S, S, 3]) as uint8 [C, S, S].

    Colour to gray uses Pillow's ITU-R 601 luma (L = R·299/1000 + G·587/1000 + B·114/1000).
    """
    if channels == 1:
        if arr.ndim == 3:
            r, g, b = (arr[..., k].astype(np.uint32) for k in range(3))
            arr = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
        return arr[None]
    if arr.ndim == 2:
        return np.broadcast_to(arr, (3, *arr.shape))
    return arr.transpose(2, 0, 1)


def find_image_files(root: str | os.PathLike) -> list[Path]:
    """Every file under ``root`` (recursively) whose name ends in one of IMAGE_EXTENSIONS.

    Symlinked folders are followed, but a folder whose real path was already visited is not
    entered again, so a symlink loop terminates. The list is sorted by relative path.
    """
    root = Path(root)
    seen = {os.path.realpath(root)}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real not in seen:
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        found.extend(Path(dirpath, f) for f in filenames if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 80 else line[:77] + "…"
