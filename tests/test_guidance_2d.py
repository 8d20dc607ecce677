"""Classifier-free guidance on 2D points, without Qt: the guided score field is Guided.parts combined (and
exactly the unconditional / conditional field at S = 0 / 1), guided samples come back per class, and a
conditional MLP trained on gaussians8 puts each class's guided samples in its own mode while its
unconditional samples cover all eight."""

import math

import pytest
import torch

from diffview.core.analysis.lab2d import class_samples, score_field, score_grid
from diffview.core.analysis.score import guided_score_from_model, score_from_model
from diffview.core.data.source import load_source
from diffview.core.data.toy2d import GAUSSIANS8_RADIUS, GAUSSIANS8_STD, make_toy_labelled
from diffview.core.diffusion import predict_x0_eps
from diffview.core.guidance import Guided
from diffview.core.models.mlp import build_mlp
from diffview.core.sampling import final_sample, iter_sample
from diffview.core.schedule import make_schedule
from diffview.core.train.config import TrainConfig
from diffview.core.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the tiny MLP's matrices gain nothing from two, and two spin on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_conditional_mlp(classes=3, seed=0):
    torch.manual_seed(seed)
    model = build_mlp("mlp-tiny", num_classes=classes)
    torch.nn.init.normal_(model.out.weight, std=0.5)
    torch.nn.init.normal_(model.out.bias, std=0.5)
    torch.nn.init.normal_(model.class_emb.table.weight, std=1.0)  # classes that differ from each other and from ∅
    return model.eval()


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_guided_score_field_is_guided_parts_and_exact_at_s_0_and_1(objective):
    model, sched, t, k = random_conditional_mlp(), make_schedule("cosine", 100), 37, 2
    grid = score_grid(5)
    tt = torch.full((len(grid),), t)
    out_c, out_u = Guided(model, k).parts(grid, tt)
    eps_c = predict_x0_eps(out_c, grid, tt, sched, objective, clip_x0=False)[1]
    eps_u = predict_x0_eps(out_u, grid, tt, sched, objective, clip_x0=False)[1]
    for S in (0.5, 3.0, 7.5):
        # s̃ = −(ε_u + S (ε_c − ε_u)) / √(1 − ᾱ_t), combined here in ε whatever the objective
        direct = -(eps_u + S * (eps_c - eps_u)) / math.sqrt(1 - float(sched.alphas_cumprod[t]))
        out = score_field(model, sched, objective, t, grid, label=k, guidance_scale=S)
        torch.testing.assert_close(torch.from_numpy(out["guided"]), direct, rtol=1e-4, atol=1e-5)
        assert (out["label"], out["scale"]) == (k, S)
        assert not torch.allclose(torch.from_numpy(out["guided"]), torch.from_numpy(out["score"]), atol=1e-2)
    at0 = score_field(model, sched, objective, t, grid, label=k, guidance_scale=0.0)
    assert torch.equal(torch.from_numpy(at0["guided"]), torch.from_numpy(at0["score"]))  # S = 0: unconditional
    conditional = score_from_model(lambda x, s: model(x, s, torch.full((len(x),), k)), grid, t, sched, objective)
    assert torch.equal(guided_score_from_model(model, grid, t, sched, objective, k, 1.0), conditional)
    assert torch.equal(torch.from_numpy(score_field(model, sched, objective, t, grid, label=k)["guided"]),
                       conditional)  # S = 1 by default: conditional
    assert score_field(model, sched, objective, t, grid)["guided"] is None  # no label: no guided field
    assert score_field(build_mlp("mlp-tiny"), sched, objective, t, grid, label=0)["guided"] is None


