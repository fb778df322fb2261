"""CI: every kernel family in kernels_cu/ compiles for sm_75/80/86/89/90 with no local memory.

One multi-arch nvcc call per .cu file (files in parallel); ``-Xptxas -v`` reports each entry point's
stack frame, spills and registers per architecture, and any stack frame, spill or lmem fails the
test: local memory in these kernels means an array fell out of registers, a silent 2-10x slowdown.
Skipped, with the reason, where nvcc is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels_cu"
ARCHS = ("75", "80", "86", "89", "90")
# Entry points expected in every arch's report (each arch compiles every form; a form whose MMA the arch lacks,
# e.g. m16n8k64 on sm_75, is a trap stub there that launch code never picks: gpu/kernels/mma_forms.py).
ENTRIES = {
    "svdq_quant_lora.cu": ("svdq_quant_lora_int4_bf16", "svdq_quant_lora_int4_fp16",
                           "svdq_quant_lora_int8_bf16", "svdq_quant_lora_int8_fp16"),
    "svdq_w4a4_gemm.cu": ("svdq_w4a4_gemm_bf16", "svdq_w4a4_gemm_fp16", "svdq_w4a4_gemm_k32_bf16",
                          "svdq_w4a4_gemm_k32_fp16"),
    "svdq_w4a8_gemm.cu": ("svdq_w4a8_gemm_bf16", "svdq_w4a8_gemm_fp16"),
    "svdq_fused_norm.cu": ("svdq_layernorm_modulate_bf16", "svdq_layernorm_modulate_fp16",
                           "svdq_gate_residual_bf16", "svdq_gate_residual_fp16",
                           "svdq_qk_norm_rope_bf16", "svdq_qk_norm_rope_fp16"),
    "svdq_w4a16_gemv.cu": ("svdq_w4a16_gemv_bf16", "svdq_w4a16_gemv_fp16", "svdq_w4a16_gemv_grouped_bf16",
                           "svdq_w4a16_gemv_grouped_fp16", "svdq_w4a16_gemv_k8_fp16",
                           "svdq_w4a16_gemv_grouped_k8_fp16"),
    "svdq_w4a8_wgmma.cu": ("svdq_w4a8f_gemm_bf16", "svdq_w4a8f_gemm_fp16", "svdq_w4a8f_gemm_xs_bf16",
                           "svdq_w4a8f_gemm_xs_fp16", "svdq_w4a8f_gemm_wide_bf16", "svdq_w4a8f_gemm_wide_fp16",
                           "svdq_w4a8f_gemm_wide_xs_bf16", "svdq_w4a8f_gemm_wide_xs_fp16", "svdq_w4a8f_quant_bf16",
                           "svdq_w4a8f_quant_fp16", "svdq_w4a8f_quant_long_bf16", "svdq_w4a8f_quant_long_fp16"),
}


def archs_of(cu_name: str) -> tuple[str, ...]:
    """What the packaged fatbin of this family holds: every arch, or its arch-specific target (sm_90a)."""
    from gpu.kernels.loader import fatbin_archs

    return fatbin_archs(cu_name.removesuffix(".cu"), ARCHS)


def _nvcc() -> str | None:
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else shutil.which("nvcc")


def _compile(nvcc: str, cu: Path, out_dir: Path) -> subprocess.CompletedProcess:
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs_of(cu.name)]
    cmd = [nvcc, "-fatbin", "-O3", "-std=c++17", "-lineinfo", *gencode, "-Xptxas", "-v", "-I", str(KERNELS),
           "-o", str(out_dir / (cu.stem + ".fatbin")), str(cu)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def parse_ptxas(report: str) -> dict[tuple[str, str], str]:
    """ptxas -v text -> {(entry, arch): the properties lines of that entry}."""
    found: dict[tuple[str, str], str] = {}
    current = None
    for line in report.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for 'sm_(\w+)'", line)
        if m:
            current = (m.group(1), m.group(2))
            found[current] = ""
        elif current is not None and ("stack frame" in line or "Used" in line):
            found[current] += line.strip() + "\n"
    return found


def local_memory_problems(props: str) -> list[str]:
    problems = []
    for what in ("bytes stack frame", "bytes spill stores", "bytes spill loads", "bytes lmem"):
        for value in re.findall(r"(\d+) " + what, props):
            if int(value):
                problems.append(f"{value} {what}")
    return problems


def test_kernel_sources_listed():
    assert sorted(p.name for p in KERNELS.glob("*.cu")) == sorted(ENTRIES), "update ENTRIES for new kernels"


def test_compile_all_archs_no_local_memory(tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (/usr/local/cuda/bin/nvcc or PATH)")
    sources = sorted(KERNELS.glob("*.cu"))
    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        results = list(pool.map(lambda cu: (cu, _compile(nvcc, cu, tmp_path)), sources))
    failures = []
    for cu, proc in results:
        if proc.returncode != 0:
            failures.append(f"{cu.name}: nvcc failed\n{proc.stderr[-4000:]}")
            continue
        report = parse_ptxas(proc.stdout + proc.stderr)
        # ptxas serialises wgmma (or injects waits) when registers of an in-flight wgmma are touched: a
        # silent loss of the asynchronous tensor-core pipeline
        for line in (proc.stdout + proc.stderr).splitlines():
            if "wgmma.mma_async instructions are serialized" in line or "is injected" in line:
                failures.append(f"{cu.name}: {line.strip()}")
        for entry in ENTRIES.get(cu.name, ()):
            for arch in archs_of(cu.name):
                props = report.get((entry, arch))
                if props is None:
                    failures.append(f"{cu.name}: no ptxas report for {entry} on sm_{arch}")
                    continue
                bad = local_memory_problems(props)
                if bad:
                    failures.append(f"{cu.name}: {entry} sm_{arch}: {', '.join(bad)}")
    # every kernel the launch code names (gpu.kernels.launch._KERNELS, + a dtype suffix) was compiled
    from gpu.kernels.launch import _KERNELS

    compiled = {entry for cu, proc in results for entry, _ in parse_ptxas(proc.stdout + proc.stderr)}
    for family, kernel, _ in _KERNELS.values():
        if not {f"{kernel}_bf16", f"{kernel}_fp16"} & compiled:
            failures.append(f"{family}.cu: launch code names {kernel}_*, which no compiled entry point is")
    assert not failures, "\n".join(failures)


def test_parser_flags_spills():
    text = (
        "ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
        "ptxas info    : Function properties for k\n"
        "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 80 registers, used 1 barriers, 8 bytes cumulative stack size\n"
    )
    props = parse_ptxas(text)[("k", "80")]
    assert local_memory_problems(props) == ["8 bytes stack frame", "4 bytes spill stores", "4 bytes spill loads"]
