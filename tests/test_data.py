import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from diffview.core.data.files import IMAGE_EXTENSIONS
from diffview.core.data.images import DataError, DatasetReport, ImageDataset, StreamingImageDataset, load_image_folder
from diffview.core.data.source import load_source

RNG = np.random.default_rng(0)


def _noise(w, h, channels=3):
    shape = (h, w, channels) if channels == 3 else (h, w)
    return Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8))


def _solid(w, h, colour, mode="RGB"):
    return Image.new(mode, (w, h), colour)


def _truncated(path, img, fmt):
    img.save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _one(tmp_path, name, save, image_size=8, **kwargs):
    """Load a folder holding the single file ``name`` written by ``save(path)``: (uint8 [C, S, S], report)."""
    folder = tmp_path / f"only_{name}"
    folder.mkdir()
    save(folder / name)
    ds, report = load_image_folder(folder, image_size=image_size, **kwargs)
    assert report.used == 1 and not report.skipped, report.summary()
    return ds.images[0], report


def _reasons(report):
    return {os.path.basename(path): why for path, why in report.skipped}


# ---------------------------------------------------------------------------------------------
# A folder with every kind of file


def test_bad_files_are_skipped_with_reasons_and_odd_modes_converted(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 40×40 image warns, a 50×50 one errors
    root = tmp_path / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    good = {
        "good.png": lambda p: _noise(12, 12).save(p),
        "cmyk.jpg": lambda p: _solid(12, 12, (0, 255, 255, 0), "CMYK").save(p, "JPEG"),
        "sixteen.png": lambda p: Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(p),
        "palette.png": lambda p: _palette_with_transparency().save(p, transparency=0),
        "rgba.png": lambda p: _solid(12, 12, (255, 0, 0, 128), "RGBA").save(p),
        "la.png": lambda p: _solid(12, 12, (90, 200), "LA").save(p),
        "anim.gif": lambda p: _two_frame_gif(p),
        "photo.webp": lambda p: _noise(12, 12).save(p, "WEBP"),
        "scan.tiff": lambda p: _noise(12, 12).save(p, "TIFF"),
        "old.BMP": lambda p: _noise(12, 12).save(p, "BMP"),
        "ziffer_é_数字.png": lambda p: _noise(12, 12, 1).save(p),
        "sub/deeper/nested.jpeg": lambda p: _noise(12, 12).save(p, "JPEG"),
        "mode1.png": lambda p: _solid(12, 12, 1, "1").save(p),
    }
    for name, save in good.items():
        save(root / name)
    (root / "zero.png").write_bytes(b"")
    (root / "text.jpg").write_text("this is not an image\n")
    _truncated(root / "cut.png", _noise(24, 24), "PNG")
    _truncated(root / "cut.jpg", _noise(24, 24), "JPEG")
    _noise(40, 40).save(root / "bomb_warn.png")
    _noise(50, 50).save(root / "bomb_error.png")
    (root / "notes.txt").write_text("ignored: not an image extension")
    (root / "README").write_text("ignored too")
    os.symlink(root, root / "sub" / "loop")  # a symlink loop must terminate

    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds, report = load_image_folder(root, image_size=8)

    assert report.used == len(good) == len(ds)
    reasons = _reasons(report)
    assert set(reasons) == {"zero.png", "text.jpg", "cut.png", "cut.jpg", "bomb_warn.png", "bomb_error.png"}
    assert "empty" in reasons["zero.png"] and "0 bytes" in reasons["zero.png"]
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["cut.png"] and "truncated" in reasons["cut.jpg"]
    assert "decompression-bomb" in reasons["bomb_warn.png"]
    assert "decompression-bomb" in reasons["bomb_error.png"]
    # Nothing global was changed, and the bomb warning did not escape.
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == 1000
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert tuple(ds.images.shape) == (len(good), 3, 8, 8)
    assert report.channels == 3 and report.image_size == 8
    text = report.summary()
    assert f"Used {len(good)} images from {root}" in text and "skipped 6:" in text
    assert "zero.png (empty file, 0 bytes)" in text and "Only 13 images" in text


def _palette_with_transparency():
    img = Image.new("P", (12, 12), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    img.paste(1, (0, 0, 6, 12))  # left half red (index 1), right half index 0: transparent
    return img


def _two_frame_gif(path):
    first = _solid(12, 12, (200, 30, 30))
    second = _solid(12, 12, (30, 200, 30))
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)


def test_symlinked_folder_is_followed_once(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    _noise(8, 8).save(other / "far.png")
    root = tmp_path / "data"
    root.mkdir()
    _noise(8, 8).save(root / "near.png")
    os.symlink(other, root / "link_a")
    os.symlink(other, root / "link_b")  # the same real folder again: not read twice
    os.symlink(root, root / "loop")
    ds, report = load_image_folder(root, image_size=4)
    assert report.used == 2 and len(ds) == 2


def test_image_extensions_are_case_insensitive_and_complete():
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


# ---------------------------------------------------------------------------------------------
# What each odd format turns into


def test_gif_uses_the_first_frame(tmp_path):
    img, report = _one(tmp_path, "anim.gif", _two_frame_gif)
    assert report.channels == 3
    assert img[:, 2:-2, 2:-2].reshape(3, -1).float().mean(1).round().tolist() == [200, 30, 30]


def test_exif_orientation_is_applied(tmp_path):
    # 16 wide × 8 tall, left half white. Orientation 6 means "rotate 90° clockwise to display",
    # which puts the left half on top: the centre crop is then white above, black below.
    def save(path):
        img = Image.new("L", (16, 8), 0)
        img.paste(255, (0, 0, 8, 8))
        exif = Image.Exif()
        exif[0x0112] = 6
        img.save(path, "JPEG", quality=95, exif=exif)

    img, _ = _one(tmp_path, "rotated.jpg", save)
    top, bottom = img[0, :3].float().mean(), img[0, -3:].float().mean()
    left, right = img[0, 3:5, :3].float().mean(), img[0, 3:5, -3:].float().mean()
    assert top > 200 and bottom < 55  # rotated: stripes are horizontal
    assert abs(left - right) < 60  # (unrotated, the left would be white and the right black)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    img, report = _one(tmp_path, "cmyk.jpg", lambda p: _solid(12, 12, (0, 255, 255, 0), "CMYK").save(p, "JPEG"))
    r, g, b = img.reshape(3, -1).float().mean(1).tolist()
    assert report.channels == 3 and r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    def save(path):
        a = np.full((8, 8), 65535, np.uint16)
        a[:, 4:] = 32896  # 128 × 257
        Image.fromarray(a).save(path)

    img, report = _one(tmp_path, "deep.png", save)
    assert report.channels == 1
    assert (img[0, :, :3] == 255).all() and (img[0, :, 5:] == 128).all()


def test_transparency_is_composited_onto_white(tmp_path):
    img, report = _one(
        tmp_path, "pal.png", lambda p: _palette_with_transparency().save(p, transparency=0), image_size=12
    )
    assert report.channels == 3
    assert img[:, :, :5].reshape(3, -1).float().mean(1).round().tolist() == [255, 0, 0]
    assert (img[:, :, 7:] == 255).all()

    def rgba(path):
        a = np.zeros((12, 12, 4), np.uint8)
        a[:, :6] = (0, 0, 255, 255)  # opaque blue, then fully transparent black
        Image.fromarray(a).save(path)

    img, _ = _one(tmp_path, "rgba.png", rgba, image_size=12)
    assert (img[:, :, :5] == torch.tensor([0, 0, 255], dtype=torch.uint8).view(3, 1, 1)).all()
    assert (img[:, :, 7:] == 255).all()


def test_la_stays_gray_and_mode_1_converts(tmp_path):
    img, report = _one(tmp_path, "la.png", lambda p: _solid(8, 8, (90, 255), "LA").save(p))
    assert report.channels == 1 and (img == 90).all()
    img, report = _one(tmp_path, "half.png", lambda p: _solid(8, 8, (90, 0), "LA").save(p))
    assert (img == 255).all()  # transparent → white
    img, report = _one(tmp_path, "bits.png", lambda p: _solid(8, 8, 1, "1").save(p))
    assert report.channels == 1 and (img == 255).all()


# ---------------------------------------------------------------------------------------------
# Whole-folder failures


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as info:
        load_image_folder(missing)
    assert str(missing) in str(info.value)


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "image.png"
    _noise(8, 8).save(f)
    with pytest.raises(DataError, match="not a folder") as info:
        load_image_folder(f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("other_files", [False, True])
def test_folder_without_images(tmp_path, other_files):
    empty = tmp_path / "empty"
    empty.mkdir()
    if other_files:
        (empty / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no image files") as info:
        load_image_folder(empty)
    assert str(empty) in str(info.value)


def test_folder_with_only_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_text("nope")
    with pytest.raises(DataError) as info:
        load_image_folder(bad)
    message = str(info.value)
    assert str(bad) in message and "all 2 were skipped" in message and "a.png: empty file" in message
    (bad / "b.jpg").unlink()
    with pytest.raises(DataError, match="The one image file in .* could not be used") as info:
        load_image_folder(bad)
    assert str(bad) in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(".", channels=2)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(".", image_size=0)


# ---------------------------------------------------------------------------------------------
# Channels, geometry, scaling


def _folder(tmp_path, images, name="imgs"):
    folder = tmp_path / name
    folder.mkdir()
    for i, img in enumerate(images):
        img.save(folder / f"{i:02d}.png")
    return folder


def test_auto_channels(tmp_path):
    gray = [_noise(8, 8, 1), _noise(8, 8, 1)]
    assert load_image_folder(_folder(tmp_path, gray, "g"), image_size=8)[1].channels == 1
    rgb_but_gray = [_noise(8, 8, 1).convert("RGB"), _noise(8, 8, 1)]
    ds, report = load_image_folder(_folder(tmp_path, rgb_but_gray, "rg"), image_size=8)
    assert report.channels == 1 and ds.channels == 1
    mixed = gray + [_noise(8, 8)]
    ds, report = load_image_folder(_folder(tmp_path, mixed, "m"), image_size=8)
    assert report.channels == 3 and ds.channels == 3
    # A gray image in an RGB dataset has three equal channels.
    assert (ds.images[0, 0] == ds.images[0, 1]).all() and (ds.images[0, 1] == ds.images[0, 2]).all()


def test_gray_jpeg_saved_as_rgb_counts_as_gray(tmp_path):
    folder = tmp_path / "j"
    folder.mkdir()
    _noise(16, 16, 1).convert("RGB").save(folder / "g.jpg", quality=90)
    assert load_image_folder(folder, image_size=8)[1].channels == 1


def test_forced_channels(tmp_path):
    folder = _folder(tmp_path, [_solid(8, 8, (255, 0, 0)), _solid(8, 8, 77, "L")])
    ds, report = load_image_folder(folder, image_size=8, channels=1)
    assert report.channels == 1 and ds.images.shape[1] == 1
    assert (ds.images[0] == 76).all()  # ITU-R 601 luma of pure red: 255 · 0.299 = 76.2
    assert (ds.images[1] == 77).all()
    ds, report = load_image_folder(folder, image_size=8, channels=3)
    assert report.channels == 3 and (ds.images[1] == 77).all()


def _stripes(w, h, horizontal=True):
    """Outer quarters 0 and 255, middle half 128 (along x if ``horizontal`` else along y)."""
    n = w if horizontal else h
    line = np.full(n, 128, np.uint8)
    line[: n // 4], line[n - n // 4 :] = 0, 255
    a = np.broadcast_to(line, (h, w)) if horizontal else np.broadcast_to(line[:, None], (h, w))
    return Image.fromarray(np.ascontiguousarray(a))


def test_resize_and_centre_crop(tmp_path):
    # Landscape 40×20 at size 20: no resampling, just the middle 20 columns.
    ds, _ = load_image_folder(_folder(tmp_path, [_stripes(40, 20)], "a"), image_size=20)
    assert tuple(ds.images.shape) == (1, 1, 20, 20) and (ds.images == 128).all()
    # Landscape 80×40 and portrait 40×80 at size 10: shorter side to 10, then the centre.
    for name, img in (("b", _stripes(80, 40)), ("c", _stripes(40, 80, horizontal=False))):
        ds, _ = load_image_folder(_folder(tmp_path, [img], name), image_size=10)
        assert tuple(ds.images.shape) == (1, 1, 10, 10)
        centre = ds.images[0, 0, 3:7, 3:7]
        assert (centre.int() - 128).abs().max() <= 1
        assert 60 < ds.images.float().mean() < 200  # the 0 and 255 stripes were cropped away


def test_pixel_scaling(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[:, 4:] = 255
    ds, _ = load_image_folder(_folder(tmp_path, [Image.fromarray(a)]), image_size=8)
    x = ds.get_batch(torch.tensor([0]))
    assert x.dtype == torch.float32 and x.shape == (1, 1, 8, 8)
    assert (x[0, 0, :, :4] == -1.0).all() and (x[0, 0, :, 4:] == 1.0).all()
    u = torch.tensor([0, 127, 255], dtype=torch.uint8)
    assert ImageDataset.to_float(u).tolist() == pytest.approx([-1.0, 127 / 127.5 - 1, 1.0])


def test_tiny_dataset_loads_and_warns(tmp_path):
    ds, report = load_image_folder(_folder(tmp_path, [_noise(8, 8)], "one"), image_size=8)
    assert len(ds) == 1 and report.used == 1
    assert any("Only 1 image:" in w and "memorise it" in w for w in report.warnings)
    _, report = load_image_folder(_folder(tmp_path, [_noise(8, 8)] * 2, "two"), image_size=8)
    assert any("Only 2 images:" in w and "memorise them" in w for w in report.warnings)


# ---------------------------------------------------------------------------------------------
# Batches: flips, reproducibility, streaming


def _asymmetric(tmp_path, n=6, name="asym"):
    images = []
    for i in range(n):
        a = np.zeros((8, 8, 3), np.uint8)
        a[:, :3] = (250, 10 * i, 0)  # bright on the left only
        images.append(Image.fromarray(a))
    return _folder(tmp_path, images, name)


def test_get_batch_flips_reproducibly(tmp_path):
    ds, _ = load_image_folder(_asymmetric(tmp_path), image_size=8, flip=True)
    idx = torch.arange(len(ds)).repeat(4)
    a = ds.get_batch(idx, torch.Generator().manual_seed(3))
    b = ds.get_batch(idx, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    plain = ds.to_float(ds.images[idx])
    flipped = (a == plain.flip(-1)).flatten(1).all(1)
    same = (a == plain).flatten(1).all(1)
    assert (flipped ^ same).all()  # each image is either mirrored or untouched
    assert 0 < flipped.sum() < len(idx)
    ds.flip = False
    assert torch.equal(ds.get_batch(idx, torch.Generator().manual_seed(3)), plain)


def test_sample_batch_is_reproducible_from_the_generator(tmp_path):
    ds, _ = load_image_folder(_asymmetric(tmp_path), image_size=8, flip=True)
    a = ds.sample_batch(16, torch.Generator().manual_seed(7))
    b = ds.sample_batch(16, torch.Generator().manual_seed(7))
    c = ds.sample_batch(16, torch.Generator().manual_seed(8))
    assert a.shape == (16, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(ds.preview(2), ds.images[:2]) and len(ds.preview(100)) == len(ds)


def test_streaming_dataset_matches_in_memory(tmp_path):
    folder = _asymmetric(tmp_path)
    (folder / "broken.png").write_bytes(b"")
    memory, _ = load_image_folder(folder, image_size=8, flip=True)
    stream, report = load_image_folder(folder, image_size=8, flip=True, max_memory_bytes=100)
    assert isinstance(memory, ImageDataset) and isinstance(stream, StreamingImageDataset)
    assert any("decoded from disk" in w for w in report.warnings)
    assert report.used == len(stream) == len(memory) and len(report.skipped) == 1
    assert (stream.channels, stream.image_size, stream.flip) == (memory.channels, memory.image_size, True)
    idx = torch.tensor([5, 0, 3, 3, 1])
    for seed in (0, 1):
        a = memory.get_batch(idx, torch.Generator().manual_seed(seed))
        b = stream.get_batch(idx, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)
    a = memory.sample_batch(8, torch.Generator().manual_seed(2))
    assert torch.equal(a, stream.sample_batch(8, torch.Generator().manual_seed(2)))
    assert torch.equal(memory.preview(3), stream.preview(3))
    loader = torch.utils.data.DataLoader(stream, batch_size=4)
    batch = next(iter(loader))
    assert batch.shape == (4, 3, 8, 8) and batch.dtype == torch.float32


def test_streaming_gray_dataset_matches(tmp_path):
    folder = _folder(tmp_path, [_noise(12, 10, 1), _noise(10, 12, 1).convert("RGB")], "g")
    memory, _ = load_image_folder(folder, image_size=8)
    stream, report = load_image_folder(folder, image_size=8, max_memory_bytes=1)
    assert isinstance(stream, StreamingImageDataset) and report.channels == stream.channels == 1
    assert torch.equal(memory.preview(2), stream.preview(2))
    assert torch.equal(stream[1], memory.get_batch([1])[0])


# ---------------------------------------------------------------------------------------------
# Report and dispatch


def test_summary_lists_at_most_ten_skipped():
    report = DatasetReport(
        source="/x",
        used=9812,
        skipped=[(f"/x/f{i}.png", "truncated or corrupt file") for i in range(13)],
        channels=1,
        image_size=28,
        warnings=[],
    )
    text = report.summary()
    assert text.startswith(
        "Used 9,812 images from /x (28×28, grayscale); skipped 13: f0.png (truncated or corrupt file), f1.png"
    )
    assert "f9.png" in text and "f10.png" not in text and "and 3 more" in text
    one = DatasetReport(source="builtin:digits", used=1, skipped=[], channels=3, image_size=32, warnings=["w"])
    assert one.summary() == "Used 1 image from builtin:digits (32×32, RGB).\nWarning: w"


def test_load_source_reads_a_folder(tmp_path):
    folder = _folder(tmp_path, [_noise(40, 40)], "mine")
    ds, report = load_source(str(folder))
    assert report.source == str(folder) and ds.image_size == 32 and ds.channels == 3
    ds, report = load_source(str(folder), image_size=16, channels=1, flip=True)
    assert ds.image_size == 16 and ds.channels == 1 and ds.flip
