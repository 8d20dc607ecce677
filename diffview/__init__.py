"""diffview: train a denoising diffusion model and see it work."""

__version__ = "0.1.0"
