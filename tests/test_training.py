import threading
import time

import torch
from helpers import square_dataset, tiny_config

from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.train.lr_schedule import lr_at
from diffview.core.train.trainer import (
    EMA,
    CheckpointEvent,
    DoneEvent,
    LogEvent,
    PreviewEvent,
    StepEvent,
    Trainer,
)


def steps_of(events):
    return [e for e in events if isinstance(e, StepEvent)]


def test_loss_falls_on_a_trivial_dataset():
    trainer = Trainer(tiny_config(steps=120), dataset=square_dataset())
    events = list(trainer.run())
    losses = [e.loss for e in steps_of(events)]
    assert len(losses) == 120
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "finished"
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.5 * first, (first, last)


def test_step_events_carry_what_a_live_view_needs():
    events = list(Trainer(tiny_config(steps=4, preview_every=2), dataset=square_dataset()).run())
    st = steps_of(events)[-1]
    assert st.step == 4 and st.total_steps == 4
    assert st.losses.shape == (8,) and st.timesteps.shape == (8,)
    assert st.timesteps.min() >= 0 and st.timesteps.max() < 50
    assert abs(st.losses.mean() - st.loss) < 1e-5
    assert st.images_per_sec > 0 and st.eta >= 0 and st.lr > 0
    previews = [e for e in events if isinstance(e, PreviewEvent)]
    assert [p.step for p in previews] == [2, 4]
    assert previews[0].images.shape == (4, 1, 8, 8) and previews[0].images.dtype.name == "uint8"
    assert any(isinstance(e, LogEvent) and "tiny UNet" in e.message for e in events)


def test_seeded_cpu_runs_are_reproducible():
    a = [e.loss for e in steps_of(Trainer(tiny_config(steps=8), dataset=square_dataset()).run())]
    b = [e.loss for e in steps_of(Trainer(tiny_config(steps=8), dataset=square_dataset()).run())]
    c = [e.loss for e in steps_of(Trainer(tiny_config(steps=8, seed=1), dataset=square_dataset()).run())]
    assert a == b and a != c


def test_stop_is_honoured_within_one_step():
    trainer = Trainer(tiny_config(steps=10_000), dataset=square_dataset())
    seen = []
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            seen.append(ev.step)
            if ev.step == 5:
                trainer.stop()
        last = ev
    assert seen[-1] == 5
    assert isinstance(last, DoneEvent) and last.reason == "stopped" and last.step == 5


def test_pause_blocks_between_steps_and_unpause_continues():
    trainer = Trainer(tiny_config(steps=10_000), dataset=square_dataset())
    steps, done = [], threading.Event()

    def consume():
        for ev in trainer.run():
            if isinstance(ev, StepEvent):
                steps.append(ev.step)
                if ev.step == 3:
                    trainer.pause()
        done.set()

    worker = threading.Thread(target=consume)
    worker.start()
    deadline = time.monotonic() + 20
    while len(steps) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert steps == [1, 2, 3] and trainer.paused
    trainer.unpause()
    while len(steps) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    trainer.stop()
    worker.join(timeout=20)
    assert not worker.is_alive() and done.is_set()
    assert steps[:6] == [1, 2, 3, 4, 5, 6]


def test_stop_while_paused_ends_the_run():
    trainer = Trainer(tiny_config(steps=10_000), dataset=square_dataset())
    events = []

    def consume():
        for ev in trainer.run():
            events.append(ev)
            if isinstance(ev, StepEvent) and ev.step == 2:
                trainer.pause()

    worker = threading.Thread(target=consume)
    worker.start()
    time.sleep(0.5)
    trainer.stop()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "stopped" and events[-1].step == 2


def test_exact_resume(tmp_path):
    full = [e.loss for e in steps_of(Trainer(tiny_config(steps=16, checkpoint_every=8), tmp_path / "a",
                                             dataset=square_dataset(jitter=True)).run())]
    first = Trainer(tiny_config(steps=16, checkpoint_every=100), tmp_path / "b", dataset=square_dataset(jitter=True))
    part = []
    for ev in first.run():
        if isinstance(ev, StepEvent):
            part.append(ev.loss)
            if ev.step == 7:
                first.stop()  # stop writes a checkpoint at step 7
    assert len(part) == 7
    resumed = Trainer(tiny_config(steps=16, checkpoint_every=100), tmp_path / "b", resume=True,
                      dataset=square_dataset(jitter=True))
    rest = [e.loss for e in steps_of(resumed.run())]
    assert part + rest == full  # bit-for-bit on the CPU
    steps_logged = [r["step"] for r in RunDir(tmp_path / "b").read_metrics()]
    assert steps_logged == list(range(1, 17))


