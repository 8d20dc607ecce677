"""The command line end to end, through a real subprocess."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import write_image_folder
from PIL import Image

TINY = ["--model", "tiny", "--image-size", "8", "--timesteps", "20", "--batch-size", "4", "--threads", "1"]


def diffview(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "diffview", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["DIFFVIEW_CACHE_DIR"] = str(tmp_path / "cache")
    return e


def test_train_sample_info_end_to_end(tmp_path, env):
    folder = write_image_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    r = diffview("train", folder, "--out", run, "--steps", 6, "--preview-every", 3, "--checkpoint-every", 3, *TINY,
                 env=env)
    assert r.returncode == 0, r.stderr
    assert "Used 6 images" in r.stderr and "Finished 6 steps" in r.stderr
    assert "Loss by timestep t over the last 6 steps" in r.stderr  # unlabelled images: where its samples stand
    assert (run / "checkpoints" / "step_0000006.pt").is_file() and (run / "samples" / "step_0000006.png").is_file()

    grid, gif = tmp_path / "grid.png", tmp_path / "traj.gif"
    r = diffview("sample", run, "--n", 4, "--steps", 5, "--seed", 7, "--out", grid, "--gif", gif, env=env)
    assert r.returncode == 0, r.stderr
    img = Image.open(grid)
    assert img.text["seed"] == "7" and img.text["step"] == "6" and img.text["sampler"] == "heun"  # the default
    assert img.text["sampler_steps"] == "5" and img.text["schedule"] == "cosine" and float(img.text["s_churn"]) == 20
    assert "heun, 5 steps, S_churn 20" in r.stderr
    anim = Image.open(gif)
    assert anim.format == "GIF" and anim.n_frames == 6  # one frame per step, then the final x_0
    r = diffview("sample", run, "--n", 2, "--sampler", "ddpm", "--raw", "--out", tmp_path / "ddpm.png", env=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "ddpm.png").text["sampler_steps"] == "20"

    for sampler, extra, cost in (("heun", ["--churn", "5"], None), ("dpmpp-2m", ["--spacing", "karras"], 5)):
        out = tmp_path / f"{sampler}.png"
        r = diffview("sample", run, "--n", 2, "--sampler", sampler, "--steps", 5, *extra, "--out", out, env=env)
        assert r.returncode == 0, r.stderr
        text = Image.open(out).text
        assert text["sampler"] == sampler and text["sampler_steps"] == "5" and f"{text['nfe']} NFE" in r.stderr
        assert cost is None or text["nfe"] == str(cost)
        assert 5 <= int(text["nfe"]) <= 9
    r = diffview("sample", run, "--sampler", "ddim", "--churn", "3", env=env)
    assert r.returncode != 0 and "--churn is heun's S_churn" in r.stderr and "Traceback" not in r.stderr

    r = diffview("info", run, env=env)
    assert r.returncode == 0, r.stderr
    assert "6 of 6 steps" in r.stdout and "tiny UNet" in r.stdout and "step_0000006.pt" in r.stdout

    r = diffview("train", "--resume", run, "--steps", 8, env=env)
    assert r.returncode == 0, r.stderr
    assert "Resuming" in r.stderr and (run / "checkpoints" / "step_0000008.pt").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "/no/such/folder"], "does not exist"),
        (["train", "--dataset", "digits", "--steps", "abc"], "expected a whole number, got 'abc'"),
        (["train", "--dataset", "digits", "--steps", "0"], "expected a number >= 1"),
        (["train", "--dataset", "digits", "--schedule", "wiggly"], "invalid choice: 'wiggly'"),
        (["train", "--dataset", "digits", "--image-size", "30"], "image size 30 does not fit"),
        (["train", "--dataset", "nope"], "nope"),
        (["sample", "/no/such/run"], "does not exist"),
        (["info", "/no/such/run"], "not a diffview run folder"),
        (["trian"], "neither a command"),
    ],
)
def test_bad_input_gives_one_clear_line_and_no_traceback(args, message, env):
    r = diffview(*args, env=env)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert message in lines[0]


def test_folder_without_images_is_a_clear_error(tmp_path, env):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    r = diffview("train", tmp_path / "empty", *TINY, "--out", tmp_path / "run", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert str(tmp_path / "empty") in r.stderr


def test_a_folder_gets_steps_and_batch_scaled_to_it_where_not_given(tmp_path, env):
    import json

    from diffview.core.train.config import image_defaults

    folder = write_image_folder(tmp_path / "imgs", n=5, size=12)
    small = ["--model", "tiny", "--timesteps", "20", "--threads", "1"]
    r = diffview("train", folder, "--image-size", "56", "--steps", "4", *small, "--out", tmp_path / "run", env=env)
    assert r.returncode == 0, r.stderr
    assert "Defaults for 5 images at 56×56: batch 5 (--steps and --batch-size set them)." in r.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["batch_size"] == 5 and cfg["steps"] == 4
    # nothing given: both scaled (checked without training: a bad lr stops it after the scaling)
    r = diffview("train", folder, "--image-size", "56", *small, "--lr", "2", "--out", tmp_path / "run2", env=env)
    assert f"steps {image_defaults(56, 5)['steps']}, batch 5" in r.stderr and r.returncode != 0


def test_ctrl_c_stops_cleanly_and_writes_a_checkpoint(tmp_path, env):
    folder = write_image_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "diffview", "train", str(folder), "--out", str(run),
                             "--steps", "1000000", *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Stopped at step" in err and "Traceback" not in err
    ckpts = list((run / "checkpoints").glob("step_*.pt"))
    assert len(ckpts) == 1


# ----------------------------------------------------------------------------- resume: the run's own data
@pytest.mark.parametrize("flip", [True, False])
def test_resume_from_the_cli_uses_the_run_s_own_data_settings(tmp_path, env, flip):
    import json

    folder = write_image_folder(tmp_path / "imgs", n=6, size=8)
    (tmp_path / "flip.toml").write_text(f'flip = {str(flip).lower()}\nlr_decay = "constant"\nlog_every = 1\n')
    common = [folder, "--config", tmp_path / "flip.toml", *TINY]
    r = diffview("train", *common, "--out", tmp_path / "run", "--steps", 2, env=env)
    assert r.returncode == 0, r.stderr
    r = diffview("train", "--resume", tmp_path / "run", "--steps", 4, env=env)
    assert r.returncode == 0, r.stderr
    assert f"on its own data: {folder}, flips {'on' if flip else 'off'}." in r.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["flip"] is flip and (config["image_size"], config["channels"]) == (8, "1")
    if flip:  # and it trains exactly as the uninterrupted run does
        r = diffview("train", *common, "--out", tmp_path / "whole", "--steps", 4, env=env)
        assert r.returncode == 0, r.stderr
        losses = [[json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
                  for name in ("run", "whole")]
        assert losses[0] == losses[1] and len(losses[0]) == 4


# ----------------------------------------------------------------------------- a broken GUI stack
BREAK_QT = """
import sys
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == {missing!r} or name.startswith({missing!r} + "."):
            raise {error}
