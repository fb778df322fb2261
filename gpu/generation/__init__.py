"""Generation service: load a model (diffusers folder or SVDQ file), generate images, write PNGs."""
