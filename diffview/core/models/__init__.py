"""The networks: a UNet for images (:mod:`.unet`), an MLP for 2D points (:mod:`.mlp`), their shared
timestep embedding, and the registry that builds, saves and rebuilds them (:mod:`.registry`).
Models never import the training code."""
