"""``diffview train --tensorboard``: TensorBoard's own reader finds metrics.jsonl's scalars, the loss by t and the
previews in RUN/tb; without the package it is one clear line."""

import json

import numpy as np
import pytest
from helpers import write_image_folder

from diffview.cli import main
from diffview.core.train import tensorboard as tb_module
from diffview.core.train.tensorboard import T_BINS, TensorBoardLog

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = ["--model", "tiny", "--image-size", "8", "--timesteps", "20", "--batch-size", "4", "--threads", "1"]


def read_board(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


def test_a_tiny_run_writes_metrics_jsonl_s_scalars_the_loss_by_t_and_previews(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path / "cache"))
    folder, run = write_image_folder(tmp_path / "imgs"), tmp_path / "run"
    code = main(["train", str(folder), "--out", str(run), "--steps", "12", "--preview-every", "6",
                 "--checkpoint-every", "6", "--tensorboard", *TINY])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 12]  # log_every 10, and the last step
    acc = read_board(run / "tb")
    for key in ("loss", "lr", "images_per_sec"):
        events = acc.Scalars(f"train/{key}")
        assert [e.step for e in events] == [r["step"] for r in rows]
        # TensorBoard keeps float32: the same numbers as metrics.jsonl to float32's precision
        assert [e.value for e in events] == [float(np.float32(r[key])) for r in rows]
    hists = acc.Histograms("train/loss_by_t")
    assert [h.step for h in hists] == [6, 12]
    limits = hists[0].histogram_value.bucket_limit
    assert len(limits) == T_BINS and limits[-1] == 20  # bins over 0 … T of the run's T = 20
    assert all(c >= 0 for c in hists[0].histogram_value.bucket)
    images = acc.Images("preview")
    assert [i.step for i in images] == [6, 12]
    assert images[0].width > 8 and images[0].height > 8  # a grid of the 8×8 previews


def test_the_histogram_is_each_bin_s_mean_loss_since_the_last_preview(tmp_path):
    from diffview.core.train.events import PreviewEvent, StepEvent

    board = TensorBoardLog(tmp_path / "tb", timesteps=100)
    losses = np.array([1.0, 3.0, 10.0, 0.5], np.float32)
    t = np.array([0, 4, 99, 50])  # bins of width 5: 0, 0, 19, 10
    board.step(StepEvent(1, 1.0, losses, t, 1e-3, 1.0, 1.0, 1.0, 2), None)
    board.preview(PreviewEvent(1, np.zeros((4, 1, 4, 4), np.uint8), "heun", 5, 0.1, None))
    board.step(StepEvent(2, 1.0, np.array([7.0], np.float32), np.array([0]), 1e-3, 1.0, 1.0, 1.0, 2), None)
    board.preview(PreviewEvent(2, np.zeros((4, 1, 4, 4), np.uint8), "heun", 5, 0.1, None))
    board.close()
    hists = read_board(tmp_path / "tb").Histograms("train/loss_by_t")
    first, second = (list(h.histogram_value.bucket) for h in hists)
    expected = np.zeros(T_BINS)
    expected[[0, 10, 19]] = [2.0, 0.5, 10.0]
    assert first == pytest.approx(expected)
    expected[:] = 0
    expected[0] = 7.0  # only what came since the first preview
    assert second == pytest.approx(expected)


def test_without_the_package_it_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tb_module, "tensorboard_available", lambda: False)
    code = main(["train", "--dataset", "digits", "--out", str(tmp_path / "run"), "--steps", "2", "--tensorboard",
                 *TINY])
    err = capsys.readouterr().err
    assert code != 0
    assert 'pip install "diffview[tensorboard]"' in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_run_resumed_without_the_package_goes_on_with_a_warning_and_no_tensorboard_is_off(tmp_path, monkeypatch,
                                                                                              capsys):
    from diffview.core.train import trainer

    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path / "cache"))
    folder, run = write_image_folder(tmp_path / "imgs"), tmp_path / "run"
    assert main(["train", str(folder), "--out", str(run), "--steps", "4", "--tensorboard", *TINY]) == 0
    monkeypatch.setattr(tb_module, "tensorboard_available", lambda: False)
    monkeypatch.setattr(trainer, "tensorboard_available", lambda: False)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    err = capsys.readouterr().err
    assert "TensorBoard logging needs the tensorboard package" in err and "goes on without it" in err
    assert main(["train", "--resume", str(run), "--steps", "8", "--no-tensorboard"]) == 0
    assert "tensorboard" not in capsys.readouterr().err.lower()


def test_a_resume_from_an_earlier_checkpoint_leaves_each_step_once_and_equal_to_metrics_jsonl(tmp_path):
    from helpers import square_dataset, tiny_config

    from diffview.core.train.trainer import Trainer

    run = tmp_path / "run"
    cfg = tiny_config(steps=12, checkpoint_every=6, preview_every=6, log_every=1, tensorboard=True)
    list(Trainer(cfg, run, dataset=square_dataset()).run())
    (run / "checkpoints" / "step_0000012.pt").unlink()  # as if the process died after logging steps 7 … 12
    (run / "checkpoints" / "latest").write_text("step_0000006.pt\n")
    list(Trainer(cfg, run, resume=True, dataset=square_dataset()).run())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    acc = read_board(run / "tb")
    for key in ("loss", "lr", "images_per_sec"):
        events = acc.Scalars(f"train/{key}")
        assert [e.step for e in events] == list(range(1, 13)), key
        assert [e.value for e in events] == [float(np.float32(r[key])) for r in rows], key
    assert [h.step for h in acc.Histograms("train/loss_by_t")] == [6, 12]
