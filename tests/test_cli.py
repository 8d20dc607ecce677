"""The command line end to end, through a real subprocess."""

import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from helpers import write_image_folder

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
    assert (run / "checkpoints" / "step_0000006.pt").is_file() and (run / "samples" / "step_0000006.png").is_file()

    grid, gif = tmp_path / "grid.png", tmp_path / "traj.gif"
    r = diffview("sample", run, "--n", 4, "--steps", 5, "--seed", 7, "--out", grid, "--gif", gif, env=env)
    assert r.returncode == 0, r.stderr
    img = Image.open(grid)
    assert img.text["seed"] == "7" and img.text["step"] == "6" and img.text["sampler"] == "ddim"
    assert img.text["sampler_steps"] == "5" and img.text["schedule"] == "cosine"
    anim = Image.open(gif)
    assert anim.format == "GIF" and anim.n_frames == 6  # one frame per step, then the final x_0
    r = diffview("sample", run, "--n", 2, "--sampler", "ddpm", "--raw", "--out", tmp_path / "ddpm.png", env=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "ddpm.png").text["sampler_steps"] == "20"

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
