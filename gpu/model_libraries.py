"""Importing diffusers and transformers once, from any thread.

Both resolve their public names lazily, on first use, and neither does so safely from two threads at once: the
app's engine thread loading a pipeline while the quantize wizard's thread read a single-file checkpoint failed
with "cannot import name 'FluxTransformer2DModel' from 'diffusers'" (or transformers' 'AutoModel'), shown to the
user as an internal error. The engine's entry points that use them (``GenerationService``, the quantizer's weight
sources) call ``load_model_libraries`` first, whatever thread they run on: the first call resolves the names the
engine uses under one lock, and later lookups find the modules already loaded.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_loaded = False


def load_model_libraries() -> None:
    """Imports diffusers' FLUX classes and transformers' text encoders (seconds, the first time; then nothing)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        from gpu.generation.pipeline_loader import quiet_libraries

        quiet_libraries()  # first: resolving the names below prints transformers' advice on stderr otherwise
        from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel  # noqa: F401
        from transformers import AutoModel, CLIPTextModel, T5EncoderModel  # noqa: F401

        _loaded = True
