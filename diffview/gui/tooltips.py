"""Tooltips for the controls whose views do not set their own, each naming the symbol it sets, keyed as the
window's memory keys them ("<tab>/<attribute path>", gui/persistence.py). ``apply_tooltips`` never replaces a
view's own tooltip (those can say more, such as why a control is off)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit

__all__ = ["TOOLTIPS", "TYPES", "apply_tooltips"]

# every control a person sets or presses
TYPES = (QAbstractButton, QComboBox, QAbstractSpinBox, QAbstractSlider, QLineEdit)

TOOLTIPS = {
    # the settings panel
    "Settings/batch": "B: images per training step (a minibatch of x₀ ~ q(x₀))",
    "Settings/channels": "C: the images' channels: 1 (grey), 3 (RGB) or the data's own (auto)",
    "Settings/device": "Where training runs: auto picks CUDA, then MPS, then the CPU",
    "Settings/lr": "η_lr: AdamW's peak learning rate, after the warm-up and before the cosine decay",
    "Settings/model": "f_θ: the UNet preset (its width, depth and attention)",
    "Settings/objective": "What f_θ predicts: ε (DDPM eq. 14), x₀, or v = √ᾱ_t ε − √(1−ᾱ_t) x₀ (Salimans & Ho 2022)",
    "Settings/schedule": "β_t for t = 1…T: linear (Ho et al. 2020), cosine (Nichol & Dhariwal 2021) and others",
    "Settings/steps": "Training steps: one AdamW step on a batch's loss (the objective's MSE) each",
    "Settings/timesteps": "T: the number of diffusion steps of the forward process",
    # the tabs
    "Training/log_y": "Show the loss L on a log axis",
    "Sampling/export_gif": "Save the reverse process x_T → x₀ (x_t beside x̂₀) as a GIF",
    "Sampling/export_png": "Save the final samples x₀ as a PNG grid",
    "Sampling/export_strip": "Save x_t at a few timesteps of the reverse process as one PNG strip",
    "Sampling/n": "N: how many images to sample, each from its own x_T ~ N(0, I)",
    "Sampling/play": "Replay the reverse process frame by frame",
    "Sampling/seed": "The seed of x_T ~ N(0, I) (and of DDPM's z): the same seed, the same samples",
    "Sampling/slider": "Scrub the reverse process: the frame at timestep t, x_t beside x̂₀",
    "Sampling/weights": "θ: the EMA weights (what previews and exports use) or the raw training weights",
    "Bound/all_t": "Compute every L_t−1 for t = 1…T, not a spread of timesteps (slower)",
    "Bound/auto": "Recompute the bound every N training steps while training runs",
    "Bound/button": "Compute L_T + Σ L_t−1 + L_0 (DDPM eq. 5) in bits/dim on the chosen number of images",
    "Bound/every": "N: training steps between two automatic computations of the bound",
    "Bound/images": "How many images x₀ the bound is averaged over",
    "Bound/log_y": "Show the terms L_t in bits/dim on a log axis",
    "Loss from the bound/col": "The pixel's column in the image (x)",
    "Loss from the bound/row": "The pixel's row in the image (y)",
    "Loss from the bound/gaussians.mu_p": "μ_p: the mean of p",
    "Loss from the bound/gaussians.mu_q": "μ_q: the mean of q",
    "Loss from the bound/gaussians.reverse": "Show KL(q ‖ p) instead of KL(p ‖ q): the KL is not symmetric",
    "Loss from the bound/gaussians.sd_p": "σ_p: the standard deviation of p",
    "Loss from the bound/gaussians.sd_q": "σ_q: the standard deviation of q",
    "Samplers/checks.ddim": "DDIM (Song et al. 2021, eq. 12) with η = 0: one network evaluation a step",
    "Samplers/checks.heun": ("Heun's second-order ODE solver (Karras et al. 2022, Algorithm 1): two evaluations a "
                             "step, one on the last"),
    "Samplers/checks.dpmpp-2m": "DPM-Solver++(2M) (Lu et al. 2022): second order from the last two evaluations, one a "
                                "step",
    "Samplers/button": "Run each chosen sampler at each NFE budget from the same x_T",
    "Samplers/export": "Save every sampler's grid at every budget as PNGs",
    "Samplers/n": "N: images per sampler and budget, all from the same x_T",
    "Samplers/seed": "The seed of the shared x_T ~ N(0, I)",
    "Samplers/spacing": ("Which timesteps a short run visits: trailing (Lin et al. 2024), linspace, or Karras et "
                         "al. 2022's spacing in σ"),
    "Guidance/button": "Sample every class y at every guidance scale S from the same x_T",
    "Guidance/steps": "Steps of the chosen sampler for each sample in the sweep",
    "Memorisation/n": "N: samples to draw and compare with their nearest training images",
    "Memorisation/seed": "The seed of the samples' x_T",
    "Memorisation/steps": "Sampling steps of each sample",
    "Memorisation/use_last": "Compare the Sampling tab's last samples instead of drawing new ones",
    "Noise & denoise/button": "Noise x₀ to x_t, then run the reverse process from t back to x₀ (SDEdit)",
    "Noise & denoise/index": "Which training image is x₀",
    "Noise & denoise/open_button": "Use an image file of your own as x₀ (resized and cropped as training images are)",
    "Noise & denoise/seed": "The seed of ε in x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε and of the reverse process",
    "Noise & denoise/with_strip": "Also denoise from 8 noise levels t, side by side",
    "Inversion/a": "The first end: a training image's number, or a seed of x_T",
    "Inversion/b": "The second end: a training image's number, or a seed of x_T",
    "Inversion/button": "Run DDIM up the timesteps from x₀ to x_T (η = 0), then back down, and measure the error",
    "Inversion/export_gif": "Save the interpolation's frames as a GIF",
    "Inversion/export_png": "Save the interpolation's frames as one PNG strip",
    "Inversion/frames": "How many frames, both ends included (slerp of their x_T, w from 0 to 1)",
    "Inversion/index": "Which training image x₀ to invert",
    "Inversion/interp_button": "Slerp between the two ends' x_T (Shoemake 1985) and decode each frame with DDIM",
    "Inversion/mode": "The ends of the interpolation: two training images (inverted first) or two seeds of x_T",
    "Inversion/morph_steps": "DDIM steps used to invert and decode each frame",
    "Inversion/open_button": "Invert an image file of your own (resized and cropped as training images are)",
    "2D diffusion/clear_button": "Remove the points drawn by hand",
    "2D diffusion/langevin_button": "Run annealed Langevin dynamics with s_θ beside DDPM at the same noise levels",
    "2D diffusion/levels": "L: the noise levels t that Langevin anneals through",
    "2D diffusion/source": "The 2D data x₀: a built-in set, or points drawn by hand",
    "2D diffusion/steps": "Training steps of the 2D model",
    "2D diffusion/steps_per_level": "Langevin steps x ← x + (δ_t/2) s_θ + √δ_t z at each level",
    "2D diffusion/stop_button": "Stop the 2D model's training after this step",
    "2D diffusion/train_button": "Train the 2D model (an MLP ε_θ) on the points",
    "2D diffusion/lang_panel.slider": "Scrub Langevin's levels, from the noisiest to t = 0",
    "2D diffusion/traj_panel.slider": "Scrub the reverse trajectories from x_T to x₀",
    "2D diffusion/lang_panel.player.play": "Play Langevin's levels",
    "2D diffusion/traj_panel.player.play": "Play the reverse trajectories",
}


def apply_tooltips(controls: dict) -> list[str]:
    """Give each control in ``controls`` (key → widget) its tooltip where it has none; returns the keys of the
    controls that still have none (a test keeps this empty)."""
    bare = []
    for key, widget in controls.items():
        if not widget.toolTip():
            if key in TOOLTIPS:
                widget.setToolTip(TOOLTIPS[key])
            else:
                bare.append(key)
    return bare
