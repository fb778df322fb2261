"""Whole-model execution for quantized diffusion transformers (fused blocks, CUDA graphs)."""
