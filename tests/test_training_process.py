"""Training in a child process (core/train/process.py): the events, control within one step, weights through
shared memory, and a death reported in plain words with the checkpoint that is intact. No Qt here."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import process_running, tiny_config

from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.train.events import CheckpointEvent, DoneEvent, LogEvent, PreviewEvent, StepEvent
from diffview.core.train.process import TrainingProcess, death_message, intact_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals are POSIX's")


def read_until(training: TrainingProcess, done, timeout: float = 120.0) -> list:
    """Every event the child sends until ``done(events)`` or it ends."""
    events: list = []
    deadline = time.monotonic() + timeout
    while not training.finished and not done(events):
        assert time.monotonic() < deadline, f"no end after {timeout} s: {events[-3:]}"
        events += training.read(timeout=0.2)
    return events


def steps_of(events) -> list[int]:
    return [e.step for e in events if isinstance(e, StepEvent)]


def same_weights(model: torch.nn.Module, saved: dict) -> None:
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)


def test_a_child_trains_sends_every_event_and_keeps_its_last_weights(tmp_path):
    run = tmp_path / "run"
    training = TrainingProcess(tiny_config(steps=6, checkpoint_every=3, preview_every=3), run)
    training.start()
    events = read_until(training, lambda _: False)
    assert training.pid != os.getpid() and training.started.pid == training.pid
    assert steps_of(events) == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events if isinstance(e, PreviewEvent)] == [3, 6]
    assert [e.step for e in events if isinstance(e, CheckpointEvent)] == [3, 6]
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "finished" and training.step == 6
    assert training.started.kind == "images" and training.started.image_size == 8 and training.started.items > 0
    assert training.config.channels == "1" and training.schedule.timesteps == 50  # as the child resolved them
    assert training.wait(10) and training.exitcode == 0
    saved = load_checkpoint(RunDir(run).latest_checkpoint())
    for ema, key in ((True, "ema"), (False, "model")):  # the run is over: its last weights, kept by the app
        model, step = training.snapshot_model(ema=ema)
        assert step == 6
        same_weights(model, saved[key])


def test_pause_and_stop_act_within_one_step_and_a_paused_snapshot_is_that_steps_weights(tmp_path):
    run = tmp_path / "run"
    training = TrainingProcess(tiny_config(steps=10**6, checkpoint_every=10**6), run)
    training.start()
    events = read_until(training, lambda evs: len(steps_of(evs)) >= 3)
    training.pause()
    asked_at = training.step
    events += read_until(training, lambda evs: any(isinstance(e, LogEvent) and "Paused" in e.message for e in evs))
    paused_at = training.step
    assert asked_at <= paused_at <= asked_at + 2  # the step under way when asked, and the one its message crossed
    time.sleep(1.0)
    assert steps_of(training.read(timeout=0.2)) == [] and training.step == paused_at
    model, step = training.snapshot_model(ema=True)  # served while the trainer waits
    assert step == paused_at
    training.stop()  # from pause: no step more, and a checkpoint of this one
    events = read_until(training, lambda _: False)
    assert steps_of(events) == [] and events[-1].reason == "stopped" and events[-1].step == paused_at
    saved = load_checkpoint(RunDir(run).latest_checkpoint())
    assert saved["step"] == paused_at
    same_weights(model, saved["ema"])
    assert training.wait(10) and training.exitcode == 0


def test_a_killed_child_is_reported_with_its_intact_checkpoint_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    training = TrainingProcess(tiny_config(steps=10**6, checkpoint_every=2), run)
    training.start()
    read_until(training, lambda evs: any(isinstance(e, CheckpointEvent) and e.step >= 4 for e in evs))
    os.kill(training.pid, signal.SIGKILL)
    events = read_until(training, lambda _: False, timeout=60)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.reason == "failed" and training.finished
    assert training.exitcode == -signal.SIGKILL
    assert "killed by SIGKILL" in done.message and "out-of-memory killer" in done.message, done.message
    latest = RunDir(run).latest_checkpoint()
    step = int(load_checkpoint(latest)["step"])
    assert step >= 4 and f"The last intact checkpoint is step {step:,}: {latest}" in done.message
    with pytest.raises(ValueError, match="ended"):
        training.snapshot_model()
    again = TrainingProcess(tiny_config(steps=step + 2, checkpoint_every=2), run, resume=True)
    again.start()
    events = read_until(again, lambda _: False)
    assert steps_of(events) == [step + 1, step + 2] and events[-1].reason == "finished"


def test_a_bad_config_ends_the_child_with_the_reason_not_a_traceback(tmp_path):
    training = TrainingProcess(tiny_config(dataset=str(tmp_path / "nowhere")), tmp_path / "run")
    training.start()
    events = read_until(training, lambda _: False)
    assert events[-1].reason == "failed" and "nowhere" in events[-1].message and training.started is None
    with pytest.raises(ValueError, match="not built"):
        training.snapshot_model()
    assert training.wait(10) and training.exitcode == 0


def test_death_messages_say_how_the_child_ended(tmp_path):
    assert "killed by SIGSEGV (a crash in native code)" in death_message(-signal.SIGSEGV, None)
    assert "exited with code 3" in death_message(3, None)
    assert "It had no run folder" in death_message(-signal.SIGTERM, None)
    assert "No checkpoint" in death_message(1, tmp_path)


def test_the_intact_checkpoint_is_the_newest_that_loads(tmp_path):
    from diffview.core.train.trainer import Trainer

    run = tmp_path / "run"
    list(Trainer(tiny_config(steps=4, checkpoint_every=2, keep_checkpoints=5), run).run())
    first, latest = RunDir(run).list_checkpoints()
    latest.write_bytes(latest.read_bytes()[:100])  # a torn write, as a crash mid-write could leave
    assert intact_checkpoint(run) == f"The last intact checkpoint is step 2: {first}."


ORPHAN = r"""
import os, sys, time
from helpers import tiny_config
from diffview.core.train.process import TrainingProcess
if __name__ == "__main__":
    training = TrainingProcess(tiny_config(steps=10**6, checkpoint_every=10**6), sys.argv[1])
    training.start()
    while training.step < 2:
        training.read(timeout=0.5)
    print(training.pid, flush=True)
    os._exit(9)  # the app dies without a word: no stop, no atexit
"""


def test_a_child_whose_app_dies_stops_checkpoints_and_exits(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 9, r.stderr
    pid = int(r.stdout.split()[-1])
    deadline = time.monotonic() + 60
    while process_running(pid):
        assert time.monotonic() < deadline, "the training process outlived its app by a minute"
        time.sleep(0.2)
    saved = RunDir(tmp_path / "run").latest_checkpoint()
    assert saved is not None and load_checkpoint(saved)["step"] >= 2

