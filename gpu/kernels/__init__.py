"""Fused SVDQuant CUDA kernels (sources in ``kernels_cu/``), loaded through the optional pycuda.

Nothing here imports pycuda at module import time: the package must import on machines without CUDA,
pycuda or nvcc, and the dispatcher then reports why the PyTorch reference runs instead.
"""
