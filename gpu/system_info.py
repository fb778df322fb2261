"""The GPU this machine has (if any), for the model panel and the execution-path decision."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GpuInfo:
    name: str
    sm: int  # compute capability as major*10+minor, e.g. 89
    total_bytes: int
    free_bytes: int


def detect_gpu() -> GpuInfo | None:
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    free, total = torch.cuda.mem_get_info(0)
    return GpuInfo(torch.cuda.get_device_name(0), major * 10 + minor, total, free)
