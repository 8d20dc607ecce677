import os
import pickle

import pytest
import torch
from helpers import square_dataset, tiny_config

from diffview.core.io import files as ck  # the atomic writes under save_checkpoint
from diffview.core.io.checkpoint import CheckpointError, RunDir, load_checkpoint, save_checkpoint
from diffview.core.runs.handle import ImageShape
from diffview.core.runs.open import open_run
from diffview.core.train.trainer import Trainer


def good_state(step=1):
    return {"model": {"w": torch.ones(3) * step}, "config": {"a": 1}, "step": step}


def test_round_trip(tmp_path):
    save_checkpoint(good_state(3), tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.full((3,), 3.0))


def test_crash_during_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(good_state(1), path)

    def crash(fd):
        raise OSError("simulated power cut before the data reached the disk")

    monkeypatch.setattr(ck.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(good_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_crash_between_write_and_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(good_state(1), path)
    monkeypatch.setattr(ck.os, "replace", lambda a, b: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(good_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_truncated_and_garbage_files_give_clear_errors(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(good_state(1), path)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a diffview checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("wrap", ["torch", "raw-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, wrap):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"model": _Payload(marker), "config": {}}
    if wrap == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused|damaged"):
        load_checkpoint(path)
    assert not marker.exists()


def test_latest_pointer_and_pruning(tmp_path):
    run = RunDir(tmp_path / "r").create()
    for step in (1, 2, 3, 4):
        run.write_checkpoint(good_state(step), step, keep=2)
    assert [p.name for p in run.list_checkpoints()] == ["step_0000003.pt", "step_0000004.pt"]
    assert (run.checkpoints / "latest").read_text().strip() == "step_0000004.pt"
    (run.checkpoints / "latest").unlink()
    assert run.latest_checkpoint().name == "step_0000004.pt"  # falls back to the newest file


def test_torn_metrics_line_is_skipped(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.metrics.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert run.read_metrics() == [{"step": 1, "loss": 0.5}]


def test_open_run_samples_from_a_trained_run(tmp_path):
    list(Trainer(tiny_config(steps=4, checkpoint_every=4), tmp_path / "run", dataset=square_dataset()).run())
    run = open_run(tmp_path / "run")
    assert run.step == 4 and run.handle.shape == ImageShape(1, 8)
    steps = list(run.handle.iter_sample(3, sampler="ddim", steps=5, seed=1))
    assert len(steps) == 5 and steps[-1].x_prev.shape == (3, 1, 8, 8)
    again = list(run.handle.iter_sample(3, sampler="ddim", steps=5, seed=1))
    torch.testing.assert_close(steps[-1].x_prev, again[-1].x_prev, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="does not exist"):
        open_run(tmp_path / "nope")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not a diffview run folder"):
        open_run(tmp_path / "empty")
