"""Training in a child process: a Trainer in its own interpreter, and the app's handle on it.

The app trains in a child process started with ``torch.multiprocessing``'s ``spawn`` method (the same on
Linux, macOS and Windows, and a process running Qt is never forked). Three one-way pipes join the two:

- **events**, child → app: one :class:`Started` once the network exists, then the Trainer's own events
  (core/train/events.py) as it yields them. The last is always a DoneEvent: if the child dies without
  one (a signal, the out-of-memory killer, a crash in native code), :meth:`TrainingProcess.read` writes
  it, saying how the child ended and which checkpoint is intact (:func:`death_message`).
- **control**, app → child: ``pause``, ``unpause``, ``stop`` and ``("weights", ema)``. The child stops
  after its current step (and checkpoints) when the app's end of this pipe closes, so an app that dies
  leaves no trainer behind.
- **weights**, child → app: the answer to a weights request, with the step the weights belong to. The
  first answer for the EMA or the raw weights carries CPU tensors in shared memory (handles, not
  copies); every later answer has the child copy the newest weights into those same tensors, under the
  trainer's weight lock, so one snapshot is one step's weights. The app copies them into its own model.
  Once the run is done the app copies both sets one last time and then sends ``close``, which lets the
  child exit: the finished run's weights stay available to sample from.

    proc = TrainingProcess(TrainConfig(steps=2000), "runs/digits")  # dataset=PointDataset(...): given points
    proc.start()
    while not proc.finished:
        for event in proc.read(timeout=0.1):
            ...  # StepEvent, PreviewEvent, ..., then one DoneEvent
    model, step = proc.snapshot_model(ema=True)  # any time after Started, from any thread

The child chooses its torch threads and device as the command line does (``TrainConfig.threads``: one
per core by default; ``device="auto"``) and runs ``NICENESS`` below the app, so the app's drawing wins a
core whenever it has work.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.multiprocessing as mp

from diffview.core.data.points import PointDataset
from diffview.core.io.checkpoint import CheckpointError, RunDir, load_checkpoint
from diffview.core.models.registry import architecture, model_from_architecture
from diffview.core.schedule import NoiseSchedule, make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.events import DoneEvent, StepEvent
from diffview.core.train.trainer import Trainer

NICENESS = 5  # the child's priority below the app's (Unix); 0 leaves it equal
CLOSE_WAIT_S = 60.0  # how long a finished child waits for the app to take its last weights


@dataclass(frozen=True)
class Started:
    """What the child says once its Trainer is set up: the config as it resolved it, where it starts, its
    network's architecture (to rebuild it from shared weights), the data's shape and classes, the device."""

    config: dict
    step: int
    architecture: dict
    kind: str  # "images" or "points"
    channels: int | None
    image_size: int | None
    dim: int | None
    class_names: tuple[str, ...]
    items: int  # how many images or points it trains on
    device: str
    pid: int


class TrainingProcess:
    """The app's handle on one training run in a child process (see the module's notes).

    ``read`` belongs to one thread (the app's relay); ``pause``/``unpause``/``stop``/``snapshot_model``
    may be called from any thread. ``step`` is the last step the events reported, ``config`` the run's
    config (as the child resolved it once it has started), ``started`` the child's :class:`Started`."""

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike | None = None, *, resume: bool = False,
                 niceness: int = NICENESS, dataset: PointDataset | None = None):
        self.config = config.validate()
        self.dataset = dataset  # the points it trains on, when given (the 2D tab's); else the child loads the config's
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.step = 0
        self.started: Started | None = None
        self.schedule: NoiseSchedule | None = None
        self.finished = False  # the child has ended and its DoneEvent was read
        self.done: DoneEvent | None = None
        self._send_lock, self._weights_lock = threading.Lock(), threading.RLock()
        self._shared: dict[bool, dict[str, torch.Tensor]] = {}  # the child's shared tensors, by ``ema``
        self._final: dict[bool, tuple[int, dict[str, torch.Tensor]]] = {}  # the run's last weights, our own copy
        ctx = mp.get_context("spawn")
        self._events, child_events = ctx.Pipe(duplex=False)
        child_control, self._control = ctx.Pipe(duplex=False)
        self._weights, child_weights = ctx.Pipe(duplex=False)
        self._child_ends = (child_events, child_control, child_weights)
        self._process = ctx.Process(target=child_main, name="diffview-training", daemon=True,
                                    args=(self.config.to_dict(), None if run_dir is None else str(run_dir), resume,
                                          niceness, dataset, *self._child_ends))

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        self._process.start()
        for end in self._child_ends:  # the child holds them now: its death closes them, and reads see the end
            end.close()
        self._child_ends = ()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    @property
    def device(self) -> torch.device | None:
        return torch.device(self.started.device) if self.started is not None else None

    def memory_mb(self) -> float | None:
        """The child's resident memory in MB (read from Linux's /proc), None where it cannot be read."""
        try:
            with open(f"/proc/{self._process.pid}/status", encoding="ascii") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError, IndexError):
            return None
        return kb / 1024

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the child has exited (at most ``timeout`` seconds); True if it has."""
        self._process.join(timeout)
        return not self._process.is_alive()

    def terminate(self) -> None:
        """End the child now (SIGTERM, then SIGKILL after 5 s); ``read`` then reports how it ended."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)

    # ------------------------------------------------------------------ control, any thread
    def pause(self) -> None:
        self._send("pause")

    def unpause(self) -> None:
        self._send("unpause")

    def stop(self) -> None:
        """Ask the run to stop after its current step (it writes a checkpoint when it has a run folder)."""
        self._send("stop")

    def _send(self, message) -> bool:
        with self._send_lock:
            try:
                self._control.send(message)
                return True
            except (OSError, ValueError):  # the child has gone (or the pipe is closed): nothing to control
                return False

    # ------------------------------------------------------------------ events, the relay's thread
    def read(self, timeout: float = 0.1, most: int = 256) -> list:
        """The events the child sent, waiting up to ``timeout`` seconds for the first; [] if none came. Once
        the child has ended, the last list ends with its DoneEvent (written here if it died without one)
        and ``finished`` is True."""
        if self.finished:
            return []
        events: list = []
        try:
            if not self._events.poll(timeout):
                return events
            while len(events) < most:
                event = self._events.recv()
                if isinstance(event, Started):
                    self._started(event)
                    continue
                if isinstance(event, StepEvent):
                    self.step = event.step
                elif isinstance(event, DoneEvent):
                    self.done = event
                    self.step = event.step
                    self._keep_final_weights()
                events.append(event)
                if not self._events.poll(0):
                    break
        except (EOFError, OSError):  # the child's end closed: it has exited, or is exiting
            self._process.join(30)
            if self.done is None:
                self.done = DoneEvent("failed", self.step, death_message(self._process.exitcode, self.run_dir))
                events.append(self.done)
            self.finished = True
            self._events.close()
            self._control.close()
        return events

    def _keep_final_weights(self) -> None:
        """Copy both sets of the finished run's weights out of the child, then let it exit."""
        if self.started is not None:
            for ema in (True, False):
                try:
                    step, shared = self._fetch(ema)
                except ValueError:
                    break
                self._final[ema] = (step, {k: v.clone() for k, v in shared.items()})
        self._send("close")

    def _started(self, started: Started) -> None:
        self.config = TrainConfig.from_dict(started.config)
        self.schedule = make_schedule(self.config.schedule, self.config.timesteps)
        self.step = started.step
        self.started = started

    # ------------------------------------------------------------------ weights, any thread
    def snapshot_model(self, ema: bool = True, timeout: float = 120.0) -> tuple[torch.nn.Module, int]:
        """A copy of the (EMA) network as of the child's last finished step, and that step. Blocks until the
        child answers (between two of its steps' weight updates); ValueError if it cannot."""
        if self.started is None:
            raise ValueError("the training run has not built its network yet")
        if ema in self._final:  # the run is over: its last weights
            step, weights = self._final[ema]
            model = model_from_architecture(self.started.architecture)
            model.load_state_dict(weights)
        else:
            model = model_from_architecture(self.started.architecture)
            with self._weights_lock:  # one request's answer, copied before another request may overwrite it
                step, weights = self._fetch(ema, timeout)
                model.load_state_dict(weights)
        return model.eval().requires_grad_(False), step

    def _fetch(self, ema: bool, timeout: float = 120.0) -> tuple[int, dict[str, torch.Tensor]]:
        """Ask the child for its newest weights: (step, the shared tensors it wrote them to)."""
        with self._weights_lock:
            if self.finished or not self._send(("weights", ema)):
                raise ValueError("the training process has ended: its weights are gone")
            try:
                if not self._weights.poll(timeout):
                    raise ValueError(f"the training process did not send its weights within {timeout:.0f} s")
                step, shared = self._weights.recv()
            except (EOFError, OSError):
                raise ValueError("the training process ended before it sent its weights") from None
            if step is None:
                raise ValueError("the training run has not built its network yet")
            if shared is not None:
                self._shared[ema] = shared
            return step, self._shared[ema]


