"""Benchmarks run on the GPU machine (``python main.py bench ...``)."""

FULL_SIZE_MIN_STEPS = 10  # a full-size bench flux times at least this many steps (fewer: noise, not a median)
