"""Device tests of the fused kernels: skipped unless CUDA and pycuda are both present."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch


def gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed"
    if torch.cuda.get_device_capability() < (7, 5):
        return "GPU older than sm_75 (no 4-bit tensor-core MMA)"
    return None


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    reason = gpu_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def gen() -> torch.Generator:
    """A generator with a fresh seed each run (inputs differ between runs), printed for reproduction."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"\n[seed {seed}]")
    return torch.Generator().manual_seed(seed)
