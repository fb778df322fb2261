"""SVDQ checkpoint format v1: one .safetensors file with quantized layers and self-describing metadata."""

from gpu.checkpoint.format import (
    FORMAT_VERSION,
    CheckpointMeta,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    verify_checkpoint,
)

__all__ = ["FORMAT_VERSION", "CheckpointMeta", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint",
           "verify_checkpoint"]
