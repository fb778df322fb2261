"""Which MMA form of the INT4 W4A4 GEMM and the W4A16 GEMV a GPU runs.

sm_80+ run ``mma.sync`` m16n8k64 (s4) and m16n8k16 (bf16/fp16). Turing (sm_75) has the 4-bit MMA only as
m8n8k32 and the 16-bit one only as fp16 m16n8k8, so there the same kernels issue four m8n8k32 per m16n8k64
(bit-identical integer sums) and two m16n8k8 per m16n8k16 (fp16 only): the ``_k32`` / ``_k8`` entry points of
kernels_cu/svdq_w4a4_gemm.cu and svdq_w4a16_gemv.cu. Light on purpose (torch only): the dispatcher asks it
before any kernel module is loaded, and device tests replace ``uses_turing_mma`` to run the Turing forms on the
GPU they have.
"""

from __future__ import annotations

import torch

TURING = (7, 5)  # the first 4-bit tensor cores
NATIVE = (8, 0)  # m16n8k64 s4 and bf16 MMA


def uses_turing_mma(device: torch.device) -> bool:
    """Whether the INT4 GEMM and the W4A16 GEMV take their Turing forms on the CUDA ``device``."""
    return torch.cuda.get_device_capability(device) < NATIVE


def gemv_dtype_refusal(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the W4A16 GEMV cannot run ``dtype`` on ``device``: its Turing form is fp16 only (no bf16 MMA there).
    None for fp16, for GPUs with the native form, and off CUDA (other checks say why there)."""
    if device.type != "cuda" or dtype == torch.float16 or not uses_turing_mma(device):
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return f"GPU sm_{major}{minor} has no bf16 MMA (the W4A16 GEMV takes fp16 there; layer is {dtype})"
