"""Benchmarks run on the GPU machine (``python main.py bench ...``)."""
