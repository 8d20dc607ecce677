"""The precision a run trains in (core/train/precision.py): bf16 autocast where the hardware has it, float32
otherwise or when asked; the weights, the optimiser's state and the loss stay float32 either way."""

import json

import pytest
import torch
from helpers import square_dataset, tiny_config
from test_resume import train

import diffview.core.train.precision as precision
import diffview.core.train.trainer as trainer_module
from diffview.cli import main as cli_main
from diffview.core.train.precision import PRECISIONS, describe_precision, trains_in_bf16
from diffview.core.train.trainer import LogEvent, Trainer

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("kind", ["images", "points"])
@pytest.mark.parametrize("device", [CPU, MPS])
def test_auto_takes_bf16_only_for_images_on_a_cpu_with_native_bf16(monkeypatch, native, kind, device):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert trains_in_bf16("auto", device, kind) is (native and kind == "images" and device == CPU)
    assert trains_in_bf16("bf16", device, kind) is True  # asked for: even where it is emulated
    assert trains_in_bf16("fp32", device, kind) is False


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_asks_the_gpu(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: not supported)  # the CPU's answer is not asked
    assert trains_in_bf16("auto", CUDA, "images") is supported
    assert trains_in_bf16("auto", CUDA, "points") is False


def test_a_bad_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, bf16, fp32"):
        tiny_config(precision="fp16").validate()
    with pytest.raises(ValueError, match="unknown precision 'half'; choose one of auto, bf16, fp32"):
        trains_in_bf16("half", CPU)
    assert PRECISIONS == ("auto", "bf16", "fp32")


def _record_output_dtypes(monkeypatch) -> list:
    """The dtypes the network returned at each training step, as training_loss saw them."""
    seen, original = [], trainer_module.training_loss

    def recording(model, *args, **kwargs):
        def net(*a):
            out = model(*a)
            seen.append(out.dtype)
            return out
        return original(net, *args, **kwargs)
    monkeypatch.setattr(trainer_module, "training_loss", recording)
    return seen


@pytest.mark.parametrize("choice, dtype, words", [("bf16", torch.bfloat16, "bf16 autocast"),
                                                  ("fp32", torch.float32, "float32")])
def test_the_network_trains_in_the_precision_chosen_and_everything_it_keeps_is_float32(
        monkeypatch, tmp_path, choice, dtype, words):
    seen = _record_output_dtypes(monkeypatch)
    trainer = Trainer(tiny_config(steps=4, precision=choice), tmp_path / "run", dataset=square_dataset(jitter=True))
    events = list(trainer.run())
    assert seen == [dtype] * 4
    assert any(isinstance(e, LogEvent) and f"({words});" in e.message for e in events)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in trainer.ema.model.parameters())
    state = trainer.opt.state_dict()["state"]
    assert state and all(v.dtype == torch.float32 for s in state.values() for k, v in s.items() if k != "step")


def test_auto_trains_in_bf16_exactly_where_the_cpu_has_it(monkeypatch, tmp_path):
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
        seen = _record_output_dtypes(monkeypatch)
        list(Trainer(tiny_config(steps=2, device="cpu"), dataset=square_dataset()).run())
        assert seen == [dtype] * 2
        monkeypatch.undo()


def test_bf16_is_deterministic_and_close_to_float32_but_not_it(tmp_path):
    bf16_a, _, _ = train(tiny_config(steps=6, precision="bf16"), tmp_path / "a", dataset=square_dataset(jitter=True))
    bf16_b, _, _ = train(tiny_config(steps=6, precision="bf16"), tmp_path / "b", dataset=square_dataset(jitter=True))
    fp32, _, _ = train(tiny_config(steps=6, precision="fp32"), tmp_path / "c", dataset=square_dataset(jitter=True))
    assert bf16_a == bf16_b  # the same run bit for bit, as a budget's refit and a resume need
    assert bf16_a[0] == fp32[0]  # the output layer starts at zero: the first loss is the target's alone
    gaps = [abs(a - b) / b for a, b in zip(bf16_a[1:], fp32[1:])]  # the same batches and noise: only the arithmetic
    assert all(0 < gap < 1e-3 for gap in gaps), gaps


def test_a_resume_may_change_the_precision_and_records_it(tmp_path):
    run = tmp_path / "run"
    assert cli_main(["train", "--dataset", "shapes", "--image-size", "8", "--model", "tiny", "--steps", "4",
                     "--batch-size", "4", "--checkpoint-every", "2", "--preview-every", "100", "--precision", "bf16",
                     "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    assert cli_main(["train", "--resume", str(run), "--steps", "6", "--precision", "fp32"]) == 0
    assert json.loads((run / "config.json").read_text())["precision"] == "fp32"


def test_describe_precision():
    assert describe_precision(True) == "bf16 autocast" and describe_precision(False) == "float32"