def test_class_samples_come_back_per_class_from_one_x_T():
    model, sched = random_conditional_mlp(), make_schedule("cosine", 50)
    out = class_samples(model, sched, "v", n_per_class=40, scale=3.0, steps=10)
    assert out["guided"].shape == out["uncond"].shape == (120, 2) and (out["n"], out["classes"]) == (40, 3)
    assert out["labels"].tolist() == [0] * 40 + [1] * 40 + [2] * 40
    x_T = torch.randn(120, 2, generator=torch.Generator().manual_seed(7))
    guided = final_sample(iter_sample(model, x_T.shape, sched, sampler="ddpm", steps=10, objective="v", x_T=x_T,
                                      clip_x0=False, generator=torch.Generator().manual_seed(8),
                                      label=torch.tensor(out["labels"]), guidance_scale=3.0))
    torch.testing.assert_close(torch.from_numpy(out["guided"]), guided)
    uncond = final_sample(iter_sample(model, x_T.shape, sched, sampler="ddpm", steps=10, objective="v", x_T=x_T,
                                      clip_x0=False, generator=torch.Generator().manual_seed(8)))
    torch.testing.assert_close(torch.from_numpy(out["uncond"]), uncond)
    at0 = class_samples(model, sched, "v", n_per_class=40, scale=0.0, steps=10)
    assert (at0["guided"] == at0["uncond"]).all()  # S = 0 is the unconditional model, the same draws
    assert not (out["guided"] == out["uncond"]).all()
    with pytest.raises(ValueError, match="not class-conditional"):
        class_samples(build_mlp("mlp-tiny"), sched, "v", n_per_class=4, steps=2)


def test_guided_gaussians8_samples_land_in_their_mode_and_unconditional_ones_cover_all(capsys):
    # 400 steps of a conditional MLP: 7–10 s of training on one idle thread, 18 s on a busy 2-core machine (the
    # whole test 10–25 s). Seeds 0, 1, 2 gave 100% of every class within 3σ at S = 3 (98–99% at S = 1) and at
    # least 9% of the unconditional samples in each mode.
    data = load_source("gaussians8")[0]
    cfg = TrainConfig.for_dataset("gaussians8", conditional=True, steps=400, threads=1, preview_every=10**6,
                                  checkpoint_every=10**6)
    trainer = Trainer(cfg, None, dataset=data)
    done = list(trainer.run())[-1]
    assert done.reason == "finished", done.message
    model = trainer.snapshot_model(ema=True)
    assert model.num_classes == 8 and cfg.class_names == [str(k) for k in range(8)]
    # the modes in standardised coordinates: the data is divided by the mixture's per-axis std √(R²/2 + s²)
    scale = math.sqrt(GAUSSIANS8_RADIUS**2 / 2 + GAUSSIANS8_STD**2)
    angle = torch.arange(8) * math.pi / 4
    centres = GAUSSIANS8_RADIUS / scale * torch.stack([angle.cos(), angle.sin()], 1)
    sigma = GAUSSIANS8_STD / scale  # each mode's std
    points, labels, _ = make_toy_labelled("gaussians8")  # class k's points lie about centre k
    torch.testing.assert_close(torch.stack([points[labels == k].mean(0) for k in range(8)]), centres, atol=0.02,
                               rtol=0)
    n = 250
    y = torch.arange(8).repeat_interleave(n)
    x = final_sample(iter_sample(model, (8 * n, 2), trainer.schedule, sampler="ddpm", steps=50, objective=cfg.objective,
                                 clip_x0=False, label=y, guidance_scale=3.0,
                                 generator=torch.Generator().manual_seed(1)))
    fractions = [float(((x[y == k] - centres[k]).norm(dim=1) < 3 * sigma).float().mean()) for k in range(8)]
    assert min(fractions) >= 0.95, fractions
    x = final_sample(iter_sample(model, (8 * n, 2), trainer.schedule, sampler="ddpm", steps=50, objective=cfg.objective,
                                 clip_x0=False, generator=torch.Generator().manual_seed(2)))
    shares = torch.bincount(torch.cdist(x, centres).argmin(1), minlength=8).float() / len(x)
    assert shares.min() >= 0.05, shares
    with capsys.disabled():
        print(f"\ngaussians8: guided (S = 3) samples within 3σ of their class's mode {[round(f, 3) for f in fractions]}"
              f"; unconditional samples' share per mode {[round(float(s), 3) for s in shares]}")
