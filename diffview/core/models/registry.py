"""Which network a run trains: a UNet for images, an MLP for 2D points; built, saved and rebuilt here."""

from __future__ import annotations

import torch
from torch import nn

from diffview.core.models.mlp import MLP_PRESETS, MLPConfig, MLPDenoiser, build_mlp
from diffview.core.models.unet import PRESETS, UNet, UNetConfig, build_unet

MODEL_PRESETS = tuple(PRESETS) + tuple(MLP_PRESETS)


def build_model(preset: str, data, dropout: float | None = None, num_classes: int = 0) -> nn.Module:
    """The preset's network for ``data`` (core/data/protocol.py: ImageData or PointData, told apart by
    ``data.kind``), or a clear ValueError.

    ``dropout`` None keeps the preset's own rate; a number overrides it. ``num_classes`` > 0 builds a
    class-conditional network (a class embedding beside the timestep's; core/guidance.py samples it)."""
    if data.kind == "points":
        if preset not in MLP_PRESETS:
            raise ValueError(f"2D points train an MLP: choose model {' or '.join(MLP_PRESETS)}, not {preset!r}")
        return build_mlp(preset, data.dim, num_classes)
    if preset in MLP_PRESETS:
        raise ValueError(f"model {preset!r} is for 2D points; for images choose one of {', '.join(PRESETS)}")
    overrides = {} if dropout is None else {"dropout": dropout}
    return build_unet(preset, data.channels, data.image_size, num_classes=num_classes, **overrides)


def architecture(model: nn.Module) -> dict:
    """The checkpoint entry that rebuilds ``model``: {"unet": …} or {"mlp": …}."""
    return {"mlp" if isinstance(model, MLPDenoiser) else "unet": model.config.to_dict()}


def model_from_architecture(state: dict) -> nn.Module:
    """A fresh network from a checkpoint's architecture entry."""
    if "mlp" in state:
        return MLPDenoiser(MLPConfig.from_dict(state["mlp"]))
    return UNet(UNetConfig.from_dict(state["unet"]))


def model_from_checkpoint(state: dict, ema: bool = True) -> nn.Module:
    """Rebuild the (EMA) model a checkpoint holds, on the CPU, in eval mode."""
    model = model_from_architecture(state)
    model.load_state_dict(state["ema" if ema and "ema" in state else "model"])
    return model.eval()


def fresh_copy(model: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A new CPU network of ``model``'s architecture holding ``weights``, in eval mode."""
    copy_ = type(model)(model.config)
    copy_.load_state_dict(weights)
    return copy_.eval().requires_grad_(False)


def describe_model(model: nn.Module, preset: str) -> str:
    kind = "MLP" if isinstance(model, MLPDenoiser) else "UNet"
    n = sum(p.numel() for p in model.parameters())
    size = f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.1f}k"
    return f"{preset} {kind} ({size} parameters)"


__all__ = ["MODEL_PRESETS", "architecture", "build_model", "describe_model", "fresh_copy", "model_from_architecture",
           "model_from_checkpoint"]
