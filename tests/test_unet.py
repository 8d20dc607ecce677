import math

import pytest
import torch

from diffview.core.models.unet import PRESETS, UNet, UNetConfig, build_unet, timestep_embedding, unet_config


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


def test_small_preset_is_the_measured_cpu_default():
    # 24 and 48 channels at 14×14 and 7×7 after 2×2 patches, no attention (benchmarks/README.md)
    cfg = unet_config("small", 1)
    assert (cfg.base_channels, cfg.channel_mults, cfg.patch_size, cfg.attention_levels, cfg.mid_attention) == \
        (24, (1, 2), 2, (), False)
    assert 0.3e6 < build_unet("small", 1, 28).num_parameters() < 0.4e6


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


# ----------------------------------------------------------------------------- Ho et al.'s CIFAR-10 model
def _reference_resblock(block, x, emb, temb_act):
    """DDPM's resnet_block written out: h = conv1(swish(norm1 x)) + dense(swish(temb)), …"""
    F = torch.nn.functional
    h = block.conv1(F.silu(block.norm1(x)))
    h = h + block.temb(F.silu(emb) if temb_act else emb)[:, :, None, None]
    h = block.conv2(F.silu(block.norm2(h)))
    return block.skip(x) + h


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_resblock_applies_silu_before_its_timestep_projection(preset):
    model = UNet(unet_config(preset, 3)).eval()
    from diffview.core.models.unet import ResBlock

    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert blocks and all(b.temb_act for b in blocks)
    b = blocks[0]
    torch.nn.init.normal_(b.conv2.weight, std=0.05)
    x, emb = torch.randn(2, b.conv1.in_channels, 8, 8), 3 * torch.randn(2, b.temb.in_features)
    with torch.no_grad():
        torch.testing.assert_close(b(x, emb), _reference_resblock(b, x, emb, True), rtol=0, atol=0)
        assert not torch.allclose(b(x, emb), _reference_resblock(b, x, emb, False))


def test_checkpoints_saved_before_the_silu_keep_their_function_and_keys():
    cfg = unet_config("tiny", 1)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("temb_act", "ddpm_tf")}  # an old run's entry
    restored = UNetConfig.from_dict(old)
    assert restored.temb_act is False and restored.ddpm_tf is False
    new_model, old_model = UNet(cfg), UNet(restored)
    assert list(new_model.state_dict()) == list(old_model.state_dict())  # the same keys and shapes load
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg


def test_timestep_embedding_is_what_its_comment_says():
    t = torch.tensor([0, 1, 7, 500, 999])
    for dim in (8, 32, 128, 7):
        half = dim // 2
        i = torch.arange(half, dtype=torch.float64)
        args = t.double()[:, None] * torch.exp(-math.log(10_000) * i / half)[None]
        expect = torch.cat([torch.cos(args), torch.sin(args)], 1)  # improved DDPM: [cos, sin], ω_i = P^(−i/h)
        args_ho = t.double()[:, None] * torch.exp(-math.log(10_000) * i / (half - 1))[None]
        expect_ho = torch.cat([torch.sin(args_ho), torch.cos(args_ho)], 1)  # Ho et al.: [sin, cos], P^(−i/(h−1))
        for got, ref in ((timestep_embedding(t, dim), expect), (timestep_embedding(t, dim, ddpm=True), expect_ho)):
            assert got.shape == (5, dim)
            torch.testing.assert_close(got[:, : 2 * half].double(), ref, rtol=0, atol=2e-4)  # float32 args up to 999
            if dim % 2:
                assert (got[:, -1] == 0).all()


