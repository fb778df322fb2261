"""Streaming, resumable quantization: one transformer block in memory at a time (see ``engine``)."""