def death_message(exitcode: int | None, run_dir: Path | None) -> str:
    """How a child that sent no DoneEvent ended, in plain words, and what of its run is intact."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {"SIGKILL": " (on Linux the out-of-memory killer sends it when memory runs out)",
               "SIGSEGV": " (a crash in native code)", "SIGBUS": " (a crash in native code)",
               "SIGABRT": " (a native library aborted)"}.get(name, "")
        how = f"was killed by {name}{why}"
    elif exitcode:
        how = f"exited with code {exitcode}"
    else:
        how = "ended without saying why"
    return f"The training process {how}. {intact_checkpoint(run_dir)}"


def intact_checkpoint(run_dir: Path | None) -> str:
    """The newest checkpoint of ``run_dir`` that loads, in a sentence (loading is how to know it is intact)."""
    if run_dir is None:
        return "It had no run folder, so nothing was saved."
    for path in reversed(RunDir(run_dir).list_checkpoints()):
        try:
            step = int(load_checkpoint(path)["step"])
        except (CheckpointError, OSError, KeyError, TypeError, ValueError):
            continue
        return f"The last intact checkpoint is step {step:,}: {path}."
    return f"No checkpoint of {run_dir} was written yet."


# ----------------------------------------------------------------------------- the child's side
def child_main(config: dict, run_dir: str | None, resume: bool, niceness: int, dataset: PointDataset | None, events,
               control, weights) -> None:
    """The child process: run the Trainer, send its events, serve control and weight requests; then exit at
    once. Everything is written by then (checkpoints atomically, the metrics file closed), and the usual
    interpreter teardown with torch loaded took 1.8 s, which every Stop and every closing window would wait."""
    code = 0
    try:
        _child(config, run_dir, resume, niceness, dataset, events, control, weights)
    except BaseException:  # not expected (_child reports failures as events): shown, and the app says how it ended
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child(config: dict, run_dir: str | None, resume: bool, niceness: int, dataset: PointDataset | None, events,
           control, weights) -> None:
    _renice(niceness)
    ready, closed = threading.Event(), threading.Event()
    try:
        trainer = Trainer(TrainConfig.from_dict(config), run_dir, resume=resume, dataset=dataset)
    except Exception as e:  # a config the app should have refused: said, never a traceback
        _send_quietly(events, DoneEvent("failed", 0, str(e)))
        return
    threading.Thread(target=_serve, args=(trainer, ready, closed, control, weights), name="diffview-control",
                     daemon=True).start()
    connected = True
    run = trainer.run()
    while True:
        try:
            event = next(run)
        except StopIteration:
            break
        except Exception as e:  # a bug must reach the app as a message, with the step it happened at
            event = DoneEvent("failed", trainer.step, f"Training stopped by an internal error: {e!r}")
        if not ready.is_set() and trainer.ema is not None:
            connected = _send_quietly(events, _started_of(trainer)) and connected
            ready.set()
        connected = connected and _send_quietly(events, event)
        if not connected:
            trainer.stop()  # the app has gone: stop after this step and checkpoint
        if isinstance(event, DoneEvent):
            break
    if connected and ready.is_set():
        closed.wait(CLOSE_WAIT_S)  # the app copies the last weights out of the shared tensors, then says close
    events.close()


def _serve(trainer: Trainer, ready: threading.Event, closed: threading.Event, control, weights) -> None:
    shared: dict[bool, dict[str, torch.Tensor]] = {}
    while True:
        try:
            request = control.recv()
        except (EOFError, OSError):  # the app closed its end, or died
            trainer.stop()
            closed.set()
            return
        if request == "close":
            closed.set()
        elif request == "pause":
            trainer.pause()
        elif request == "unpause":
            trainer.unpause()
        elif request == "stop":
            trainer.stop()
        elif isinstance(request, tuple) and request[0] == "weights":
            ema = bool(request[1])
            if not ready.is_set():
                answer = (None, None)
            elif ema in shared:
                answer = (trainer.copy_weights(ema, into=shared[ema])[0], None)
            else:
                step, tensors = trainer.copy_weights(ema)
                shared[ema] = {k: v.share_memory_() for k, v in tensors.items()}
                answer = (step, shared[ema])
            if not _send_quietly(weights, answer):
                return


def _started_of(trainer: Trainer) -> Started:
    data = trainer.dataset
    images = data.kind == "images"
    return Started(trainer.config.to_dict(), trainer.step, architecture(trainer.model), data.kind,
                   getattr(data, "channels", None) if images else None,
                   getattr(data, "image_size", None) if images else None,
                   None if images else getattr(data, "dim", None),
                   tuple(str(n) for n in (data.class_names or ())), len(data), str(trainer.device), os.getpid())


def _send_quietly(connection, message) -> bool:
    try:
        connection.send(message)
        return True
    except (OSError, ValueError):  # BrokenPipeError: the app's end is closed
        return False


def _renice(niceness: int) -> None:
    if niceness and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError:
            pass


__all__ = ["NICENESS", "Started", "TrainingProcess", "child_main", "death_message", "intact_checkpoint"]