def test_ddpm_cifar10_matches_the_diffusers_port_of_hos_model():
    """google/ddpm-cifar10-32's architecture in diffusers (converted from Ho et al.'s TF checkpoint), given our
    weights by name, computes the same function: the same blocks, embedding, padding and GroupNorm ε."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ours = UNet(unet_config("ddpm-cifar10", 3)).eval()
    for p in ours.parameters():  # no zero-initialised layer may hide a difference
        torch.nn.init.normal_(p, std=0.02)
    ref = diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_eps=1e-6,
        norm_num_groups=32, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, attention_head_dim=None,
    ).eval()
    assert ref.num_parameters() == ours.num_parameters() == 35_746_307
    norms = [m for m in ours.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {(m.num_groups, m.eps) for m in norms} == {(32, 1e-6)}  # TF group_norm: 32 groups, ε = 1e-6
    sd = {}

    def res(ours_prefix, ref_prefix):
        for a, b in (("norm1", "norm1"), ("conv1", "conv1"), ("temb", "time_emb_proj"), ("norm2", "norm2"),
                     ("conv2", "conv2"), ("skip", "conv_shortcut")):
            for kind in ("weight", "bias"):
                if f"{ours_prefix}.{a}.{kind}" in own:
                    sd[f"{ref_prefix}.{b}.{kind}"] = own[f"{ours_prefix}.{a}.{kind}"]

    def attn(ours_prefix, ref_prefix):
        for kind in ("weight", "bias"):
            sd[f"{ref_prefix}.group_norm.{kind}"] = own[f"{ours_prefix}.norm.{kind}"]
            qkv = own[f"{ours_prefix}.qkv.{kind}"].chunk(3)
            for name, part in zip(("to_q", "to_k", "to_v"), qkv):
                sd[f"{ref_prefix}.{name}.{kind}"] = part.reshape(part.shape[:2]) if kind == "weight" else part
            proj = own[f"{ours_prefix}.proj.{kind}"]
            sd[f"{ref_prefix}.to_out.0.{kind}"] = proj.reshape(proj.shape[:2]) if kind == "weight" else proj

    own = ours.state_dict()
    for kind in ("weight", "bias"):
        for a, b in (("time_mlp.0", "time_embedding.linear_1"), ("time_mlp.2", "time_embedding.linear_2"),
                     ("conv_in", "conv_in"), ("norm_out", "conv_norm_out"), ("conv_out", "conv_out")):
            sd[f"{b}.{kind}"] = own[f"{a}.{kind}"]
    k = 0
    for level in range(4):
        for i in range(2):
            res(f"down.{k}.res", f"down_blocks.{level}.resnets.{i}")
            if level == 1:
                attn(f"down.{k}.attn", f"down_blocks.{level}.attentions.{i}")
            k += 1
        if level < 3:
            for kind in ("weight", "bias"):
                sd[f"down_blocks.{level}.downsamplers.0.conv.{kind}"] = own[f"down.{k}.down.{kind}"]
            k += 1
    res("mid1", "mid_block.resnets.0")
    attn("mid_attn", "mid_block.attentions.0")
    res("mid2", "mid_block.resnets.1")
    k = 0
    for j, level in enumerate(reversed(range(4))):
        for i in range(3):
            res(f"up.{k}.res", f"up_blocks.{j}.resnets.{i}")
            if level == 1:
                attn(f"up.{k}.attn", f"up_blocks.{j}.attentions.{i}")
            k += 1
        if level > 0:
            for kind in ("weight", "bias"):
                sd[f"up_blocks.{j}.upsamplers.0.conv.{kind}"] = own[f"up.{k}.up.{kind}"]
            k += 1
    assert len(sd) == len(own) + 6 * 4  # 6 attentions: each qkv splits into q, k, v (+2 entries, ×2 kinds)
    ref.load_state_dict(sd, strict=True)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0, 737])
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t), ref(x, t).sample, rtol=1e-5, atol=1e-6)


def test_ddpm_cifar10_preset_is_hos_configuration_and_initialisation():
    cfg = PRESETS["ddpm-cifar10"]
    assert (cfg.base_channels, cfg.channel_mults, cfg.num_res_blocks, cfg.dropout, cfg.groups) == (
        128, (1, 2, 2, 2), 2, 0.1, 32)
    assert cfg.attention_levels == (1,) and 32 // 2 ** cfg.attention_levels[0] == 16  # attention at 16×16
    assert cfg.temb_act and cfg.ddpm_tf and cfg.mid_attention
    from diffview.core.models.unet import Attention, ResBlock

    model = UNet(unet_config("ddpm-cifar10", 3))
    for m in model.modules():  # init_scale=0 layers of the TF code start at zero, every bias at zero
        if isinstance(m, ResBlock):
            assert not m.conv2.weight.any() and m.dropout.p == 0.1
        if isinstance(m, Attention):
            assert not m.proj.weight.any()
            for w in m.qkv.weight.chunk(3):  # Xavier-uniform per C×C dense layer: U(±√(6 / 2C))
                bound = math.sqrt(6 / (2 * w.shape[0]))
                assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            assert not m.bias.any()
    w = model.conv_in.weight  # fan_in = 3·9, fan_out = 128·9
    bound = math.sqrt(6 / (3 * 9 + 128 * 9))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound


def test_the_configs_default_dropout_is_the_presets_own_and_a_number_overrides_it():
    from helpers import square_dataset

    from diffview.core.models.registry import build_model
    from diffview.core.train.config import TrainConfig

    data = square_dataset(n=2, size=32)

    def rates(model):
        return {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

    assert TrainConfig().dropout is None
    assert rates(build_model("ddpm-cifar10", data, dropout=TrainConfig().dropout)) == {0.1}  # Ho et al.'s rate
    assert rates(build_model("ddpm-cifar10", data, dropout=0.0)) == {0.0}
    assert rates(build_model("tiny", data, dropout=None)) == {PRESETS["tiny"].dropout}
    assert rates(build_model("tiny", data, dropout=0.3)) == {0.3}
