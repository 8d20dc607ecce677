"""The optimiser (core/train/optim.py): AdamW fused where this torch has the kernel, the per-tensor loop where
it has not, the same update either way, and a resume that steps with this machine's kernel."""

import pytest
import torch
from helpers import square_dataset, tiny_config
from test_resume import train

import diffview.core.train.optim as optim
from diffview.core.io.checkpoint import RunDir, load_checkpoint
from diffview.core.train.optim import BETAS, keep_kernel, make_adamw

CPU = torch.device("cpu")
HAS_FUSED_CPU = optim.fused_adamw_available("cpu")


def test_fused_availability_is_a_real_probe():
    assert optim.fused_adamw_available("no-such-device") is False
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    assert HAS_FUSED_CPU is ((major, minor) >= (2, 4))  # torch 2.4 added the CPU kernel


@pytest.mark.parametrize("available", [True, False])
def test_make_adamw_fuses_only_where_the_kernel_exists(monkeypatch, available):
    if available and not HAS_FUSED_CPU:
        pytest.skip("this torch has no fused CPU AdamW")
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: available)
    opt = make_adamw([torch.nn.Parameter(torch.zeros(3))], CPU, lr=1e-3, weight_decay=0.01)
    assert bool(opt.defaults["fused"]) is available
    assert opt.defaults["betas"] == BETAS and opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 0.01


@pytest.mark.skipif(not HAS_FUSED_CPU, reason="this torch has no fused CPU AdamW")
def test_the_fused_kernel_makes_the_loops_update(monkeypatch):
    """Fifty steps of the same gradients: the fused kernel's weights equal the loop's to float32 rounding."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(64, 9, generator=g), torch.randn(64, generator=g)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(50)]
    weights = {}
    for available in (True, False):
        monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type, a=available: a)
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = make_adamw(params, CPU, lr=2e-3, weight_decay=0.01)
        for step in grads:
            for p, grad in zip(params, step):
                p.grad = grad.clone()
            opt.step()
        weights[available] = [p.detach() for p in params]
    for fused, loop, first in zip(weights[True], weights[False], start):
        assert (fused - first).abs().max() > 1e-2  # they moved
        torch.testing.assert_close(fused, loop, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not HAS_FUSED_CPU, reason="this torch has no fused CPU AdamW")
@pytest.mark.parametrize("saved_fused, here_fused", [(True, False), (False, True)])
def test_a_resume_steps_with_this_machines_kernel(monkeypatch, tmp_path, saved_fused, here_fused):
    """A checkpoint written with one kernel (a GPU's fused AdamW, say) resumes where only the other exists."""
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: saved_fused)
    cfg = tiny_config(steps=12, checkpoint_every=6, precision="fp32")
    first, _, _ = train(cfg, tmp_path, stop_at=6, dataset=square_dataset(jitter=True))
    saved = RunDir(tmp_path).latest_checkpoint()
    assert bool(load_checkpoint(saved)["optimizer"]["param_groups"][0]["fused"]) is saved_fused

    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: here_fused)
    cfg.steps = 12
    resumed, _, done = train(cfg, tmp_path, resume=True, dataset=square_dataset(jitter=True))
    assert done.reason == "finished" and len(resumed) == 6
    state = load_checkpoint(RunDir(tmp_path).latest_checkpoint())
    assert bool(state["optimizer"]["param_groups"][0]["fused"]) is here_fused
    assert state["optimizer"]["param_groups"][0]["foreach"] is None

    # the six resumed steps against an uninterrupted run: the same to the two kernels' rounding
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: saved_fused)
    whole, _, _ = train(tiny_config(steps=12, checkpoint_every=6, precision="fp32"), tmp_path / "whole",
                        dataset=square_dataset(jitter=True))
    assert first == whole[:6]
    assert resumed == pytest.approx(whole[6:], rel=1e-4, abs=1e-6)


def test_keep_kernel_clears_foreach_beside_fused(monkeypatch):
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: True)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], foreach=True)
    keep_kernel(opt, CPU)
    assert opt.param_groups[0]["fused"] is True and opt.param_groups[0]["foreach"] is None
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: False)
    keep_kernel(opt, CPU)
    assert opt.param_groups[0]["fused"] is None


DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("fused", [True, False])
def test_keep_kernel_puts_the_step_counts_where_its_kernel_reads_them(monkeypatch, device, fused):
    # a checkpoint from the loop (step counts on the CPU) resumed fused on a GPU, or the other way round
    monkeypatch.setattr(optim, "fused_adamw_available", lambda device_type: fused)
    p = torch.nn.Parameter(torch.ones(4, device=device))
    opt = torch.optim.AdamW([p])
    p.grad = torch.ones_like(p)
    opt.step()
    opt.state[p]["step"] = torch.tensor(5.0, dtype=torch.float64, device="cpu" if fused else device)
    keep_kernel(opt, device)
    step = opt.state[p]["step"]
    assert step.dtype == torch.float32 and float(step) == 5.0
    assert step.device == (p.device if fused else CPU)
    if fused and not HAS_FUSED_CPU and device == CPU:
        return
    opt.step()  # the kernel it chose steps with them
    assert float(opt.state[p]["step"]) == 6.0
