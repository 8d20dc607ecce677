"""Classifier-free guidance (Ho & Salimans 2021): one network, conditional and unconditional.

A class-conditional denoiser is called ``model(x_t, t, y)`` with ``y`` a LongTensor [B] of class
indices, where −1 (``NULL_LABEL``) is the null class ∅ that training substitutes for the label with
probability ``cond_dropout``; ``y`` None means ∅ for the whole batch. Guidance at scale S combines
the two predictions as diffusers' ``guidance_scale`` does:

    ε̃ = ε_u + S (ε_c − ε_u)        S = 0: the unconditional model, S = 1: the conditional one,
                                     S > 1: guided (Ho & Salimans 2021, eq. 6 with w = S − 1)

For the x_0 and v objectives the model's output is guided the same way, directly. At a fixed x_t and
t each of ε, x_0 and v is an affine function of the others (x̂_0 = (x_t − √(1−ᾱ) ε)/√ᾱ,
v = (√ᾱ x_t − x̂_0)/√(1−ᾱ)), and an affine map preserves ε_u + S (ε_c − ε_u), whose weights 1 − S and S
sum to one; so guiding the output is guiding ε, with no conversion to round off (tests/test_guidance.py
checks it). Clipping x̂_0 comes after, on the guided prediction. A learned variance is not guided: the
conditional pass's is used, as in GLIDE (Nichol et al. 2022).
"""

from __future__ import annotations

import torch

NULL_LABEL = -1  # the null class ∅: "no label", the unconditional model


def cfg_combine(out_u: torch.Tensor, out_c: torch.Tensor, scale: float) -> torch.Tensor:
    # ε̃ = ε_u + S (ε_c − ε_u)   (Ho & Salimans 2021, eq. 6; S = 1 + w)
    """The guided prediction; exactly ``out_u`` at S = 0 and exactly ``out_c`` at S = 1 (torch.lerp)."""
    return torch.lerp(out_u, out_c, float(scale))


def is_conditional(model) -> bool:
    """Whether ``model`` takes a class label: its ``num_classes`` (a diffview network's) is above 0."""
    return int(getattr(model, "num_classes", 0) or 0) > 0


def label_tensor(label: torch.Tensor | int, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``label`` as a LongTensor [batch]: one class index for every sample, or one per sample."""
    y = torch.as_tensor(label, dtype=torch.long, device=device).reshape(-1)
    if y.numel() == 1:
        y = y.expand(batch)
    if y.numel() != batch:
        raise ValueError(f"got {y.numel()} labels for a batch of {batch}")
    return y


class Guided:
    """``model`` as a plain ``(x_t, t) → output`` callable that samples the class ``label`` guided at
    ``scale``: any sampler takes it as it takes an unconditional model.

    For S ∉ {0, 1} the conditional and the unconditional pass run as one doubled batch; S = 1 needs only
    the conditional pass and S = 0 only the unconditional one (both give what the combination gives)."""

    def __init__(self, model, label: torch.Tensor | int, scale: float = 1.0, batch: int | None = None):
        if not is_conditional(model):
            raise ValueError("this model is not class-conditional: it was trained without labels, so it has no "
                             "class to guide towards (train with --conditional)")
        self.model, self.scale = model, float(scale)
        y = torch.as_tensor(label, dtype=torch.long).reshape(-1)
        self.label = y if batch is None else label_tensor(y, batch)
        bad = [int(v) for v in self.label if not NULL_LABEL <= int(v) < model.num_classes]
        if bad:
            raise ValueError(f"label {bad[0]} lies outside 0..{model.num_classes - 1} (the model's classes)")

    @property
    def variance_type(self) -> str:
        return getattr(self.model, "variance_type", "fixed_small")

    def _y(self, x: torch.Tensor) -> torch.Tensor:
        return label_tensor(self.label, x.shape[0], x.device)

    def parts(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(out_c, out_u): the conditional and the unconditional output at (x_t, t), from one doubled batch."""
        y = self._y(x)
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NULL_LABEL)]))
        out_c, out_u = out.chunk(2)
        return out_c, out_u

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, self._y(x))
        if self.scale == 0.0:
            return self.model(x, t, None)
        out_c, out_u = self.parts(x, t)
        return cfg_combine(out_u, out_c, self.scale)

    def with_variance(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the guided prediction, the conditional pass's variance output) for a learned-variance model."""
        y = self._y(x)
        if self.scale == 1.0:
            return self.model.with_variance(x, t, y)
        y2 = torch.cat([y, torch.full_like(y, NULL_LABEL)])
        out, var = self.model.with_variance(torch.cat([x, x]), torch.cat([t, t]), y2)
        out_c, out_u = out.chunk(2)
        return cfg_combine(out_u, out_c, self.scale), var.chunk(2)[0]


def guided(model, label: torch.Tensor | int, scale: float = 1.0, batch: int | None = None) -> Guided:
    """``model`` guided towards ``label`` at scale S (see :class:`Guided`)."""
    return Guided(model, label, scale, batch)


__all__ = ["NULL_LABEL", "Guided", "cfg_combine", "guided", "is_conditional", "label_tensor"]
