"""Nibble Studio engine: SVDQuant quantization, the SVDQ checkpoint format, kernels and generation.

Headless by design: nothing under ``gpu`` imports Qt, so the CLI, the tests and the desktop app all
drive the same engine.
"""

from gpu.version import APP_NAME, __version__

__all__ = ["APP_NAME", "__version__"]
