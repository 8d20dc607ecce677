"""Image datasets as uint8 tensors: in memory, or streamed from disk past a memory budget.

Pure numpy/torch/Pillow, no Qt. :func:`load_image_folder` decodes a folder once into a
uint8 tensor [N, C, S, S] (or, past a memory budget, a :class:`StreamingImageDataset` that
decodes on demand) and a :class:`DatasetReport` that says what was used and what was
skipped and why. A bad file is never fatal: it is skipped and named in the report.
A folder of class subfolders gives each image its subfolder's class (core/data/labels.py).
Training batches are float32 in [−1, 1] (x/127.5 − 1), optionally with random horizontal
flips drawn from a ``torch.Generator`` so that a run is reproducible."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from diffview.core.data.files import IMAGE_EXTENSIONS, SkipFile, decode_image, find_image_files, to_channels
from diffview.core.data.labels import (
    NO_CLASS,
    check_labels,
    classes_summary,
    count_labels,
    few_per_class_warning,
    folder_classes,
)

DEFAULT_IMAGE_SIZE = 32
DEFAULT_MAX_MEMORY_BYTES = 2 * 1024**3
SMALL_DATASET = 100  # fewer images than this earns a warning in the report
SUMMARY_MAX_SKIPPED = 10  # skipped files a summary names before "and N more"


class DataError(ValueError):
    """A dataset cannot be loaded at all; the message is one sentence that names the path."""


@dataclass
class DatasetReport:
    """What a load used and skipped, for the user to read."""

    source: str  # the folder path, or "builtin:<name>"
    used: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file path, human reason)
    channels: int = 3
    image_size: int = DEFAULT_IMAGE_SIZE
    warnings: list[str] = field(default_factory=list)
    classes: list[tuple[str, int]] = field(default_factory=list)  # (class name, images); [] without classes

    def summary(self) -> str:
        """A few human lines: what was used, what was skipped and why, the classes, then any warnings."""
        kind = "grayscale" if self.channels == 1 else "RGB"
        head = (
            f"Used {_count(self.used, 'image')} from {self.source} "
            f"({self.image_size}×{self.image_size}, {kind})"
        )
        if self.skipped:
            names = [f"{_display_name(p, self.source)} ({why})" for p, why in self.skipped[:SUMMARY_MAX_SKIPPED]]
            more = len(self.skipped) - len(names)
            if more:
                names.append(f"and {more:,} more")
            head += f"; skipped {len(self.skipped):,}: " + ", ".join(names)
        lines = [head + "."]
        if self.classes:
            lines.append(classes_summary(self.classes, self.used, "image") + ".")
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class _BatchSource(Dataset):
    """What both image dataset classes share (the ImageData protocol, core/data/protocol.py): batches in
    [−1, 1] with reproducible random flips."""

    flip: bool
    labels: torch.Tensor | None
    class_names: tuple[str, ...]
    kind: Literal["images"] = "images"

    @property
    def channels(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """One image's shape: (C, S, S)."""
        return (self.channels, self.image_size, self.image_size)

    def sample_shape(self, n: int) -> tuple[int, ...]:
        return (n, *self.data_shape)

    def _uint8(self, indices: torch.Tensor) -> torch.Tensor:
        """The uint8 images [B, C, S, S] at ``indices`` (a LongTensor of shape [B])."""
        raise NotImplementedError

    def images_uint8(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The uint8 images [B, C, S, S] at ``indices``, unflipped; a streamed dataset decodes just these."""
        return self._uint8(torch.as_tensor(indices, dtype=torch.long).reshape(-1))

    @staticmethod
    def to_float(images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels to float32 in [−1, 1]: x/127.5 − 1 (0 → −1, 255 → 1)."""
        return images.to(torch.float32).div_(127.5).sub_(1.0)

    def get_batch(
        self, indices: torch.Tensor | Sequence[int], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The images at ``indices`` as float32 [B, C, S, S] in [−1, 1].

        With ``flip`` each image is mirrored left–right with probability ½, the coin drawn
        from ``generator`` (one ``torch.rand(B)`` call), so a seeded generator repeats a batch.
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        x = self._uint8(idx)
        if self.flip and len(idx):
            flips = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        return self.to_float(x)

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch_size`` images drawn uniformly with replacement (torch.randint on ``generator``)."""
        indices = torch.randint(len(self), (batch_size,), generator=generator)
        return self.get_batch(indices, generator)

    def __getitem__(self, index: int) -> torch.Tensor:
        """One image as float32 [C, S, S] in [−1, 1], for a DataLoader (flips use torch's global RNG)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} images")
        x = self._uint8(torch.tensor([index % len(self)]))
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return self.to_float(x)[0]

    def __len__(self) -> int:
        raise NotImplementedError


class ImageDataset(_BatchSource):
    """Images held in memory as one contiguous uint8 tensor [N, C, H, W], with optional class labels
    (core/data/labels.py: ``class_names`` None names label i "i")."""

    def __init__(self, images: torch.Tensor, flip: bool = False, labels: torch.Tensor | None = None,
                 class_names: Sequence[str] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W] with C = 1 or 3, got {images.dtype} {tuple(images.shape)}"
            )
        self.labels, self.class_names = check_labels(labels, class_names, len(images))
        self.images = images.contiguous()
        self.flip = bool(flip)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def _uint8(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices]

    def preview(self, n: int) -> torch.Tensor:
        """The first ``n`` images (fewer if the dataset is smaller) as uint8 [n, C, H, W]."""
        return self.images[: max(0, n)].clone()


class StreamingImageDataset(_BatchSource):
    """The same interface as :class:`ImageDataset`, decoding each image from its file on demand.

    :func:`load_image_folder` returns one when the decoded images would exceed its memory
    budget. ``files`` are the files that decoded cleanly when the folder was scanned; ``labels``
    (one per file) and ``class_names`` are their classes, as for :class:`ImageDataset`.
    """

    def __init__(self, files: Sequence[str | os.PathLike], channels: int, image_size: int, flip: bool = False,
                 labels: torch.Tensor | Sequence[int] | None = None, class_names: Sequence[str] | None = None):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.files = [str(f) for f in files]
        self.labels, self.class_names = check_labels(labels, class_names, len(self.files))
        self._channels = channels
        self._image_size = image_size
        self.flip = bool(flip)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def image_size(self) -> int:
        return self._image_size

    def decode(self, index: int) -> np.ndarray:
        """File ``index`` decoded, resized and cropped: uint8 [C, S, S] (numpy)."""
        path = self.files[index]
        try:
            arr = decode_image(path, self._image_size)
        except SkipFile as exc:
            raise DataError(
                f"The image {path} could no longer be read ({exc.reason}); load the folder again."
            ) from None
        return to_channels(arr, self._channels)

    def _uint8(self, indices: torch.Tensor) -> torch.Tensor:
        n, c, s = len(indices), self._channels, self._image_size
        out = np.empty((n, c, s, s), dtype=np.uint8)
        for row, i in enumerate(indices.tolist()):
            out[row] = self.decode(i)
        return torch.from_numpy(out)

    def preview(self, n: int) -> torch.Tensor:
        """The first ``n`` images (fewer if the dataset is smaller) as uint8 [n, C, H, W]."""
        return self._uint8(torch.arange(min(max(0, n), len(self))))


# ---------------------------------------------------------------------------------------------
# Finding and loading a folder


def load_image_folder(
    path: str | os.PathLike,
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: int | str = "auto",
    flip: bool = False,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> tuple[ImageDataset | StreamingImageDataset, DatasetReport]:
    """Load every usable image under ``path`` as a square dataset of side ``image_size``.

    ``channels`` is ``"auto"`` (1 when every usable image is grayscale, else 3), 1 or 3.
    Files that cannot be used are skipped and listed in the report; files with other
    endings are ignored. When first-level subfolders hold images, each names a class
    (core/data/labels.py: folder_classes) and an image directly in ``path`` has label −1;
    otherwise the dataset has no classes (labels None). Returns an in-memory :class:`ImageDataset`, or a
    :class:`StreamingImageDataset` when N·C·S·S bytes would exceed ``max_memory_bytes``.
    Raises :class:`DataError` when the path is missing, not a folder, holds no image
    files, or holds none that can be used.
    """
    image_size = _check_size(image_size)
    forced = check_channels(channels)
    shown = os.fspath(path)
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"The folder {shown} does not exist.")
    if not root.is_dir():
        raise DataError(f"{shown} is a file, not a folder: choose the folder that holds your images.")
    files = find_image_files(root)
    if not files:
        endings = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"The folder {shown} holds no image files ({endings}) in it or its subfolders.")

    file_labels, class_names = folder_classes(root, files)
    crops: list[np.ndarray] | None = []
    used: list[Path] = []
    labels: list[int] = []
    skipped: list[tuple[str, str]] = []
    all_gray = True
    per_channel = image_size * image_size
    for i, f in enumerate(files):
        try:
            arr = decode_image(f, image_size)
        except SkipFile as exc:
            skipped.append((str(f), exc.reason))
            continue
        used.append(f)
        if class_names:
            labels.append(file_labels[i])
        all_gray = all_gray and arr.ndim == 2
        if crops is not None:
            crops.append(arr)
            c = forced or (1 if all_gray else 3)
            if len(used) * c * per_channel > max_memory_bytes:
                crops = None  # over budget: keep only the file list and decode on demand later

    if not used:
        first, reason = skipped[0]
        name = _display_name(first, shown)
        if len(skipped) == 1:
            raise DataError(f"The one image file in {shown} could not be used: it was skipped ({name}: {reason}).")
        raise DataError(
            f"None of the {len(skipped):,} image files in {shown} could be used: "
            f"all {len(skipped):,} were skipped (the first, {name}: {reason})."
        )
    c = forced or (1 if all_gray else 3)
    label_tensor = torch.tensor(labels, dtype=torch.int64) if class_names else None
    report = DatasetReport(source=shown, used=len(used), skipped=skipped, channels=c, image_size=image_size)
    if len(used) < SMALL_DATASET:
        report.warnings.append(
            f"Only {_count(len(used), 'image')}: the model will memorise "
            f"{'it' if len(used) == 1 else 'them'} rather than learn a distribution."
        )
    _report_classes(report, label_tensor, class_names)
    if crops is None:
        need = len(used) * c * per_channel
        report.warnings.append(
            f"The decoded images need {_gib(need)}, more than the {_gib(max_memory_bytes)} allowed in memory, "
            "so they are decoded from disk as training reads them (slower)."
        )
        return StreamingImageDataset(used, c, image_size, flip, label_tensor, class_names), report
    images = np.empty((len(crops), c, image_size, image_size), dtype=np.uint8)
    for i, arr in enumerate(crops):
        images[i] = to_channels(arr, c)
    return ImageDataset(torch.from_numpy(images), flip, label_tensor, class_names), report


def _report_classes(report: DatasetReport, labels: torch.Tensor | None, class_names: tuple[str, ...]) -> None:
    """The folder's classes and their warnings: images in the root of a folder of classes, and small classes."""
    if labels is None:
        return
    report.classes = count_labels(labels, class_names)
    in_root = int((labels == NO_CLASS).sum())
    if in_root:
        one = in_root == 1
        report.warnings.append(
            f"{_count(in_root, 'image')} {'lies' if one else 'lie'} directly in the root of a folder of classes: "
            f"{'it has' if one else 'they have'} no class and {'is' if one else 'are'} skipped when training a "
            "conditional model."
        )
    report.warnings += filter(None, [few_per_class_warning(report.classes, "image")])


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, C, H, W] to ``channels`` (1: ITU-R 601 luma, 3: gray replicated)."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(1, 3, 1, 1)
    return ((images.to(torch.int32) * w).sum(1, keepdim=True).add_(0x8000) >> 16).to(torch.uint8)


def resize_images(images: torch.Tensor, image_size: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 [N, C, H, W] resized to [N, C, S, S] (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], image_size, image_size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float32)
        y = torch.nn.functional.interpolate(
            x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# Small helpers


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    return image_size


def check_channels(channels: int | str) -> int | None:
    """None for "auto", else the forced channel count 1 or 3."""
    if channels == "auto":
        return None
    if channels in (1, 3) and not isinstance(channels, bool):
        return int(channels)
    raise ValueError(f"channels must be 'auto', 1 or 3, got {channels!r}")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _display_name(path: str, source: str) -> str:
    """``path`` relative to the folder ``source`` when it lies inside it, else as given."""
    try:
        return Path(path).relative_to(source).as_posix()
    except ValueError:
        return path
