"""The model handle: what it holds for a run, how it samples (one seed for x_T and every step's noise),
and that opening a run to sample stays clear of the trainer and of import circles."""

import subprocess
import sys

import pytest
import torch
from helpers import square_dataset, tiny_config

from diffview.core.runs.handle import FromRun, ImageShape, PointShape, data_shape
from diffview.core.runs.open import open_run
from diffview.core.sampling import final_sample, iter_sample, noise_from_seed
from diffview.core.train.trainer import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("handle") / "run"
    list(Trainer(tiny_config(steps=4, checkpoint_every=4), root, dataset=square_dataset()).run())
    return root


def test_an_opened_run_holds_a_typed_handle(run_dir):
    run = open_run(run_dir, raw_too=True)
    h = run.handle
    assert (h.shape, h.origin, h.label, h.objective) == (ImageShape(1, 8), FromRun(run_dir, 4), "run at step 4",
                                                         run.config.objective)
    assert h.clip_x0 and h.variance == "fixed_small" and h.sample_shape(3) == (3, 1, 8, 8)
    raw = run.handle_for(ema=False)
    assert raw.model is run.raw_model and raw.model is not h.model and run.handle_for(ema=True) is h
    assert (raw.schedule, raw.shape, raw.label) == (h.schedule, h.shape, h.label)
    only_ema = open_run(run_dir)
    assert only_ema.raw_model is None and only_ema.handle_for(ema=False) is only_ema.handle


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_a_handle_samples_exactly_what_one_seed_for_x_T_and_the_noise_gives(run_dir, sampler, eta):
    h = open_run(run_dir).handle
    ours = list(h.iter_sample(3, sampler=sampler, steps=5, eta=eta, seed=11))
    g = torch.Generator().manual_seed(11)
    x_T = torch.randn(3, 1, 8, 8, generator=g)  # x_T first, then every step's noise from the same generator
    with torch.no_grad():
        theirs = list(iter_sample(h.model, x_T.shape, h.schedule, sampler=sampler, steps=5, eta=eta,
                                  objective=h.objective, x_T=x_T, generator=g))
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        assert a.t == b.t and torch.equal(a.x_t, b.x_t) and torch.equal(a.x_prev, b.x_prev)
    assert torch.equal(h.sample(3, sampler=sampler, steps=5, eta=eta, seed=11), theirs[-1].x_prev)
    x, g_after = noise_from_seed((3, 1, 8, 8), 11)  # the generator comes back past x_T, where the noise starts
    g = torch.Generator().manual_seed(11)
    assert torch.equal(x, torch.randn(3, 1, 8, 8, generator=g)) and torch.equal(g_after.get_state(), g.get_state())


def test_final_sample_stops_before_the_next_model_call():
    calls = []

    def model(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    from diffview.core.schedule import make_schedule

    s = make_schedule("cosine", 20)
    assert final_sample(iter_sample(model, (1, 2), s, sampler="ddim", steps=5), stop=lambda: len(calls) >= 2) is None
    assert len(calls) == 2
    x = final_sample(iter_sample(model, (1, 2), s, sampler="ddim", steps=5, x_T=torch.ones(1, 2)))
    assert x.shape == (1, 2) and len(calls) == 7


def test_points_have_no_image_size_and_are_not_clipped():
    assert data_shape("points", 2) == PointShape(2) and PointShape(2).batch(5) == (5, 2)
    assert data_shape("images", 3, 16) == ImageShape(3, 16) and str(ImageShape(3, 16)) == "3×16×16"
    assert not hasattr(PointShape(2), "size") and not hasattr(PointShape(2), "channels")
    with pytest.raises(ValueError, match="unknown data kind 'video'"):
        data_shape("video", 3, 16)


def test_opening_a_run_to_sample_imports_neither_the_trainer_nor_the_distributed_stack(run_dir):
    ours = ("diffview.core.train.trainer", "diffview.core.train.distributed", "diffview.gui")
    code = ("import sys\nfrom diffview.core.runs.open import open_run\n"
            f"run = open_run({str(run_dir)!r})\nrun.handle.sample(2, steps=2)\n"
            f"print(sorted(m for m in sys.modules if m.startswith({ours!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_diffusers_reader_does_not_import_the_run_opener():
    code = "import sys\nimport diffview.core.runs.diffusers_model\nprint('diffview.core.runs.open' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