def test_run_folder_layout_and_checkpoint_contents(tmp_path):
    events = list(Trainer(tiny_config(steps=6, checkpoint_every=2, keep_checkpoints=2, preview_every=3),
                          tmp_path / "run", dataset=square_dataset()).run())
    run = RunDir(tmp_path / "run")
    assert run.config.is_file() and run.metrics.is_file()
    assert [p.name for p in run.list_checkpoints()] == ["step_0000004.pt", "step_0000006.pt"]
    assert run.latest_checkpoint().name == "step_0000006.pt"
    assert sorted(p.name for p in run.samples.glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    assert [e.step for e in events if isinstance(e, CheckpointEvent)] == [2, 4, 6]
    state = load_checkpoint(run.latest_checkpoint())
    assert state["step"] == 6
    assert {"model", "ema", "optimizer", "lr_schedule", "rng", "config", "unet"} <= set(state)
    assert set(state["rng"]) == {"data"}  # dropout's generator is reseeded from (seed, rank, step); no global one
    assert state["config"]["horizons"] == [[0, 6]] and state["lr_schedule"]["horizons"] == [[0, 6]]
    assert run.read_config()["horizons"] == [[0, 6]]


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    class PoisonAfter:
        def __init__(self, good, bad_from):
            self.good, self.bad_from, self.calls = good, bad_from, 0
            self.channels, self.image_size, self.kind = good.channels, good.image_size, good.kind
            self.sample_shape = good.sample_shape

        def sample_batch(self, batch_size, generator=None):
            self.calls += 1
            x = self.good.sample_batch(batch_size, generator)
            return x * float("nan") if self.calls >= self.bad_from else x

    data = PoisonAfter(square_dataset(), bad_from=6)
    events = list(Trainer(tiny_config(steps=20, checkpoint_every=4), tmp_path / "run", dataset=data).run())
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.reason == "failed"
    assert "at step 6" in done.message and "step 4" in done.message
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint().name == "step_0000004.pt"
    state = load_checkpoint(run.latest_checkpoint())
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_lr_warmup_and_cosine_decay():
    cfg = tiny_config(lr=1e-3, warmup_steps=10, steps=110)
    assert lr_at(0, cfg) == 1e-4 and lr_at(9, cfg) == 1e-3
    assert lr_at(10, cfg) == 1e-3 and abs(lr_at(110, cfg) - 1e-4) < 1e-12
    assert lr_at(60, cfg) < 1e-3
    cfg.lr_decay = "constant"
    assert lr_at(100, cfg) == 1e-3


def test_ema_warmup_and_average():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.999)
    assert ema.current_decay() == 0.1  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.model.weight.clone()
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, 0.1 * before + 0.9 * torch.ones_like(before))
    assert ema.model.weight.requires_grad is False


def test_a_dataset_too_large_for_memory_streams_through_a_dataloader(tmp_path):
    from helpers import write_image_folder

    from diffview.core.data.images import StreamingImageDataset, load_image_folder

    data, report = load_image_folder(write_image_folder(tmp_path / "imgs", n=6, size=12), image_size=8,
                                     max_memory_bytes=1)
    assert isinstance(data, StreamingImageDataset) and any("decoded from disk" in w for w in report.warnings)
    events = list(Trainer(tiny_config(steps=4), dataset=data).run())
    assert events[-1].reason == "finished"
    losses = [e.loss for e in steps_of(events)]
    assert len(losses) == 4 and all(0 < v < 10 for v in losses)


# ----------------------------------------------------------------------------- trainers side by side
def _alone(seed):
    trainer = Trainer(tiny_config(steps=6, dropout=0.2, seed=seed), dataset=square_dataset(jitter=True))
    losses = [e.loss for e in steps_of(trainer.run())]
    return losses, trainer.model.state_dict(), trainer.ema.model.state_dict()


