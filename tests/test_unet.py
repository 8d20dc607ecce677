import pytest
import torch

from diffview.core.unet import PRESETS, UNet, build_unet, timestep_embedding, unet_config


@pytest.mark.parametrize("preset, size", [("tiny", 8), ("tiny", 28), ("tiny", 30), ("small", 28), ("small", 32),
                                          ("small", 12), ("base", 16)])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_matches_input(preset, size, channels):
    model = build_unet(preset, channels, size)
    x = torch.randn(2, channels, size, size)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape


def test_patched_unet_shape():
    model = build_unet("tiny", 3, 16, patch_size=2)
    x = torch.randn(2, 3, 16, 16)
    assert model(x, torch.tensor([3, 4])).shape == x.shape


def test_ddpm_cifar10_preset_has_the_papers_parameter_count():
    model = UNet(unet_config("ddpm-cifar10", 3))
    assert model.num_parameters() == 35_746_307  # "35.7M parameters" (Ho et al. 2020, sec. 4)


def test_small_preset_is_about_one_million_parameters():
    n = build_unet("small", 1, 28).num_parameters()
    assert 0.5e6 < n < 1.5e6


@pytest.mark.parametrize("preset, size, multiple", [("small", 30, 4), ("small", 2, 4), ("ddpm-cifar10", 28, 8)])
def test_impossible_size_is_a_clear_error(preset, size, multiple):
    with pytest.raises(ValueError, match=f"image size {size} does not fit .* multiple of {multiple}"):
        build_unet(preset, 1, size)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'huge'.*tiny, small, base"):
        build_unet("huge", 1, 28)


def test_timestep_embedding_distinguishes_timesteps():
    e = timestep_embedding(torch.tensor([0, 1, 500, 999]), 32)
    assert e.shape == (4, 32)
    assert torch.cdist(e, e).fill_diagonal_(1).min() > 0.1
    assert timestep_embedding(torch.tensor([1]), 7).shape == (1, 7)


def test_model_depends_on_t_and_starts_as_zero_predictor():
    model = build_unet("tiny", 1, 8)
    x = torch.randn(3, 1, 8, 8)
    assert model(x, torch.tensor([1, 2, 3])).abs().max() == 0  # zero-initialised output layer
    torch.nn.init.normal_(model.conv_out.weight)
    a, b = model(x, torch.tensor([1, 1, 1])), model(x, torch.tensor([900, 900, 900]))
    assert not torch.allclose(a, b)


def test_presets_are_consistent():
    for name, cfg in PRESETS.items():
        assert all(0 <= lvl < cfg.levels for lvl in cfg.attention_levels), name
