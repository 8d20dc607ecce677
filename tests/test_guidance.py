"""Classifier-free guidance (core/guidance.py): the combination, the doubled batch, every objective, every sampler."""

import pytest
import torch

from diffview.core.data.points import PointDataset
from diffview.core.diffusion import predict_x0_eps
from diffview.core.guidance import NULL_LABEL, Guided, cfg_combine, guided
from diffview.core.models.registry import build_model
from diffview.core.sampling import SAMPLERS, iter_sample, sample
from diffview.core.schedule import SCHEDULES, make_schedule
from tests.helpers import square_dataset


def conditional_unet(num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
    """A tiny conditional UNet whose output depends clearly on the class (random, not zero, output layers)."""
    torch.manual_seed(seed)
    model = build_model("tiny", square_dataset(), num_classes=num_classes)
    for p in model.parameters():  # the zero-initialised output would make every class predict 0
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def conditional_mlp(num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("mlp-tiny", PointDataset(torch.randn(16, 2)), num_classes=num_classes)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


def test_cfg_combine_is_exact_at_0_and_1_and_the_papers_formula_between():
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) * 7
    assert torch.equal(cfg_combine(u, c, 0.0), u)
    assert torch.equal(cfg_combine(u, c, 1.0), c)
    for s in (0.5, 2.0, 3.0, 7.5):
        torch.testing.assert_close(cfg_combine(u, c, s), u + s * (c - u), rtol=1e-6, atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("make", [conditional_unet, conditional_mlp])
def test_scale_1_is_exactly_the_conditional_model_and_0_exactly_the_unconditional(make):
    model = make()
    x = torch.randn(6, *((1, 8, 8) if make is conditional_unet else (2,)))
    t = torch.tensor([0, 5, 10, 20, 30, 49])
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(Guided(model, y, 1.0)(x, t), model(x, t, y))
    assert torch.equal(Guided(model, y, 0.0)(x, t), model(x, t, None))
    assert torch.equal(model(x, t, None), model(x, t, torch.full_like(y, NULL_LABEL)))  # None is ∅ for all
    assert not torch.allclose(model(x, t, y), model(x, t, None))  # the class does change the output


@torch.no_grad()
def test_the_doubled_batch_equals_two_separate_passes():
    model = conditional_unet()
    x, t, y = torch.randn(5, 1, 8, 8), torch.tensor([3, 9, 17, 33, 48]), torch.tensor([2, 0, 1, 1, 2])
    out_c, out_u = Guided(model, y, 3.0).parts(x, t)
    torch.testing.assert_close(out_c, model(x, t, y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_u, model(x, t, None), rtol=1e-5, atol=1e-6)
    separate = cfg_combine(model(x, t, None), model(x, t, y), 3.0)
    torch.testing.assert_close(Guided(model, y, 3.0)(x, t), separate, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_the_doubled_batch_is_one_model_call():
    model = conditional_unet()
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    Guided(model, 1, 2.0, batch=4)(torch.randn(4, 1, 8, 8), torch.full((4,), 7))
    assert calls == [8]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_guiding_the_x0_or_v_output_is_guiding_eps_at_every_timestep(schedule):
    """ε, x̂_0 and v are affine in each other at fixed (x_t, t), so guiding any of them is guiding ε."""
    sched = make_schedule(schedule, 1000)
    g = torch.Generator().manual_seed(1)
    t = torch.arange(1000)
    x_t = torch.randn(1000, 4, generator=g, dtype=torch.float64)
    out_u, out_c = torch.randn(1000, 4, generator=g, dtype=torch.float64), torch.randn(1000, 4, generator=g,
                                                                                       dtype=torch.float64)
    for objective in ("x0", "v"):
        for s in (0.0, 1.0, 3.0, 8.0):
            _, eps_of_guided = predict_x0_eps(cfg_combine(out_u, out_c, s), x_t, t, sched, objective, clip_x0=False)
            _, eps_u = predict_x0_eps(out_u, x_t, t, sched, objective, clip_x0=False)
            _, eps_c = predict_x0_eps(out_c, x_t, t, sched, objective, clip_x0=False)
            guided_eps = cfg_combine(eps_u, eps_c, s)
            scale = 1 + guided_eps.abs()  # ε̂ = (x_t − √ᾱ x̂_0)/√(1−ᾱ) is large where 1 − ᾱ is tiny: relative error
            assert ((eps_of_guided - guided_eps).abs() / scale).max() < 1e-9, (objective, s)


@torch.no_grad()
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_samples_the_guided_model(sampler):
    model, sched = conditional_unet(), make_schedule("cosine", 50)
    label = torch.tensor([0, 1, 2, 2])

    def run(m, **kw):
        x_T, gen = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(5)), torch.Generator()
        return sample(m, x_T.shape, sched, sampler=sampler, steps=10, x_T=x_T, eta=1.0,
                      generator=gen.manual_seed(6), **kw)

    direct = run(lambda x, t: model(x, t, label))
    assert torch.equal(run(model, label=label, guidance_scale=1.0), direct)
    assert torch.equal(run(model, label=None), run(lambda x, t: model(x, t, None)))
    guided3 = run(model, label=label, guidance_scale=3.0)
    torch.testing.assert_close(guided3, run(guided(model, label, 3.0)), rtol=0, atol=0)
    assert not torch.allclose(guided3, direct)


@torch.no_grad()
def test_each_step_shows_the_guided_prediction():
    model, sched = conditional_unet(), make_schedule("linear", 40)
    x_T = torch.randn(2, 1, 8, 8)
    g = guided(model, torch.tensor([1, 2]), 5.0)
    for st in iter_sample(model, x_T.shape, sched, sampler="ddim", steps=8, x_T=x_T, label=torch.tensor([1, 2]),
                          guidance_scale=5.0, objective="v"):
        t = torch.full((2,), st.t)
        want, _ = predict_x0_eps(g(st.x_t, t), st.x_t, t, sched, "v", clip_x0=True)
        torch.testing.assert_close(st.x0_pred, want, rtol=1e-5, atol=1e-6)


def test_guidance_refuses_an_unconditional_model_and_labels_it_lacks():
    plain = build_model("tiny", square_dataset())
    with pytest.raises(ValueError, match="not class-conditional"):
        guided(plain, 0, 3.0)
    with pytest.raises(ValueError, match="takes no label"):
        plain(torch.randn(1, 1, 8, 8), torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="label 3 lies outside 0..2"):
        guided(conditional_unet(3), torch.tensor([0, 3]), 2.0)
    with pytest.raises(ValueError, match="2 labels for a batch of 3"):
        guided(conditional_unet(3), torch.tensor([0, 1]), 2.0, batch=3)


def test_an_unconditional_network_is_unchanged_by_the_conditional_code():
    """Building with num_classes=0 draws the same weights as before labels existed (no extra module)."""
    torch.manual_seed(0)
    a = build_model("tiny", square_dataset())
    torch.manual_seed(0)
    b = build_model("tiny", square_dataset(), num_classes=0)
    assert a.class_emb is None and list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert "class_emb.table.weight" in build_model("tiny", square_dataset(), num_classes=4).state_dict()
