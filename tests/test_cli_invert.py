"""``diffview invert`` and ``diffview interpolate`` on a tiny trained run: what they write equals the core's
inversion, and bad input gets one clear line."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import write_image_folder
from PIL import Image

from diffview.cli import main
from diffview.cli.invert import load_image
from diffview.core.analysis.inversion import interpolate, reconstruct, rms_grey_levels
from diffview.core.io.export import make_grid, to_pil, to_uint8
from diffview.core.runs.open import open_run

STEPS = 5


def wake(run):
    """The run's checkpoint with its zero-initialised layers drawn at random (std 0.05): a 3-step model still
    predicts ε̂ ≈ 0, whose samples saturate whatever the sampler does; this one's outputs tell settings apart."""
    from diffview.core.io.checkpoint import load_checkpoint, save_checkpoint

    path = next((run / "checkpoints").glob("step_*.pt"))
    state = load_checkpoint(path)
    g = torch.Generator().manual_seed(0)
    for key in ("model", "ema"):
        for name, p in state[key].items():
            if p.is_floating_point() and not p.any():
                state[key][name] = 0.05 * torch.randn(p.shape, generator=g)
    save_checkpoint(state, path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    folder = write_image_folder(root / "imgs")
    run = root / "run"
    assert main(["train", str(folder), "--out", str(run), "--steps", "3", "--checkpoint-every", "3",
                 "--preview-every", "3", "--model", "tiny", "--image-size", "8", "--timesteps", "20",
                 "--batch-size", "4", "--threads", "1", "--objective", "eps"]) == 0
    wake(run)
    return run, folder


def test_invert_writes_the_reconstruction_and_prints_its_rms_in_grey_levels(run, tmp_path, capsys):
    run, folder = run
    image, out, xt = folder / "img_0.png", tmp_path / "recon.png", tmp_path / "xT.png"
    assert main(["invert", str(run), str(image), "--steps", str(STEPS), "--out", str(out), "--xt", str(xt)]) == 0
    printed = capsys.readouterr().out
    handle = open_run(run).handle
    x0 = load_image(str(image), handle)
    x_T, back = reconstruct(handle.model, x0, handle.schedule, STEPS, handle.objective)
    rms = rms_grey_levels(back, x0)
    assert printed == f"RMS error {rms:.3f} grey levels (0–255 scale)\n"
    written = Image.open(out)
    np.testing.assert_array_equal(np.asarray(written), to_uint8(back)[0, 0])
    assert written.text["sampler_steps"] == str(STEPS) and float(written.text["rms_grey_levels"]) == round(rms, 4)
    np.testing.assert_array_equal(np.asarray(Image.open(xt)), to_uint8(x_T)[0, 0])


def test_an_image_of_another_size_and_colour_is_made_the_models_as_training_images_are(run, tmp_path, capsys):
    run, _ = run
    path = tmp_path / "wide.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), mode="RGB").save(path)
    assert main(["invert", str(run), str(path), "--steps", "2", "--out", str(tmp_path / "r.png")]) == 0
    err = capsys.readouterr().err
    assert "from 20×12 to 8×8" in err and "converted to grey" in err
    assert Image.open(tmp_path / "r.png").size == (8, 8) and Image.open(tmp_path / "r.png").mode == "L"


def test_interpolate_between_images_writes_the_strip_and_a_gif_there_and_back(run, tmp_path):
    run, folder = run
    a, b = folder / "img_1.png", folder / "img_2.png"
    strip, gif = tmp_path / "strip.png", tmp_path / "morph.gif"
    assert main(["interpolate", str(run), str(a), str(b), "--frames", "12", "--steps", str(STEPS),
                 "--out", str(strip), "--gif", str(gif)]) == 0
    handle = open_run(run).handle
    res = interpolate(handle.model, load_image(str(a), handle), load_image(str(b), handle), 12, handle.schedule,
                      objective=handle.objective, steps=STEPS, invert=True)
    want = np.asarray(to_pil(make_grid(to_uint8(res.frames), nrow=12), 16))
    np.testing.assert_array_equal(np.asarray(Image.open(strip)), want)
    assert Image.open(strip).text["frames"] == "12"
    anim = Image.open(gif)
    assert anim.n_frames == 22 and anim.size == (128, 128)  # 12 there, 10 back; 8 px enlarged to 128


def test_interpolate_decodes_seeds_clipped_as_sampling_does_and_inverted_images_unclipped(run, monkeypatch,
                                                                                          tmp_path):
    import diffview.core.analysis.inversion as inversion

    run, folder = run
    monkeypatch.chdir(tmp_path)  # the default strip is written here
    seen, real = [], inversion.interpolate
    monkeypatch.setattr(inversion, "interpolate", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
    assert main(["interpolate", str(run), "--seed", "3", "--seed", "4", "--frames", "2", "--steps", "2"]) == 0
    assert main(["interpolate", str(run), str(folder / "img_0.png"), str(folder / "img_1.png"), "--frames", "2",
                 "--steps", "2"]) == 0
    assert [(kw["clip_x0"], kw["invert"]) for kw in seen] == [(True, False), (False, True)]
    assert (tmp_path / "interpolate-ddim2.png").is_file()


def test_interpolate_between_seeds_ends_on_the_samples_of_those_seeds(run, tmp_path):
    run, _ = run
    strip = tmp_path / "seeds.png"
    assert main(["interpolate", str(run), "--seed", "3", "--seed", "4", "--frames", "8", "--steps", str(STEPS),
                 "--out", str(strip), "--scale", "1"]) == 0
    handle = open_run(run).handle
    frames = np.asarray(Image.open(strip))
    for i, seed in ((0, 3), (7, 4)):
        sample = handle.sample(1, sampler="ddim", steps=STEPS, seed=seed)
        got = frames[2:10, 2 + i * 10:10 + i * 10].astype(int)  # make_grid's padding of 2 around each 8×8 frame
        assert np.abs(got - to_uint8(sample)[0, 0].astype(int)).max() <= 1  # one batch of 8 vs one: round-off


@pytest.mark.parametrize("args, message", [
    (["invert", "RUN", "/no/such.png"], "image /no/such.png does not exist"),
    (["invert", "RUN", "CORRUPT"], "cannot use the image"),
    (["invert", "/no/such/run", "IMG"], "does not exist"),
    (["invert", "RUN", "IMG", "--steps", "21"], "--steps 21 exceeds the run's T = 20"),
    (["invert", "RUN", "IMG", "--label", "cats"], "not class-conditional"),
    (["invert", "RUN", "IMG", "--guidance-scale", "2"], "needs a class-conditional run"),
    (["interpolate", "RUN", "--seed", "1"], "give two images A B, or two seeds"),
    (["interpolate", "RUN", "IMG", "--seed", "1", "--seed", "2"], "not both"),
    (["interpolate", "RUN", "--seed", "1", "--seed", "2", "--frames", "1"], "--frames must lie in 2..64"),
])
def test_bad_input_gives_one_clear_line(run, tmp_path, capsys, args, message):
    run, folder = run
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    subst = {"RUN": str(run), "IMG": str(folder / "img_0.png"), "CORRUPT": str(corrupt)}
    assert main([subst.get(a, a) for a in args]) == 1
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("diffview: error:"), lines


def test_the_commands_run_as_a_process(run, tmp_path):
    run, folder = run
    r = subprocess.run([sys.executable, "-m", "diffview", "invert", str(run), str(folder / "img_3.png"), "--steps",
                        "2", "--out", str(tmp_path / "r.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "grey levels" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "diffview", "interpolate", str(run), "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_a_conditional_run_interpolates_within_the_class(tmp_path, capsys):
    from test_conditional_training import _class_folder

    folder, run = _class_folder(tmp_path / "pets"), tmp_path / "run"
    assert main(["train", str(folder), "--conditional", "--model", "tiny", "--steps", "2", "--batch-size", "4",
                 "--image-size", "8", "--timesteps", "20", "--checkpoint-every", "2", "--preview-every", "2",
                 "--out", str(run), "--threads", "1"]) == 0
    wake(run)
    capsys.readouterr()
    a, b = folder / "cats" / "0.png", folder / "dogs" / "1.png"
    assert main(["interpolate", str(run), str(a), str(b), "--label", "dogs", "--frames", "4", "--steps", "3",
                 "--out", str(tmp_path / "dogs.png")]) == 0
    assert Image.open(tmp_path / "dogs.png").text["class"] == "dogs"
    assert "class dogs at S = 1" in capsys.readouterr().err
    assert main(["interpolate", str(run), "--seed", "1", "--seed", "2", "--label", "cats", "--frames", "4",
                 "--steps", "3", "--out", str(tmp_path / "cats.png")]) == 0
    assert "class cats at S = 3" in capsys.readouterr().err  # seeds: the run's guidance scale, as sample uses
    assert main(["invert", str(run), str(a), "--label", "birds"]) == 1
    assert "no class 'birds'" in capsys.readouterr().err