sys.meta_path.insert(0, Broken())
from diffview.cli import main
sys.exit(main(sys.argv[1:]))
"""


def broken_qt(*args, missing, error, env):
    code = BREAK_QT.format(missing=missing, error=error)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("missing, error, says", [
    ("PySide6.QtGui", 'ImportError("libEGL.so.1: cannot open shared object file: No such file or directory")',
     "Qt needs the system library libEGL.so.1, which is missing (on Debian/Ubuntu: apt-get install libegl1)"),
    ("PySide6", 'ModuleNotFoundError("No module named \'PySide6\'", name="PySide6")',
     "the Python package PySide6 is not installed (pip install PySide6-Essentials)"),
    ("PySide6.QtWidgets", 'ImportError("libfoo.so.3: cannot open shared object file")',
     "Qt needs the system library libfoo.so.3, which is missing (install the system package that provides it"),
])
def test_a_broken_gui_stack_says_what_failed_and_exits_non_zero(tmp_path, env, missing, error, says):
    r = broken_qt(missing=missing, error=error, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not built yet" not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("diffview: error: the desktop app cannot start: "), r.stderr
    assert says in lines[0] and "headless commands still work" in lines[0]
    r = broken_qt(tmp_path, missing=missing, error=error, env=env)  # `diffview FOLDER` too
    assert r.returncode == 1 and says in r.stderr


def test_the_headless_commands_work_without_the_gui_stack(tmp_path, env):
    folder = write_image_folder(tmp_path / "imgs", n=6, size=8)
    error = 'ImportError("libEGL.so.1: cannot open shared object file")'
    r = broken_qt("train", folder, "--out", tmp_path / "run", "--steps", 2, *TINY, missing="PySide6", error=error,
                  env=env)
    assert r.returncode == 0 and "Finished 2 steps" in r.stderr, r.stderr
    r = broken_qt("info", tmp_path / "run", missing="PySide6", error=error, env=env)
    assert r.returncode == 0 and "2 of 2 steps" in r.stdout, r.stderr
    r = broken_qt("sample", tmp_path / "run", "--n", 2, "--steps", 2, "--out", tmp_path / "g.png", missing="PySide6",
                  error=error, env=env)
    assert r.returncode == 0 and (tmp_path / "g.png").is_file(), r.stderr
