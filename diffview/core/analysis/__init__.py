"""Why the model does what it does: small pure functions over a model callable ``model(x_t, t)``
and a NoiseSchedule, built from the core's own mathematics (``predict_x0_eps``, ``langevin_step``,
``vlb_terms``, ``iter_sample``): nothing here re-derives an equation the core already implements.

- :mod:`.bound`: the variational bound by timestep;
- :mod:`.likelihood`: the exact NLL of the probability-flow ODE (Hutchinson's trace, Dormand–Prince);
- :mod:`.derivation`: entropy, cross-entropy and KL of Gaussians, and one pixel's KL term of the bound
  rewritten into DDPM's ε-loss (eqs. 8, 12, 14);
- :mod:`.samplers`: samplers side by side from one x_T;
- :mod:`.score`: the score s_θ = −ε_θ/√(1−ᾱ_t) and annealed Langevin dynamics;
- :mod:`.memorise`: each sample's nearest training images;
- :mod:`.sdedit`: noise an image to t and denoise it (SDEdit);
- :mod:`.inversion`: DDIM inversion x_0 → x_T and back, the reconstruction error by steps, slerp interpolation;
- :mod:`.lab2d`: the 2D tab's computations on points."""
