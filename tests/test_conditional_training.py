"""Class-conditional training: labels in batches, the null-label dropout, checkpoints, resume, previews, the CLI."""

import math

import numpy as np
import torch
from PIL import Image

from diffview.cli import main
from diffview.core.data.images import ImageDataset
from diffview.core.guidance import NULL_LABEL
from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.runs.open import describe_run, open_run
from diffview.core.train.batches import batch_source, drop_labels
from diffview.core.train.events import DoneEvent, PreviewEvent, StepEvent
from diffview.core.train.trainer import Trainer
from tests.helpers import square_dataset, tiny_config


def labelled_squares(n: int = 32, classes: int = 3, unlabelled: int = 0) -> ImageDataset:
    """Squares whose brightness is their class (k → 60 + 60k), the last ``unlabelled`` without a class."""
    base = square_dataset(n, jitter=True)
    labels = torch.arange(n) % classes
    images = base.images.clone()
    for i in range(n):
        images[i][images[i] > 0] = 60 + 60 * int(labels[i])
    labels[n - unlabelled:] = NULL_LABEL if unlabelled else labels[n - unlabelled:]
    return ImageDataset(images, labels=labels, class_names=tuple(f"c{k}" for k in range(classes)))


def test_the_null_label_is_drawn_at_its_rate_within_binomial_tolerance():
    n, p = 200_000, 0.1
    y = drop_labels(torch.zeros(n, dtype=torch.long), p, torch.Generator().manual_seed(0))
    dropped = int((y == NULL_LABEL).sum())
    sd = math.sqrt(n * p * (1 - p))
    assert abs(dropped - n * p) < 4 * sd, dropped
    assert set(y.unique().tolist()) == {NULL_LABEL, 0}
    assert int((drop_labels(torch.ones(1000, dtype=torch.long), 0.0, torch.Generator()) == NULL_LABEL).sum()) == 0


def test_conditional_batches_draw_only_labelled_items_and_drop_at_the_configured_rate():
    data = labelled_squares(30, 3, unlabelled=6)
    next_batch = batch_source(data, 256, torch.Generator().manual_seed(1), 0, conditional=True, cond_dropout=0.25)
    ys, dropped = [], 0
    for _ in range(8):
        x, y = next_batch()
        brightness = x.amax(dim=(1, 2, 3))  # the class is the square's brightness: the labels match the images
        kept = y >= 0
        assert torch.allclose(brightness[kept], (60 + 60 * y[kept]).float() / 127.5 - 1)
        dropped += int((~kept).sum())
        ys.append(y[kept])
    n = 8 * 256
    assert abs(dropped - 0.25 * n) < 4 * math.sqrt(n * 0.25 * 0.75)
    assert torch.cat(ys).bincount().tolist() and all(c > 0 for c in torch.cat(ys).bincount().tolist())


def test_each_rank_takes_its_slice_of_the_global_conditional_batch():
    data = labelled_squares(24, 4, unlabelled=4)
    whole = batch_source(data, 8, torch.Generator().manual_seed(3), 0, conditional=True, cond_dropout=0.3)()
    parts = [batch_source(data, 4, torch.Generator().manual_seed(3), 0, rank=r, world_size=2, conditional=True,
                          cond_dropout=0.3)() for r in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])


def test_an_unconditional_batch_is_what_it_was_before_labels():
    data = labelled_squares(16, 2)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    x, y = batch_source(data, 8, g1, 0)()
    assert y is None and torch.equal(x, data.sample_batch(8, g2))


def _run(tmp_path, name, **cfg):
    trainer = Trainer(tiny_config(conditional=True, **cfg), tmp_path / name, dataset=labelled_squares(32, 3, 4))
    return trainer, list(trainer.run())


def test_a_conditional_run_records_its_classes_and_opens_as_a_conditional_model(tmp_path):
    trainer, events = _run(tmp_path, "run", steps=6, checkpoint_every=6, preview_every=6, preview_n=5)
    assert events[-1].reason == "finished"
    assert trainer.model.num_classes == 3
    state = load_checkpoint(RunDir(tmp_path / "run").latest_checkpoint())
    assert state["config"]["class_names"] == ["c0", "c1", "c2"] and state["config"]["conditional"]
    assert "class_emb.table.weight" in state["ema"]
    preview = [e for e in events if isinstance(e, PreviewEvent)][-1]
    assert preview.nrow == 4 and preview.images.shape[0] == 12  # one row per class, ⌈5/3⌉ → at least 4 each
    assert preview.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and preview.guidance_scale == 3.0
    handle = open_run(tmp_path / "run").handle
    assert handle.conditional and handle.class_names == ("c0", "c1", "c2") and handle.class_index("c2") == 2
    assert "classes   3: c0, c1, c2" in describe_run(tmp_path / "run")
    logs = " ".join(getattr(e, "message", "") for e in events)
    assert "conditional on 3 classes" in logs and "4 of 32 have no class and are left out" in logs


