"""SVDQuant and its baselines: decompose one linear layer into smoothing, low-rank branch and 4-bit residual."""
