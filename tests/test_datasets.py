from functools import lru_cache

import numpy as np
import pytest
import torch
from PIL import Image

from diffview.core.data import builtin, digits
from diffview.core.data.builtin import BUILTIN_DATASETS, cache_path, load_builtin
from diffview.core.data.digits import make_digits
from diffview.core.data.images import DataError, ImageDataset
from diffview.core.data.shapes import make_shapes
from diffview.core.data.source import load_source


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Built-ins cache under tmp_path, and are small (200 images) unless a test asks for n."""
    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(builtin, "BUILTIN_SIZE", 200)


@lru_cache(maxsize=None)
def _made(make, n=200, seed=0):
    """One generation shared by the tests that only read it (the CPU is shared: keep tests light)."""
    return make(n, seed=seed)


@pytest.mark.parametrize("make, shape, classes", [(make_digits, (1, 28, 28), 10), (make_shapes, (3, 32, 32), 3)])
def test_shapes_dtypes_balance_and_determinism(make, shape, classes):
    images, labels = _made(make)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (200, *shape) and images.is_contiguous()
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (200,)
    counts = torch.bincount(labels, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1
    again, labels_again = make(200, seed=0)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    other, _ = make(50, seed=1)
    assert not torch.equal(images[:50], other)


def test_digits_have_ink_like_mnist():
    images, labels = _made(make_digits)
    x = images.float()
    assert 20 < x.mean() < 60  # MNIST's mean is about 33
    per_image = (images > 128).flatten(1).sum(1)
    assert (per_image >= 20).all() and (per_image < 300).all()
    assert images.amax(dim=(1, 2, 3)).min() >= 200  # every stroke reaches near-white
    # Background black, digit roughly centred: the border is mostly empty.
    border = torch.cat([images[..., :2, :].flatten(1), images[..., -2:, :].flatten(1)], 1)
    assert border.float().mean() < 5
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = x[:, 0].sum((1, 2))
    cy, cx = (x[:, 0] * ys).sum((1, 2)) / mass, (x[:, 0] * xs).sum((1, 2)) / mass
    assert (cy - 13.5).abs().max() < 4 and (cx - 13.5).abs().max() < 4
    # Not typeset copies: two images of the same digit differ.
    sevens = images[labels == 7]
    assert not torch.equal(sevens[0], sevens[1])


def test_digits_bitmap_font_fallback():
    images, _ = digits._make_digits(30, seed=0, freetype=False)  # as on a Pillow without FreeType
    assert images.shape == (30, 1, 28, 28) and (images > 128).flatten(1).sum(1).min() >= 20


def test_shapes_are_antialiased_and_coloured():
    images, labels = _made(make_shapes)
    assert set(labels.tolist()) == {0, 1, 2}
    # Some pixel differs from the background in every image, and channels are not all equal.
    x = images.float()
    assert (x.flatten(2).std(2).sum(1) > 5).all()
    assert not torch.equal(images[:, 0], images[:, 1])


def test_load_builtin_caches_and_reads_back(tmp_path):
    ds, report = load_builtin("digits", n=50, seed=1)
    path = cache_path("digits", 50, 1)
    assert path.parent == tmp_path / "cache" and path.exists()
    assert not list(path.parent.glob("*.tmp"))
    assert isinstance(ds, ImageDataset) and len(ds) == 50 and ds.labels is not None
    assert report.source == "builtin:digits" and report.used == 50 and report.channels == 1 and report.image_size == 28
    again, _ = load_builtin("digits", n=50, seed=1)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels)
    # A cache file that is read, not regenerated: overwrite it with recognisable data.
    images = torch.full((50, 1, 28, 28), 7, dtype=torch.uint8)
    np.savez(path, images=images.numpy(), labels=np.zeros(50, np.int64))
    assert (load_builtin("digits", n=50, seed=1)[0].images == 7).all()


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_corrupt_cache_is_regenerated(damage):
    ds, _ = load_builtin("shapes", n=30)
    path = cache_path("shapes", 30, 0)
    if damage is None:
        path.write_bytes(path.read_bytes()[:100])  # truncated
    else:
        path.write_bytes(damage)
    again, _ = load_builtin("shapes", n=30)
    assert torch.equal(ds.images, again.images)
    assert torch.equal(again.images, load_builtin("shapes", n=30)[0].images)  # rewritten, readable


def test_unwritable_cache_still_returns_data(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    ds, report = load_builtin("digits", n=20, cache_dir=blocker / "sub")
    assert len(ds) == 20 and report.used == 20


def test_cache_directory_resolution(tmp_path, monkeypatch):
    assert builtin.cache_directory() == tmp_path / "cache"
    assert builtin.cache_directory(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("DIFFVIEW_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert builtin.cache_directory() == tmp_path / "xdg" / "diffview"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert builtin.cache_directory() == tmp_path / "home" / ".cache" / "diffview"


def test_unknown_builtin_lists_the_names():
    with pytest.raises(DataError) as info:
        load_builtin("cifar")
    assert "cifar" in str(info.value) and all(name in str(info.value) for name in BUILTIN_DATASETS)


def test_builtin_resize():
    ds, report = load_builtin("shapes", n=10, image_size=16)
    assert ds.images.shape == (10, 3, 16, 16) and ds.images.dtype == torch.uint8 and report.image_size == 16
    native, _ = load_builtin("shapes", n=10)
    assert abs(ds.images.float().mean() - native.images.float().mean()) < 3


def test_load_source_dispatches(tmp_path):
    ds, report = load_source("digits")
    assert report.source == "builtin:digits" and len(ds) == 200 and ds.image_size == 28 and ds.channels == 1
    ds, report = load_source("builtin:shapes", image_size=8, channels=1, flip=True)
    assert report.source == "builtin:shapes" and ds.images.shape == (200, 1, 8, 8) and ds.flip
    assert report.channels == 1
    with pytest.raises(DataError, match="digits, shapes"):
        load_source("builtin:nope")
    folder = tmp_path / "digits_folder"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 20, 30)).save(folder / "a.png")
    ds, report = load_source(str(folder))
    assert report.source == str(folder) and ds.images.shape == (1, 3, 32, 32)
