"""The UNet denoiser of DDPM (Ho et al. 2020, appendix B), sized by presets.

A sinusoidal timestep embedding, through dense → SiLU → dense, feeds every residual block (each
applies SiLU, then its own dense projection); blocks use GroupNorm and SiLU; the encoder's
activations are concatenated into the decoder (skip connections); optional single-head
self-attention at chosen levels. The same network predicts ε, x_0 or v: only the training
target changes. The ``ddpm-cifar10`` preset is Ho et al.'s CIFAR-10 model as their official
TensorFlow code builds it (``ddpm_tf``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """The architecture. ``channel_mults[i]`` scales ``base_channels`` at level i (resolution S/2^i);
    ``attention_levels`` lists the levels (0 = full resolution) that get self-attention."""

    in_channels: int = 1
    out_channels: int | None = None  # defaults to in_channels
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    dropout: float = 0.0
    groups: int = 8
    mid_attention: bool = True
    patch_size: int = 1  # p > 1: pixel-unshuffle p×p patches into channels first, shuffle back at the end
    temb_act: bool = True  # SiLU before each residual block's timestep projection (False: runs saved before it)
    # Ho et al.'s TF code in its details: [sin, cos] embedding at 10000^(−i/(d/2 − 1)), stride-2 convs padded
    # bottom/right as TF's "SAME", GroupNorm ε = 1e-6, Xavier-uniform init with zeroed output convs.
    # False: improved-diffusion's conventions ([cos, sin] at 10000^(−i/(d/2)), padding 1, ε = 1e-5, torch init).
    ddpm_tf: bool = False
    num_classes: int = 0  # > 0: class-conditional, a learned class embedding added to the timestep's (issue 12)

    @property
    def levels(self) -> int:
        return len(self.channel_mults)

    def min_multiple(self) -> int:
        """Image sizes must be divisible by this so every downsampling halves exactly."""
        return self.patch_size * 2 ** (self.levels - 1)

    def check_image_size(self, image_size: int) -> None:
        m = self.min_multiple()
        if image_size < m or image_size % m:
            ok = [s for s in range(m, 129, m)][:8]
            patches = f" and {self.patch_size}×{self.patch_size} patches" if self.patch_size > 1 else ""
            raise ValueError(
                f"image size {image_size} does not fit a UNet with {self.levels} levels{patches}: it must be a "
                f"multiple of {m} (for example {', '.join(map(str, ok))}, …)"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"], d["attention_levels"] = list(self.channel_mults), list(self.attention_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channel_mults"] = tuple(d.get("channel_mults", cls.channel_mults))
        d["attention_levels"] = tuple(d.get("attention_levels", cls.attention_levels))
        d.setdefault("temb_act", False)  # checkpoints written before the field existed had no SiLU there
        d.setdefault("ddpm_tf", False)
        d.setdefault("num_classes", 0)
        return cls(**d)


PRESETS: dict[str, UNetConfig] = {
    # For tests: a few thousand parameters.
    "tiny": UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), groups=4,
                       mid_attention=False),
    # The CPU default (0.36M parameters), chosen by measured sample quality per CPU minute
    # (benchmarks/README.md): 2×2 patches into channels, then a UNet of 24 and 48 channels at half and quarter
    # resolution, without attention (on 28×28 digits, steps per minute beat width and attention).
    "small": UNetConfig(base_channels=24, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
                        mid_attention=False, patch_size=2),
    # For a GPU.
    "base": UNetConfig(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(1, 2)),
    # Ho et al. 2020's CIFAR-10 model (35.7M parameters, sec. 4 and app. B): ch 128, ch_mult (1, 2, 2, 2),
    # 2 residual blocks per level, attention at 16×16, dropout 0.1, GroupNorm 32, as in their TF code.
    "ddpm-cifar10": UNetConfig(base_channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
                               attention_levels=(1,), dropout=0.1, groups=32, ddpm_tf=True),
}


def unet_config(preset: str, channels: int, **overrides) -> UNetConfig:
    """The preset's architecture for images with ``channels`` channels."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[preset], in_channels=channels, **overrides)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0, ddpm: bool = False) -> torch.Tensor:
    # h = d // 2, ω_i = P^(−i/h): e = [cos(t ω_0) … cos(t ω_{h−1}), sin(t ω_0) … sin(t ω_{h−1})]   (improved DDPM)
    # ddpm: ω_i = P^(−i/(h−1)), e = [sin(t ω), cos(t ω)]   (Ho et al.'s get_timestep_embedding; Vaswani et al. 3.5)
    """Sinusoidal embedding of integer timesteps, shape [B, dim] (an odd dim gets a zero last column)."""
    half = dim // 2
    denom = max(half - 1, 1) if ddpm else half
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / denom)
    args = t.float()[:, None] * freqs[None]
    pair = (torch.sin(args), torch.cos(args)) if ddpm else (torch.cos(args), torch.sin(args))
    emb = torch.cat(pair, dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ClassEmbedding(nn.Module):
    """A learned vector per class, and one for the null class ∅ (label −1), which classifier-free guidance
    trains in place of the label with probability ``cond_dropout`` (Ho & Salimans 2021, Alg. 1)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)  # row num_classes is ∅

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            y = torch.full((batch,), -1, dtype=torch.long, device=device)
        return self.table(torch.where(y < 0, self.num_classes, y).to(device))


def add_class_embedding(class_emb: ClassEmbedding | None, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    # emb = emb_t + emb_y: the class enters everywhere the timestep does   (improved-diffusion's label_emb)
    """The timestep embedding plus the class embedding of ``y``; an unconditional network refuses a label."""
    if class_emb is None:
        if y is not None:
            raise ValueError("this model is not class-conditional: it takes no label (train with --conditional)")
        return emb
    return emb + class_emb(y, emb.shape[0], emb.device).to(emb.dtype)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + dense(SiLU(temb)), GroupNorm → SiLU → dropout → conv, + the input
    (through a 1×1 conv when the channels change): DDPM's resnet_block."""

    def __init__(self, cin: int, cout: int, temb: int, dropout: float, groups: int, temb_act: bool = True,
                 eps: float = 1e-5):
        super().__init__()
        self.temb_act = temb_act
        self.norm1 = nn.GroupNorm(min(groups, cin), cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb) if self.temb_act else emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the spatial positions, with a residual path."""

    def __init__(self, ch: int, groups: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, ch), ch, eps=eps)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(QKᵀ/√c) V
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch, groups = cfg.base_channels, cfg.groups
        temb = 4 * ch
        eps = 1e-6 if cfg.ddpm_tf else 1e-5

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, temb, cfg.dropout, groups, cfg.temb_act, eps)

        def attn(c: int, level: int) -> Attention | None:
            return Attention(c, groups, eps) if level in cfg.attention_levels else None

        # temb = dense(4·ch) → SiLU → dense(4·ch)   (DDPM's model(): temb/dense0, temb/dense1)
        self.time_mlp = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.class_emb = ClassEmbedding(cfg.num_classes, temb) if cfg.num_classes else None
        p2 = cfg.patch_size**2
        self.conv_in = nn.Conv2d(cfg.in_channels * p2, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips, cur = [ch], ch
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(_Stage(res(cur, ch * mult), attn(ch * mult, level)))
                cur = ch * mult
                skips.append(cur)
            if level < cfg.levels - 1:
                down = _SamePadConv(cur, cur, 3, stride=2) if cfg.ddpm_tf else nn.Conv2d(cur, cur, 3, 2, padding=1)
                self.down.append(_Stage(down=down))
                skips.append(cur)

        self.mid1 = res(cur, cur)
        self.mid_attn = Attention(cur, groups, eps) if cfg.mid_attention else None
        self.mid2 = res(cur, cur)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(_Stage(res(cur + skips.pop(), ch * mult), attn(ch * mult, level)))
                cur = ch * mult
            if level > 0:
                self.up.append(_Stage(up=nn.Conv2d(cur, cur, 3, padding=1)))

        self.norm_out = nn.GroupNorm(min(groups, cur), cur, eps=eps)
        self.conv_out = nn.Conv2d(cur, (cfg.out_channels or cfg.in_channels) * p2, 3, padding=1)
        if cfg.ddpm_tf:
            self._init_like_ddpm_tf()
        nn.init.zeros_(self.conv_out.weight)  # start as the zero predictor: a calm first few hundred steps
        nn.init.zeros_(self.conv_out.bias)

    def _init_like_ddpm_tf(self) -> None:
        # Weights Xavier-uniform (TF variance_scaling, fan_avg), biases 0; the last conv of each residual
        # block and each attention output projection start at 0 (init_scale=0 in Ho et al.'s code).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, ResBlock):
                nn.init.zeros_(m.conv2.weight)
            elif isinstance(m, Attention):
                for w in m.qkv.weight.data.chunk(3):  # q, k and v are three C×C dense layers in the TF code
                    nn.init.xavier_uniform_(w)
                nn.init.zeros_(m.proj.weight)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction at (x_t, t); ``y`` the class labels [B] of a conditional network (−1 or None: ∅)."""
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels, ddpm=self.config.ddpm_tf).to(x.dtype))
        emb = add_class_embedding(self.class_emb, emb, y)
        p = self.config.patch_size
        h = self.conv_in(F.pixel_unshuffle(x, p) if p > 1 else x)
        hs = [h]
        for stage in self.down:
            h = stage(h, emb)
            hs.append(h)
        h = self.mid2(self._mid_attn(self.mid1(h, emb)), emb)
        for stage in self.up:
            if stage.res is not None:
                h = torch.cat([h, hs.pop()], dim=1)
            h = stage(h, emb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, p) if p > 1 else out

    def _mid_attn(self, h: torch.Tensor) -> torch.Tensor:
        return self.mid_attn(h) if self.mid_attn is not None else h

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class _SamePadConv(nn.Conv2d):
    """A stride-2 conv padded like TF's "SAME" on even sizes: one row/column at the bottom/right only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 0, 1)))


class _Stage(nn.Module):
    """One step of the UNet's path: a residual block (+ attention), a downsample, or an upsample."""

    def __init__(self, res: ResBlock | None = None, attn: Attention | None = None, down=None, up=None):
        super().__init__()
        self.res, self.attn, self.down, self.up = res, attn, down, up

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.res is not None:
            h = self.res(h, emb)
            return self.attn(h) if self.attn is not None else h
        if self.down is not None:
            return self.down(h)
        return self.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))


def build_unet(preset: str, channels: int, image_size: int, **overrides) -> UNet:
    """A UNet from a preset, checked against the image size before any weight is made."""
    cfg = unet_config(preset, channels, **overrides)
    cfg.check_image_size(image_size)
    return UNet(cfg)


__all__ = ["PRESETS", "ClassEmbedding", "UNet", "UNetConfig", "add_class_embedding", "build_unet", "timestep_embedding",
           "unet_config"]
