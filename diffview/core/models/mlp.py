"""The denoiser for 2D points: a residual MLP with a sinusoidal timestep embedding.

The same diffusion maths trains it as the UNet (``training_loss``, ``iter_sample``): only the
network differs. Random Fourier features of the input (Tancik et al. 2020) were measured and
did not help on ``moons`` (benchmarks/README.md), so the MLP sees the coordinates alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffview.core.models.unet import ClassEmbedding, add_class_embedding, timestep_embedding


@dataclass(frozen=True)
class MLPConfig:
    dim: int = 2  # coordinates per point
    hidden: int = 128
    blocks: int = 3  # residual blocks
    num_classes: int = 0  # > 0: class-conditional (a learned class embedding added to the timestep's)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MLPConfig":
        return cls(**{"num_classes": 0, **d})


MLP_PRESETS: dict[str, MLPConfig] = {
    "mlp": MLPConfig(),
    "mlp-tiny": MLPConfig(hidden=32, blocks=1),  # for tests
}


class _Block(nn.Module):
    """LayerNorm → SiLU → Linear, plus the timestep embedding, twice, with a residual path."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.emb = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        r = self.fc1(F.silu(self.norm1(h))) + self.emb(emb)
        return h + self.fc2(F.silu(self.norm2(r)))


class MLPDenoiser(nn.Module):
    """model(x_t [B, dim], t [B]) → the prediction (ε, x_0 or v) [B, dim]."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = cfg = config
        self.time_mlp = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
        self.class_emb = ClassEmbedding(cfg.num_classes, cfg.hidden) if cfg.num_classes else None
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg.hidden) for _ in range(cfg.blocks))
        self.norm_out = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        nn.init.zeros_(self.out.weight)  # start as the zero predictor, like the UNet
        nn.init.zeros_(self.out.bias)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction at (x_t, t); ``y`` the class labels [B] of a conditional network (−1 or None: ∅)."""
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.hidden).to(x.dtype))
        emb = add_class_embedding(self.class_emb, emb, y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.norm_out(h)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_mlp(preset: str, dim: int = 2, num_classes: int = 0) -> MLPDenoiser:
    if preset not in MLP_PRESETS:
        raise ValueError(f"unknown 2D model preset {preset!r}; choose one of {', '.join(MLP_PRESETS)}")
    return MLPDenoiser(MLPConfig(**{**MLP_PRESETS[preset].to_dict(), "dim": dim, "num_classes": num_classes}))


__all__ = ["MLP_PRESETS", "MLPConfig", "MLPDenoiser", "build_mlp"]
