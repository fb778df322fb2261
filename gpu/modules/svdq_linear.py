"""``SVDQLinear``: a drop-in ``nn.Linear`` replacement holding an SVDQuant-quantized layer.

Buffers (canonical, kernel-independent layout; also the tensor names in SVDQ checkpoints):

    qweight        uint8 [N, K/2] packed 4-bit codes (int8 [N, K] for 8-bit weights)
    wscales        [N, K/group]   16-bit (or float8_e4m3fn for FP4 formats) weight group scales
    wscale_global  fp32 []        NVFP4 weights only
    ascale_global  fp32 []        NVFP4 activations only (static, from calibration)
    smooth         [K]            16-bit smoothing vector lambda (layers with ``spec.smooth``)
    lora_down      [K, r]         16-bit low-rank down projection L1 (applied to x / lambda)
    lora_up        [N, r]         16-bit low-rank up projection L2
    bias           [N]            16-bit, when the original layer had one

``forward`` runs the fused CUDA kernels when they can serve this layer on this device, else the
PyTorch reference (``gpu.modules.reference``); ``last_path`` says which ran and why.
"""

from __future__ import annotations

import torch
from torch import nn

from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import FP8_ROW, reference_linear, reference_linear_fp8_row
from gpu.quant import QuantizedTensor, get_format, unpack_codes


class SVDQLinear(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        spec: LayerSpec,
        bias: bool = True,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.spec = spec
        self.compute_dtype = dtype
        wfmt = get_format(spec.weight_format)
        n_groups = wfmt.groups(in_features)
        if spec.act_format is not None:
            get_format(spec.act_format).groups(in_features)
        if wfmt.bits == 4:
            if in_features % 2:
                raise ValueError(f"in_features {in_features} must be even for 4-bit weights")
            qweight = torch.zeros(out_features, in_features // 2, dtype=torch.uint8, device=device)
        else:
            qweight = torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        scale_dtype = torch.float8_e4m3fn if wfmt.e4m3_scales else dtype
        self.register_buffer("qweight", qweight)
        self.register_buffer("wscales", torch.zeros(out_features, n_groups, dtype=scale_dtype, device=device))
        if wfmt.global_scale:
            self.register_buffer("wscale_global", torch.ones((), dtype=torch.float32, device=device))
        if spec.act_format is not None and get_format(spec.act_format).global_scale:
            self.register_buffer("ascale_global", torch.ones((), dtype=torch.float32, device=device))
        if spec.smooth:
            self.register_buffer("smooth", torch.ones(in_features, dtype=dtype, device=device))
        if spec.rank > 0:
            self.register_buffer("lora_down", torch.zeros(in_features, spec.rank, dtype=dtype, device=device))
            self.register_buffer("lora_up", torch.zeros(out_features, spec.rank, dtype=dtype, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device))
        else:
            self.bias = None
        self.last_path = "not run yet"

    # -- views of the stored tensors ---------------------------------------------------------------
    def quantized_weight(self, device: torch.device | None = None) -> QuantizedTensor:
        """The residual weight as a QuantizedTensor (codes unpacked): [N, K], on ``device`` (default: where
        the canonical buffers are; after a kernel repack that is host memory, see ``compute_device``)."""
        fmt = get_format(self.spec.weight_format)
        qweight, wscales = self.qweight, self.wscales
        gscale = getattr(self, "wscale_global", None)
        if device is not None and qweight.device != device:
            qweight, wscales = qweight.to(device), wscales.to(device)
            gscale = gscale.to(device) if gscale is not None else None
        return QuantizedTensor(unpack_codes(qweight, fmt), wscales, fmt, gscale)

    @property
    def compute_device(self) -> torch.device:
        """The device the layer computes on. The fused kernels' repack moves ``qweight``/``wscales`` to host
        memory (the kernels read only their packed copy), so ask the buffers that stay."""
        for name in ("smooth", "lora_down", "bias", "qweight"):
            t = getattr(self, name, None)
            if t is not None:
                return t.device
        return self.qweight.device

    def optional(self, name: str) -> torch.Tensor | None:
        return getattr(self, name, None)

    # -- forward -----------------------------------------------------------------------------------
    def forward_reference(self, x: torch.Tensor, act_format: str | None = None) -> torch.Tensor:
        """x: [..., K] 16/32-bit float -> [..., N] in x's dtype, through the PyTorch reference.

        ``act_format`` overrides the stored activation format for execution: ``"fp8_e4m3_row"`` runs an INT4
        W4A4 layer as W4A8 with per-token FP8 activations, the numerics of the Hopper kernels
        (``gpu.modules.reference.reference_linear_fp8_row``); ``"int8_g64"`` the older INT8 variant."""
        lead = x.shape[:-1]
        if act_format == FP8_ROW:
            y = reference_linear_fp8_row(
                x.reshape(-1, self.in_features),
                self.quantized_weight(x.device),
                self.optional("smooth"),
                self.optional("lora_down"),
                self.optional("lora_up"),
                self.bias,
            )
            return y.to(x.dtype).reshape(*lead, self.out_features)
        y = reference_linear(
            x.reshape(-1, self.in_features),
            self.quantized_weight(x.device),
            act_format or self.spec.act_format,
            self.optional("smooth"),
            self.optional("lora_down"),
            self.optional("lora_up"),
            self.bias,
            act_scale_dtype=self.compute_dtype,
            act_global_scale=self.optional("ascale_global"),
        )
        return y.to(x.dtype).reshape(*lead, self.out_features)

    def forward(self, x: torch.Tensor, gelu_from: int | None = None) -> torch.Tensor:
        """x: T [..., K] -> T [..., N]; with ``gelu_from`` (0 <= it <= N), output columns >= it go through
        tanh-GELU, fused into the GEMM epilogue where a kernel runs (FLUX's fc1, and the MLP part of the
        merged single-block projection)."""
        from gpu.runtime.dispatch import run_linear

        return run_linear(self, x, gelu_from)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, {s.kind}, "
            f"method={s.method}, weight={s.weight_format}, act={s.act_format}, rank={s.rank}"
        )
