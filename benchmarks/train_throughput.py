"""Training-step throughput of a UNet preset against the machine's measured matmul peak.

Counts the FLOPs of one full training step (forward, backward; the optimizer's elementwise
work is not counted) with ``torch.utils.flop_counter``, times real steps (data batch, loss,
backward, AdamW, EMA), and measures the machine's float32 matrix-multiply rate in the same
run. Prints images/s, achieved GFLOP/s and the ratio to the matmul peak.

    python benchmarks/train_throughput.py                 # the default CPU model, batch 64, 28×28
    python benchmarks/train_throughput.py --preset base --size 32 --channels 3 --device cuda
    python benchmarks/train_throughput.py --device cuda --sweep        # small and base at 32 and 64 px, RGB
    python benchmarks/train_throughput.py --device cuda --sweep --compile

The step runs in the precision the Trainer would pick (``--precision``, default auto: bf16 autocast on a
GPU or a CPU with native bfloat16, core/train/precision.py), with the peak measured in the same dtype,
and AdamW fused where torch has the kernel (core/train/optim.py); on CUDA also channels_last, as the
Trainer runs it there.

    python benchmarks/train_throughput.py --precision fp32     # against --precision bf16 on the same CPU
    python benchmarks/train_throughput.py --adamw loop         # against the fused kernel
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffview.core import make_schedule, training_loss
from diffview.core.models.unet import build_unet
from diffview.core.train.config import TrainConfig
from diffview.core.train.ema import EMA
from diffview.core.train.optim import BETAS, make_adamw
from diffview.core.train.precision import PRECISIONS, trains_in_bf16


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Best-of-``repeats`` GFLOP/s of an n×n×n matrix multiply."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def data_path_ms(args) -> float:
    """Median time to draw one training batch from the built-in digits held in memory."""
    from diffview.core.data.source import load_source

    data, _ = load_source("digits", flip=True)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        data.sample_batch(args.batch, g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=defaults.model)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--precision", choices=PRECISIONS, default=defaults.precision)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model first (not timed)")
    ap.add_argument("--adamw", choices=("trainer", "loop"), default="trainer",
                    help="AdamW as the Trainer builds it (fused where available) or torch's per-tensor loop")
    ap.add_argument("--sweep", action="store_true", help="the small and base presets at 32 and 64 px, 3 channels")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = None
    runs = [(p, s) for p in ("small", "base") for s in (32, 64)] if args.sweep else [(args.preset, args.size)]
    for preset, size in runs:
        if args.sweep:
            args.preset, args.size, args.channels = preset, size, 3
        peak = measure(args, device, defaults, peak)
        print()


def measure(args, device: torch.device, defaults: TrainConfig, peak: float | None) -> float:
    """Time one preset and print its figures; returns the matmul peak (measured once per run)."""
    torch.manual_seed(0)
    bf16 = trains_in_bf16(args.precision, device)
    schedule = make_schedule(defaults.schedule, defaults.timesteps)
    model = build_unet(args.preset, args.channels, args.size).to(device)
    channels_last = args.channels_last or device.type == "cuda"  # the Trainer's choice on CUDA
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if args.compile else model
    ema = EMA(model, defaults.ema_decay)
    opt = make_adamw(model.parameters(), device, lr=1e-4) if args.adamw == "trainer" else \
        torch.optim.AdamW(model.parameters(), lr=1e-4, betas=BETAS, foreach=False)
    data = torch.rand(1024, args.channels, args.size, args.size) * 2 - 1

    def step():
        x0 = data[torch.randint(0, len(data), (args.batch,))].to(device).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            losses, _ = training_loss(net, x0, schedule)
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)

    if args.compile:
        step()  # compile outside the FLOP counter and the timing
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            training_loss(model, data[: args.batch].to(device), schedule)[0].mean().backward()
    flops = counter.get_total_flops()
    opt.zero_grad(set_to_none=True)
    for _ in range(3):
        step()
    sync(device)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    data_ms = data_path_ms(args) if args.size == 28 and args.channels == 1 else None
    achieved = flops / median / 1e9
    if peak is None:
        peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32, 8192 if device.type == "cuda" else 1024)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"device            {where}")
    print(f"model             {args.preset} ({model.num_parameters() / 1e6:.2f}M parameters), "
          f"batch {args.batch}, {args.channels}×{args.size}×{args.size}"
          + (", channels_last" if channels_last else "") + (", torch.compile" if args.compile else ""))
    print(f"AdamW             {'fused' if opt.defaults.get('fused') else 'per-tensor loop'}")
    print(f"FLOPs per step    {flops / 1e9:.1f} GFLOP (forward + backward)")
    print(f"step time         {median * 1000:.1f} ms median of {args.steps} (min {min(times) * 1000:.1f} ms)")
    print(f"throughput        {args.batch / median:.0f} images/s, {1 / median:.2f} steps/s")
    print(f"achieved          {achieved:.1f} GFLOP/s")
    print(f"matmul peak       {peak:.1f} GFLOP/s ({'bf16' if bf16 else 'float32'})")
    print(f"ratio             {achieved / peak:.2f} of peak (target >= 0.50)")
    if data_ms is not None:
        print(f"data path         {data_ms:.2f} ms per batch from the in-memory digits = "
              f"{100 * data_ms / 1000 / median:.1f}% of a step (target < 5%)")
    if device.type == "cuda":
        print(f"GPU memory        {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MB peak allocated")
    return peak


if __name__ == "__main__":
    main()