def _same(a, b):
    assert a[0] == b[0]  # the losses, bit for bit
    for weights, again in zip(a[1:], b[1:]):
        assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_two_trainers_interleaved_in_one_process_each_train_as_alone():
    """The app trains images and 2D points at once: neither trainer may draw from a generator the other uses
    (dropout masks and initial weights included), nor reseed torch's global one."""
    alone = {seed: _alone(seed) for seed in (0, 1)}
    assert alone[0][0] != alone[1][0]
    trainers = {s: Trainer(tiny_config(steps=6, dropout=0.2, seed=s), dataset=square_dataset(jitter=True))
                for s in (0, 1)}
    runs = {s: t.run() for s, t in trainers.items()}
    losses = {0: [], 1: []}
    before = torch.get_rng_state()
    torch.rand(3)  # someone else draws from the global generator in between
    for _ in range(20):  # step A, step B, step A, …
        for s, events in runs.items():
            for ev in events:
                if isinstance(ev, StepEvent):
                    losses[s].append(ev.loss)
                    torch.rand(5)
                    break
    for s, t in trainers.items():
        _same((losses[s], t.model.state_dict(), t.ema.model.state_dict()), alone[s])
    assert not torch.equal(torch.get_rng_state(), before)  # only our own draws moved it

    results = {}  # the same on two threads at once
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, _alone(s))) for s in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    for s in (0, 1):
        _same(results[s], alone[s])


def test_a_trainer_leaves_the_global_generators_as_it_found_them():
    import random

    import numpy as np

    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    list(Trainer(tiny_config(steps=3, dropout=0.2), dataset=square_dataset()).run())
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1] and (np.random.get_state()[1] == states[2]).all()


def test_dropout_masks_come_from_the_trainer_s_generator_per_rank_and_step():
    from diffview.core.train.rng import GeneratorDropout, dropout_seed

    trainer = Trainer(tiny_config(steps=1, dropout=0.5), dataset=square_dataset())
    list(trainer.run())
    drops = [m for m in trainer.model.modules() if isinstance(m, GeneratorDropout)]
    assert drops and all(m.p == 0.5 and m.generator is trainer._dropout_gen for m in drops)
    assert not any(type(m) is torch.nn.Dropout for m in trainer.model.modules())
    x = torch.ones(4000)
    m = drops[0].train()
    masks = []
    for rank, step in ((0, 0), (1, 0), (0, 1), (0, 0)):
        m.generator.manual_seed(dropout_seed(0, rank, step))
        masks.append(m(x))
    assert set(masks[0].unique().tolist()) == {0.0, 2.0} and abs(masks[0].mean().item() - 1) < 0.1  # E[mask] = 1
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    assert torch.equal(masks[0], masks[3])


def test_previews_are_heun_with_the_default_churn_from_the_run_s_fixed_seeds(tmp_path):
    import numpy as np
    from PIL import Image

    from diffview.core.io.export import to_uint8
    from diffview.core.sampling import DEFAULT_CHURN, sample
    from diffview.core.train.config import TrainConfig
    from diffview.core.train.preview import preview_noise

    assert (TrainConfig().preview_sampler, TrainConfig().preview_steps) == ("heun", 13)
    cfg = tiny_config(steps=2, preview_every=2, preview_steps=4)
    trainer = Trainer(cfg, tmp_path / "run", dataset=square_dataset(jitter=True))
    [preview] = [e for e in trainer.run() if isinstance(e, PreviewEvent)]
    x_T = preview_noise(cfg, trainer.dataset)

    def draw(churn):
        return to_uint8(sample(trainer.ema.model, x_T.shape, trainer.schedule, sampler="heun", steps=4, s_churn=churn,
                               objective=cfg.objective, x_T=x_T,
                               generator=torch.Generator().manual_seed(cfg.seed + 2)))

    assert np.array_equal(preview.images, draw(DEFAULT_CHURN)) and not np.array_equal(preview.images, draw(0.0))
    meta = Image.open(preview.path).text
    assert meta["sampler"] == "heun" and meta["sampler_steps"] == "4" and float(meta["s_churn"]) == DEFAULT_CHURN
