"""Several processes train one model: 2 CPU ranks over gloo, started by torchrun in a subprocess."""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import write_image_folder

from diffview.cli import main as cli_main
from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.runs.handle import ImageShape
from diffview.core.runs.open import describe_run, open_run
from diffview.core.train.config import TrainConfig
from diffview.core.train.resume import load_run_config
from diffview.core.train.trainer import StepEvent, Trainer

REPO = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "ddp_probe.py"
SETTINGS = """\
model = "tiny"
image_size = 8
timesteps = 50
batch_size = 4
warmup_steps = 1
lr_decay = "constant"  # so a 4-step run resumed to 6 matches a 6-step run
lr = 0.002
log_every = 1
preview_n = 4
preview_steps = 3
threads = 1
device = "cpu"
precision = "fp32"  # the global batch split over ranks is compared with one process to float32's rounding
"""

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")


def torchrun(tmp, *args, probe=True, extra_env=None, timeout=90, popen=False):
    """``diffview …`` (through the tracing probe, or ``-m diffview``) as 2 torchrun processes."""
    logs = Path(tmp) / f"logs-{time.monotonic_ns()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "DIFFVIEW_CACHE_DIR": str(Path(tmp) / "cache"),
           "DIFFVIEW_TEST_TRACE": str(Path(tmp) / "trace.jsonl"), **(extra_env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--redirects=3", f"--log-dir={logs}", *([str(PROBE)] if probe else ["-m", "diffview"]), *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True), logs
    r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    return r, logs


def rank_log(logs: Path, rank: int, stream: str = "stderr") -> str:
    files = sorted(logs.rglob(f"{rank}/{stream}.log"))
    assert files, f"torchrun wrote no {stream} log for rank {rank} under {logs}"
    return files[-1].read_text(encoding="utf-8", errors="replace")


def read_trace(path: Path) -> dict[int, list[dict]]:
    by_rank = {0: [], 1: []}
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # a rank is writing it right now
        row = json.loads(line)
        by_rank[row["rank"]].append(row)
    return by_rank


def one_process_losses(run: Path, steps: int) -> list[float]:
    """The same run's settings on one process with the global batch (2 × 4), no run folder."""
    cfg = load_run_config(run)
    cfg.batch_size, cfg.world_size, cfg.global_batch_size, cfg.steps = 8, 1, None, steps
    cfg.dataset = str(run.parent / cfg.dataset)  # the run names its folder relative to where it ran
    return [e.loss for e in Trainer(cfg).run() if isinstance(e, StepEvent)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """4 steps on 2 ranks, checkpoints and previews at steps 2 and 4."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_image_folder(tmp / "imgs", n=6, size=8)
    (tmp / "settings.toml").write_text(SETTINGS, encoding="utf-8")
    t0 = time.monotonic()
    r, logs = torchrun(tmp, "train", "imgs", "--config", "settings.toml", "--out", "run", "--steps", 4,
                       "--preview-every", 2, "--checkpoint-every", 2)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"tmp": tmp, "run": tmp / "run", "logs": logs, "trace": read_trace(tmp / "trace.jsonl"),
            "seconds": time.monotonic() - t0}


def test_ranks_hold_identical_parameters_after_every_step(ddp_run):
    trace = ddp_run["trace"]
    assert [row["step"] for row in trace[0]] == [1, 2, 3, 4] == [row["step"] for row in trace[1]]
    assert [row["params"] for row in trace[0]] == [row["params"] for row in trace[1]]
    assert len({row["params"] for row in trace[0]}) == 4  # the weights did change every step
    assert all(row["samples"] == 8 for row in trace[0] + trace[1])  # each step saw the global batch


def test_loss_equals_one_process_with_the_global_batch(ddp_run):
    run, trace = ddp_run["run"], ddp_run["trace"]
    distributed = [row["loss"] for row in trace[0]]
    assert [row["loss"] for row in trace[1]] == distributed  # both ranks report the global batch's loss
    single = one_process_losses(run, 4)
    torch.testing.assert_close(torch.tensor(distributed), torch.tensor(single), rtol=1e-5, atol=0)


def test_only_rank0_writes_the_run_folder_and_prints(ddp_run):
    run, trace, logs = RunDir(ddp_run["run"]), ddp_run["trace"], ddp_run["logs"]
    assert [row["writes"] for row in trace[0]] == [True] * 4 and [row["writes"] for row in trace[1]] == [False] * 4
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]  # one line per step, not one per rank
    assert [p.name for p in run.list_checkpoints()] == ["step_0000002.pt", "step_0000004.pt"]
    assert sorted(p.name for p in run.samples.glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    config = run.read_config()
    assert (config["batch_size"], config["world_size"], config["global_batch_size"]) == (4, 2, 8)
    assert "batch 4 per process × 2 processes = 8" in describe_run(ddp_run["run"])
    state = load_checkpoint(run.latest_checkpoint())
    assert not any(k.startswith("module.") for k in state["model"]) and state["config"]["world_size"] == 2
    err0 = rank_log(logs, 0)
    assert "Finished 4 steps" in err0 and "2 processes (gloo): global batch 8" in err0
    assert rank_log(logs, 1).strip() == "" and rank_log(logs, 1, "stdout").strip() == ""


def test_a_distributed_run_resumes_on_two_processes_or_one_and_opens_anywhere(ddp_run, tmp_path):
    single = one_process_losses(ddp_run["run"], 6)
    two, one = tmp_path / "two", tmp_path / "one"
    shutil.copytree(ddp_run["run"], two)
    shutil.copytree(ddp_run["run"], one)
    (tmp_path / "imgs").symlink_to(ddp_run["tmp"] / "imgs")  # the run names its data relative to where it ran

    r, logs = torchrun(tmp_path, "train", "--resume", "two", "--steps", 6, probe=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Resuming two from step_0000004.pt" in rank_log(logs, 0) and rank_log(logs, 1).strip() == ""
    resumed = [row["loss"] for row in RunDir(two).read_metrics()]
    torch.testing.assert_close(torch.tensor(resumed), torch.tensor(single), rtol=1e-5, atol=1e-6)
    assert RunDir(two).latest_checkpoint().name == "step_0000006.pt"

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # one process takes over the distributed checkpoint, keeping the global batch of 8
        cfg = load_run_config(one)
        cfg.steps = 6
        trainer = Trainer(cfg, one, resume=True)
        rest = [e.loss for e in trainer.run() if isinstance(e, StepEvent)]
    finally:
        os.chdir(cwd)
    assert (trainer.config.batch_size, trainer.config.world_size) == (8, 1)
    torch.testing.assert_close(torch.tensor(rest), torch.tensor(single[4:]), rtol=1e-5, atol=0)

    loaded = open_run(two)
    assert loaded.step == 6 and loaded.config.world_size == 2 and loaded.handle.shape == ImageShape(1, 8)
    assert cli_main(["sample", str(two), "--n", "2", "--steps", "2", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()


def test_a_conditional_run_trains_on_two_processes_as_on_one_with_the_global_batch(tmp_path):
    for name in ("cats", "dogs"):
        write_image_folder(tmp_path / "pets" / name, n=4, size=8)
    (tmp_path / "settings.toml").write_text(SETTINGS, encoding="utf-8")
    r, _ = torchrun(tmp_path, "train", "pets", "--config", "settings.toml", "--out", "run", "--steps", 3,
                    "--conditional", "--cond-dropout", 0.4, "--checkpoint-every", 3)
    assert r.returncode == 0, r.stderr[-3000:]
    trace = read_trace(tmp_path / "trace.jsonl")
    assert [row["params"] for row in trace[0]] == [row["params"] for row in trace[1]]
    assert load_run_config(tmp_path / "run").class_names == ["cats", "dogs"]
    single = one_process_losses(tmp_path / "run", 3)  # the labels and their null-class coins included
    torch.testing.assert_close(torch.tensor([row["loss"] for row in trace[0]]), torch.tensor(single), rtol=1e-5,
                               atol=0)


def test_a_budget_in_minutes_gives_every_rank_rank0_s_fitted_steps(tmp_path):
    write_image_folder(tmp_path / "imgs", n=6, size=8)
    settings = SETTINGS.replace("warmup_steps = 1", "warmup_steps = 10").replace('lr_decay = "constant"', "")
    (tmp_path / "settings.toml").write_text(settings, encoding="utf-8")
    r, logs = torchrun(tmp_path, "train", "imgs", "--config", "settings.toml", "--out", "run", "--minutes", 0.01,
                       "--checkpoint-every", 10**6, "--preview-every", 10**6)
    assert r.returncode == 0, r.stderr[-3000:]
    trace = read_trace(tmp_path / "trace.jsonl")
    fitted = load_run_config(tmp_path / "run").steps
    assert 10 < fitted < 10**6 and [row["step"] for row in trace[0]] == [row["step"] for row in trace[1]]
    assert trace[0][-1]["step"] == fitted and trace[0][-1]["params"] == trace[1][-1]["params"]
    assert f"0.01 minutes of training: {fitted:,} steps" in rank_log(logs, 0)


def test_a_stuck_rank_ends_the_job_with_a_clear_message(tmp_path):
    write_image_folder(tmp_path / "imgs", n=6, size=8)
    (tmp_path / "settings.toml").write_text(SETTINGS, encoding="utf-8")
    t0 = time.monotonic()
    r, logs = torchrun(tmp_path, "train", "imgs", "--config", "settings.toml", "--out", "run", "--steps", 50,
                       "--dist-timeout", 3, extra_env={"DIFFVIEW_TEST_HANG": "1:2"})
    seconds = time.monotonic() - t0
    assert r.returncode != 0
    assert seconds < 60
    err0 = rank_log(logs, 0)
    assert "diffview: error: rank 0: another rank failed or left; stopping (" in err0, err0[-2000:]
    assert "Traceback" not in err0
    assert max(row["step"] for row in read_trace(tmp_path / "trace.jsonl")[0]) == 2


def test_ctrl_c_on_any_rank_stops_every_rank_at_the_same_step_and_rank0_saves(tmp_path):
    write_image_folder(tmp_path / "imgs", n=6, size=8)
    (tmp_path / "settings.toml").write_text(SETTINGS, encoding="utf-8")
    proc, logs = torchrun(tmp_path, "train", "imgs", "--config", "settings.toml", "--out", "run", "--steps", 100_000,
                          popen=True)
    trace = tmp_path / "trace.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rank1 = [row for row in read_trace(trace)[1] if row["step"] >= 3] if trace.exists() else []
            if rank1:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the job did not reach step 3 within 60 s")
        os.kill(rank1[0]["pid"], signal.SIGINT)  # rank 1 alone: rank 0 must still stop at the same step
        proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0
    by_rank = read_trace(trace)
    last = by_rank[0][-1]["step"]
    assert by_rank[1][-1]["step"] == last >= 3
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint().name == f"step_{last:07d}.pt"
    assert load_checkpoint(run.latest_checkpoint())["step"] == last
    assert f"Stopped at step {last}." in rank_log(logs, 0)
    assert rank_log(logs, 1).strip() == ""


def test_dropout_draws_its_own_masks_on_each_rank_and_a_resume_draws_them_again(tmp_path):
    """Dropout under DDP: every rank its own masks (one global seed gave all the same), the weights still
    in step, and a resume from step 2 ends bit for bit where the uninterrupted job did."""
    write_image_folder(tmp_path / "imgs", n=6, size=8)
    (tmp_path / "settings.toml").write_text(SETTINGS + "dropout = 0.3\n", encoding="utf-8")
    r, _ = torchrun(tmp_path, "train", "imgs", "--config", "settings.toml", "--out", "run", "--steps", 4,
                    "--checkpoint-every", 2, "--preview-every", 100)
    assert r.returncode == 0, r.stderr[-3000:]
    trace = read_trace(tmp_path / "trace.jsonl")
    assert all(row["dropout"] for row in trace[0] + trace[1])
    assert all(a["dropout"] != b["dropout"] for a, b in zip(trace[0], trace[1]))  # each rank its own masks
    assert len({row["dropout"] for row in trace[0]}) == 4  # and new ones every step
    assert [row["params"] for row in trace[0]] == [row["params"] for row in trace[1]]

    shutil.copytree(tmp_path / "run", tmp_path / "again")
    for name in ("step_0000004.pt", "latest"):
        (tmp_path / "again" / "checkpoints" / name).unlink()  # back to the checkpoint at step 2
    r, _ = torchrun(tmp_path, "train", "--resume", "again", "--steps", 4,
                    extra_env={"DIFFVIEW_TEST_TRACE": str(tmp_path / "again.jsonl")})
    assert r.returncode == 0, r.stderr[-3000:]
    again = read_trace(tmp_path / "again.jsonl")
    for rank in (0, 1):
        assert [row["step"] for row in again[rank]] == [3, 4]
        assert [(row["dropout"], row["params"], row["loss"]) for row in again[rank]] == \
            [(row["dropout"], row["params"], row["loss"]) for row in trace[rank][2:]]
    ends = [load_checkpoint(RunDir(tmp_path / name).latest_checkpoint()) for name in ("run", "again")]
    for key in ("model", "ema", "optimizer"):
        assert _flatten(ends[0][key]) == _flatten(ends[1][key]), key


def _flatten(state) -> list:
    """A nested state dict as a list of (path, bytes or value), to compare bit for bit."""
    out = []

    def walk(x, path):
        if isinstance(x, torch.Tensor):
            out.append((path, str(x.dtype), x.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                        if x.numel() else b""))
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{path}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        else:
            out.append((path, repr(x)))

    walk(state, "")
    return out


# ----------------------------------------------------------------------------- the pieces, in one process
def test_each_rank_draws_its_slice_of_what_one_process_draws_for_the_global_batch():
    from helpers import square_dataset

    from diffview.core import make_schedule
    from diffview.core.train.distributed import Distributed

    data = square_dataset(jitter=True)
    data.flip = True
    g = torch.Generator().manual_seed(5)
    x0 = data.sample_batch(8, g)  # one process: indices and flips, then t and noise (training_loss's order)
    t = torch.randint(0, 50, (8,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    for rank in (0, 1):
        d = Distributed(world_size=2, rank=rank)
        gr = torch.Generator().manual_seed(5)
        xr, _ = d.batch_source(data, 4, gr, seed=0)()
        drawn = d.timesteps_and_noise(xr, make_schedule("cosine", 50), gr)
        part = slice(4 * rank, 4 * rank + 4)
        assert torch.equal(xr, x0[part]) and torch.equal(drawn["t"], t[part])
        assert torch.equal(drawn["noise"], noise[part])
        assert torch.equal(gr.get_state(), g.get_state())  # every rank's generator stays in step


def test_streamed_data_is_decoded_by_each_rank_for_its_own_slice_only(tmp_path):
    from diffview.core.data.images import load_image_folder
    from diffview.core.train.batches import _SliceOfGlobalBatches
    from diffview.core.train.distributed import Distributed

    data, _ = load_image_folder(write_image_folder(tmp_path / "imgs", n=6, size=8), image_size=8, max_memory_bytes=1)
    batches = [Distributed(world_size=2, rank=r).batch_source(data, 4, torch.Generator(), seed=3)()[0] for r in (0, 1)]
    g = torch.Generator().manual_seed(3)
    first, second = torch.randint(6, (8,), generator=g), torch.randint(6, (8,), generator=g)
    torch.testing.assert_close(torch.cat(batches), data.get_batch(first))
    sampler = _SliceOfGlobalBatches(6, 3, total=8, lo=4, size=4)  # what rank 1's loader decodes
    assert list(itertools.islice(iter(sampler), 8)) == first[4:].tolist() + second[4:].tolist()


def test_a_resumed_run_keeps_its_global_batch_over_the_processes_present(monkeypatch):
    from diffview.core.train import distributed

    cfg = TrainConfig.from_dict({"batch_size": 4, "world_size": 2, "global_batch_size": 8})
    assert distributed.join(cfg, resume=True) is distributed.SINGLE
    assert (cfg.batch_size, cfg.world_size, cfg.global_batch_size) == (8, 1, 8)
    monkeypatch.setattr(distributed, "from_env", lambda *a: distributed.Distributed(world_size=3))
    with pytest.raises(ValueError, match="global batch of 8, which 3 processes cannot share evenly"):
        distributed.join(cfg, resume=True)
    fresh = TrainConfig(batch_size=4)
    distributed.join(fresh)
    assert (fresh.batch_size, fresh.world_size, fresh.global_batch_size) == (4, 3, 12)
    old = TrainConfig.from_dict({"batch_size": 16, "steps": 10})  # a run from before these fields
    assert (old.world_size, old.global_batch_size, old.dist_timeout) == (1, None, 120) and old.validate()