def test_a_conditional_run_resumes_exactly(tmp_path):
    _, full = _run(tmp_path, "a", steps=12, checkpoint_every=6)
    first = Trainer(tiny_config(conditional=True, steps=12, checkpoint_every=100), tmp_path / "b",
                    dataset=labelled_squares(32, 3, 4))
    part = []
    for ev in first.run():
        if isinstance(ev, StepEvent):
            part.append(ev.loss)
            if ev.step == 5:
                first.stop()
    rest = [e.loss for e in Trainer(tiny_config(conditional=True, steps=12, checkpoint_every=100), tmp_path / "b",
                                    resume=True,
                                    dataset=labelled_squares(32, 3, 4)).run() if isinstance(e, StepEvent)]
    assert len(part) == 5 and len(rest) == 7
    assert part + rest == [e.loss for e in full if isinstance(e, StepEvent)]  # bit for bit on the CPU


def test_conditional_training_on_data_without_classes_fails_with_a_clear_message(tmp_path):
    events = list(Trainer(tiny_config(conditional=True), tmp_path / "r", dataset=square_dataset()).run())
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "failed"
    assert "no class labels" in events[-1].message


def test_a_resume_refuses_data_whose_classes_changed(tmp_path):
    _run(tmp_path, "r", steps=4, checkpoint_every=4)
    other = ImageDataset(labelled_squares(32, 3).images, labels=torch.arange(32) % 3, class_names=("a", "b", "c"))
    events = list(Trainer(tiny_config(conditional=True, steps=6, checkpoint_every=4), tmp_path / "r", resume=True,
                          dataset=other).run())
    assert events[-1].reason == "failed" and "trained on the classes c0, c1, c2" in events[-1].message


def test_a_nan_loss_stops_a_conditional_run_too(tmp_path):
    class PoisonAfter(ImageDataset):
        calls = 0

        def get_batch(self, indices, generator=None):
            self.calls += 1
            x = super().get_batch(indices, generator)
            return x * float("nan") if self.calls >= 6 else x

    good = labelled_squares(32, 3)
    data = PoisonAfter(good.images, labels=good.labels, class_names=good.class_names)
    events = list(Trainer(tiny_config(conditional=True, steps=20, checkpoint_every=4), tmp_path / "nan",
                          dataset=data).run())
    assert events[-1].reason == "failed" and "at step 6" in events[-1].message and "step 4" in events[-1].message


def _class_folder(root, per_class: int = 4):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = np.full((8, 8), 40 + 150 * k, np.uint8) + rng.integers(0, 20, (8, 8)).astype(np.uint8)
            Image.fromarray(arr, mode="L").save(root / name / f"{i}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(root / "stray.png")
    return root


def test_the_command_line_trains_conditionally_and_samples_labels_grids_and_npz(tmp_path, capsys):
    folder, run = _class_folder(tmp_path / "pets"), tmp_path / "run"
    assert main(["train", str(folder), "--conditional", "--model", "tiny", "--steps", "4", "--batch-size", "4",
                 "--image-size", "8", "--timesteps", "20", "--checkpoint-every", "4", "--preview-every", "4",
                 "--out", str(run), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "conditional on 2 classes" in err and "1 of 9 have no class" in err
    assert main(["info", str(run)]) == 0 and "classes   2: cats, dogs" in capsys.readouterr().out

    npz = tmp_path / "dogs.npz"
    assert main(["sample", str(run), "--label", "dogs", "--n", "3", "--steps", "5", "--npz", str(npz),
                 "--out", str(tmp_path / "dogs.png")]) == 0
    with np.load(npz) as f:
        assert f["arr_0"].shape == (3, 8, 8, 1) and f["arr_0"].dtype == np.uint8
        assert f["arr_1"].tolist() == [1, 1, 1] and f["arr_1"].dtype == np.int64
    assert "guided at S = 3" in capsys.readouterr().err  # the run's default scale

    npz_all = tmp_path / "all.npz"
    assert main(["sample", str(run), "--label", "all", "--n", "2", "--steps", "5", "--guidance-scale", "5",
                 "--npz", str(npz_all), "--out", str(tmp_path / "all.png")]) == 0
    with np.load(npz_all) as f:
        assert f["arr_1"].tolist() == [0, 0, 1, 1]
    grid = Image.open(tmp_path / "all.png")
    assert grid.info["rows"] == "cats, dogs" and grid.info["guidance_scale"] == "5.0"
    assert grid.size[1] < grid.size[0] * 1.5  # two rows of two, not one column

    assert main(["sample", str(run), "--label", "birds", "--steps", "5"]) == 1
    assert "no class 'birds'; the classes are cats, dogs" in capsys.readouterr().err


def test_the_command_line_explains_labels_on_an_unconditional_run_and_writes_its_npz(tmp_path, capsys):
    run = tmp_path / "plain"
    assert main(["train", str(_class_folder(tmp_path / "pets")), "--model", "tiny", "--steps", "2", "--batch-size",
                 "2", "--image-size", "8", "--timesteps", "10", "--checkpoint-every", "2", "--out", str(run),
                 "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--label", "cats", "--steps", "3"]) == 1
    assert "not class-conditional" in capsys.readouterr().err
    npz = tmp_path / "plain.npz"
    assert main(["sample", str(run), "--n", "5", "--steps", "3", "--npz", str(npz)]) == 0
    with np.load(npz) as f:
        assert set(f.files) == {"arr_0"} and f["arr_0"].shape == (5, 8, 8, 1)
