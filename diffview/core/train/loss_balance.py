"""Adaptive loss weighting: each timestep's loss divided by its running mean, so every t pulls equally.

EDM2 (Karras et al. 2024) learns the log-variance u(σ) of the loss beside the network and minimises

    L = E_σ[ λ(σ)/e^{u(σ)} · E‖D_θ(x_0 + n; σ) − x_0‖² + u(σ) ],

whose optimum is e^{u(σ)} = E[λ(σ)‖D_θ − x_0‖² | σ], the expected loss at σ: at the optimum each noise level's
loss is divided by its own mean. Here that mean is estimated directly, per bin of timesteps, as a running
average of the losses the run has seen (no second network), and the weights are normalised to average 1 over
uniformly drawn t (each bin counted by its span of t), so the learning rate keeps its meaning. With uniform t
every noise level then pulls equally; with ``t_sampling = "lognormal"`` a bin's pull is also its share of the
draws, as EDM intends.

The v-objective's loss is largest at both ends of [0, T), where most of it cannot be learnt (at t → 0 the noise
cannot be told from the image, at t → T the image from the noise), and smallest between: at the end of 5 minutes
on the built-in digits the bins' means run from 0.28 (t < 50) down to 0.048 (t ≈ 350) and up to 0.26 (t ≥ 950),
so the weights run 0.28 → 1.6 → 0.30. Unweighted, the two ends take most of the gradient. Balanced, the same
5 minutes give samples read 0.89–0.90 as often as real digits against 0.83–0.86 (benchmarks/README.md).

The weights at a step come from the means before it; the step's losses (the whole global batch's, the same on
every rank) then update them. The means are part of a checkpoint, so a resume continues bit for bit.
"""

from __future__ import annotations

import torch

ADAPTIVE = "adaptive"  # TrainConfig.loss_weighting's name for it
BINS = 20  # bins of timesteps (fewer when T is smaller)
TINY = 1e-30  # a bin's mean is inverted as at least this, so a damaged or degenerate mean gives no inf
MOMENTUM = 0.99  # each bin's running mean: m ← μ m + (1 − μ) · (this step's mean in the bin); first: its mean


class LossBalance:
    """Running means of the per-sample loss in ``bins`` equal bins of t ∈ [0, T), and the weights they give."""

    def __init__(self, timesteps: int, bins: int = BINS, momentum: float = MOMENTUM):
        if timesteps < 1 or bins < 1 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"bad loss balance: T={timesteps}, bins={bins}, momentum={momentum}")
        self.timesteps, self.bins, self.momentum = timesteps, min(bins, timesteps), momentum
        self.mean = torch.zeros(self.bins, dtype=torch.float64)
        self.seen = torch.zeros(self.bins, dtype=torch.bool)
        self.span = torch.bincount(self.bin_of(torch.arange(timesteps)), minlength=self.bins).to(torch.float64)

    def bin_of(self, t: torch.Tensor) -> torch.Tensor:
        """Each timestep's bin: ⌊t · bins / T⌋."""
        return torch.div(t.long().cpu() * self.bins, self.timesteps, rounding_mode="floor").clamp_(0, self.bins - 1)

    def bin_weights(self) -> torch.Tensor:
        """The weight of each bin now, float64 [bins]."""
        # w_k = (1/m_k) / (Σ_j n_j/m_j / Σ_j n_j) over the bins seen, n_j = bin j's span of t; unseen bins weigh 1
        w = torch.ones(self.bins, dtype=torch.float64)
        seen = self.seen & (self.mean > 0)
        if seen.any():
            inv, span = 1.0 / self.mean[seen].clamp_min(TINY), self.span[seen]
            w[seen] = inv / ((inv * span).sum() / span.sum())
        return w

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        """The weight of each sample's timestep, float64 [B] on the CPU."""
        return self.bin_weights()[self.bin_of(t)]

    @torch.no_grad()
    def observe(self, losses: torch.Tensor, t: torch.Tensor) -> None:
        """Fold one step's per-sample (unweighted) losses at timesteps ``t`` into the running means."""
        b = self.bin_of(t)
        values = losses.detach().to("cpu", torch.float64)
        sums = torch.zeros(self.bins, dtype=torch.float64).index_add_(0, b, values)
        counts = torch.bincount(b, minlength=self.bins).to(torch.float64)
        here = counts > 0
        step_mean = sums[here] / counts[here]
        old = self.seen[here]
        self.mean[here] = torch.where(old, self.momentum * self.mean[here] + (1 - self.momentum) * step_mean,
                                      step_mean)
        self.seen |= here

    def state_dict(self) -> dict:
        return {"timesteps": self.timesteps, "bins": self.bins, "momentum": self.momentum,
                "mean": self.mean.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        mean, seen, momentum = state["mean"], state["seen"], float(state["momentum"])
        if (int(state["timesteps"]), int(state["bins"])) != (self.timesteps, self.bins) or \
                not isinstance(mean, torch.Tensor) or not isinstance(seen, torch.Tensor) or \
                mean.shape != (self.bins,) or seen.shape != (self.bins,) or not torch.isfinite(mean).all() or \
                (mean < 0).any() or not 0.0 <= momentum < 1.0:
            raise ValueError("the loss balance does not match this run's timesteps")
        self.momentum = momentum
        self.mean = mean.to(torch.float64).clone()
        self.seen = seen.to(torch.bool).clone()


__all__ = ["ADAPTIVE", "BINS", "MOMENTUM", "TINY", "LossBalance"]
