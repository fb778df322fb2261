"""The references of the fused FLUX block ops (gpu/modules/fused_ops.py) against diffusers' own modules.

diffusers rounds to 16 bits after every op, the references once at the end, so the two agree within a few
16-bit rounding steps (checked against diffusers), and the references are within half a unit in the last
place (plus fp32 noise) of a float64 evaluation of the same formula (checked against float64): they round
once. On a CPU the dispatching functions run these references, so this also covers the CPU path.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.normalization import AdaLayerNormZero, AdaLayerNormZeroSingle
from diffusers.models.transformers import transformer_flux
from diffusers.models.transformers.transformer_flux import FluxAttention, FluxPosEmbed

from gpu.modules import fused_ops
from gpu.modules.layer_spec import spec_for
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant import dequantize
from gpu.quant.packing import pack_int4

DTYPES = [torch.bfloat16, torch.float16]
MANTISSA = {torch.bfloat16: 7, torch.float16: 10}


def ulp(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Unit in the last place of ``dtype`` at |v| (float64; normal range)."""
    e = torch.floor(torch.log2(v.abs().clamp_min(2.0**-14)))
    return torch.exp2(e - MANTISSA[dtype])


def assert_rounded_once(
    got: torch.Tensor, exact: torch.Tensor, fp32_rel: float = 1e-5, magnitude: torch.Tensor | None = None
) -> None:
    """got (16-bit) is ``exact`` (float64) rounded once: within half an ulp, plus the error of the fp32
    intermediates (which can move a value across a rounding midpoint). That error is relative to the
    magnitude of the terms that were summed (``magnitude``, default |exact|), not to a cancelled result."""
    err = (got.double() - exact).abs()
    bound = 0.5 * ulp(exact, got.dtype) + fp32_rel * (exact.abs() if magnitude is None else magnitude) + 1e-7
    assert (err <= bound).all(), f"max excess {(err - bound).max().item():.3g}"


def assert_within_16bit(got: torch.Tensor, expected: torch.Tensor, steps: float = 4.0) -> None:
    """Agreement with diffusers' multiply-rounded result: a few 16-bit rounding steps of the values'
    scale (each of diffusers' intermediate roundings contributes up to half an ulp)."""
    scale = expected.double().abs().amax().item()
    tol = steps * 2.0 ** -MANTISSA[got.dtype] * scale
    diff = (got.double() - expected.double()).abs().max().item()
    assert diff <= tol, f"max |diff| {diff:.3g} > {tol:.3g}"


def _init(module: torch.nn.Module, gen: torch.Generator, std: float = 0.05) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


# -- layernorm_modulate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,s,c", [(2, 7, 96), (1, 3, 3072)])
def test_layernorm_modulate_matches_adalayernormzero(dtype, b, s, c):
    gen = torch.Generator().manual_seed(c + s)
    norm = _init(AdaLayerNormZero(c), gen, 0.2).to(dtype)
    x = (torch.randn(b, s, c, generator=gen) * 3 + 1).to(dtype)
    temb = torch.randn(b, c, generator=gen).to(dtype)
    expected, *_ = norm(x, emb=temb)
    emb = norm.linear(F.silu(temb))
    shift, scale = emb.chunk(6, dim=1)[:2]  # strided views into [B, 6C], as the fused blocks pass them
    got = fused_ops.layernorm_modulate(x, shift, scale)
    assert got.dtype == dtype and got.shape == x.shape
    assert_within_16bit(got, expected)
    xd = x.double()
    mean = xd.mean(-1, keepdim=True)
    exact = (xd - mean) / torch.sqrt(((xd - mean) ** 2).mean(-1, keepdim=True) + 1e-6)
    exact = exact * (1 + scale.double()[:, None]) + shift.double()[:, None]
    assert_rounded_once(got, exact)


def test_layernorm_modulate_matches_single_and_norm2():
    """AdaLayerNormZeroSingle, and the double blocks' norm2 + MLP modulation, are the same op."""
    gen = torch.Generator().manual_seed(1)
    c = 64
    norm = _init(AdaLayerNormZeroSingle(c), gen, 0.2).to(torch.bfloat16)
    x = torch.randn(2, 5, c, generator=gen).to(torch.bfloat16)
    temb = torch.randn(2, c, generator=gen).to(torch.bfloat16)
    expected, _ = norm(x, emb=temb)
    shift, scale, _ = norm.linear(F.silu(temb)).chunk(3, dim=1)
    assert_within_16bit(fused_ops.layernorm_modulate(x, shift, scale), expected)
    norm2 = torch.nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
    expected2 = norm2(x) * (1 + scale[:, None]) + shift[:, None]
    assert_within_16bit(fused_ops.layernorm_modulate(x, shift, scale), expected2)


def test_layernorm_modulate_rejects_bad_shapes():
    x = torch.zeros(2, 3, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="modulation"):
        fused_ops.layernorm_modulate(x, torch.zeros(2, 8, dtype=torch.bfloat16), torch.zeros(2, 16))


# -- gate_residual ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gate_residual_matches_flux_block(dtype):
    gen = torch.Generator().manual_seed(2)
    b, s, c = 2, 9, 48
    residual = (torch.randn(b, s, c, generator=gen) * 4).to(dtype)
    y = torch.randn(b, s, c, generator=gen).to(dtype)
    gate = torch.randn(b, 3 * c, generator=gen).to(dtype)[:, c : 2 * c]  # a chunk of the modulation output
    expected = residual + gate.unsqueeze(1) * y  # FluxTransformerBlock / FluxSingleTransformerBlock
    got = fused_ops.gate_residual(residual, gate, y)
    assert_within_16bit(got, expected, steps=2.0)
    # exact: IEEE fp32 product, then fp32 sum, rounded once -- the reference is that, bit for bit
    prod = (gate.float()[:, None] * y.float()).double()
    assert torch.equal(got, (residual.double() + prod).float().to(dtype))
    # in place
    res2 = residual.clone()
    out = fused_ops.gate_residual(res2, gate, y, out=res2)
    assert out is res2 and torch.equal(res2, got)


def test_gate_residual_fp16_saturates_and_keeps_nan():
    residual = torch.tensor([[[60000.0, -60000.0, float("nan"), 1.0] * 2]], dtype=torch.float16)
    y = torch.tensor([[[30000.0, 30000.0, 1.0, 1.0] * 2]], dtype=torch.float16)
    gate = torch.tensor([[1.0, -1.0, 1.0, 0.5] * 2], dtype=torch.float16)
    got = fused_ops.gate_residual(residual, gate, y).float()[0, 0, :4]
    assert got[0] == 65504 and got[1] == -65504 and torch.isnan(got[2]) and got[3] == 1.5


# -- qk_norm_rope -----------------------------------------------------------------------------------------


def _rope(s_txt: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FLUX's rotary embedding for S_txt text tokens (ids 0) and an h x w latent grid: cos, sin fp32 [S, 128]."""
    img = torch.zeros(h, w, 3)
    img[..., 1] = torch.arange(h)[:, None]
    img[..., 2] = torch.arange(w)[None, :]
    ids = torch.cat([torch.zeros(s_txt, 3), img.reshape(-1, 3)])
    return FluxPosEmbed(theta=10000, axes_dim=[16, 56, 56])(ids)


def _capture_attention(monkeypatch) -> dict:
    """Record the q, k, v FluxAttnProcessor hands to the attention kernel ([B, S, H, D])."""
    seen: dict = {}

    def fake(query, key, value, **_):
        seen.update(q=query, k=key, v=value)
        return query

    monkeypatch.setattr(transformer_flux, "dispatch_attention_fn", fake)
    return seen


def _perturb_norms(attn: FluxAttention, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            norm = getattr(attn, name, None)
            if norm is not None:
                norm.weight.copy_(1 + 0.3 * torch.randn(norm.weight.shape, generator=gen))


@pytest.mark.parametrize("dtype", DTYPES)
def test_qk_norm_rope_matches_flux_single_attention(dtype, monkeypatch):
    gen = torch.Generator().manual_seed(3)
    heads, d, c, b = 2, 128, 256, 2
    attn = FluxAttention(query_dim=c, heads=heads, dim_head=d, out_dim=c, bias=True, eps=1e-6, pre_only=True)
    _init(attn, gen)
    _perturb_norms(attn, gen)
    attn = attn.to(dtype)
    cos, sin = _rope(3, 2, 4)
    x = torch.randn(b, 11, c, generator=gen).to(dtype)
    seen = _capture_attention(monkeypatch)
    attn(hidden_states=x, image_rotary_emb=(cos, sin))
    qkv = torch.cat([attn.to_q(x), attn.to_k(x), attn.to_v(x)], dim=-1)
    q, k, v = fused_ops.qk_norm_rope(qkv, attn.norm_q.weight, attn.norm_k.weight, cos, sin, heads)
    for got, name in ((q, "q"), (k, "k"), (v, "v")):
        assert got.shape == (b, heads, 11, d)
        assert_within_16bit(got, seen[name].transpose(1, 2))
    assert q.transpose(1, 2).is_contiguous() and k.transpose(1, 2).is_contiguous()  # token-major storage
    assert torch.equal(v, seen["v"].transpose(1, 2))
    assert v.untyped_storage().data_ptr() == qkv.untyped_storage().data_ptr()  # v is read in place, not copied
    # a slice of a wider projection (QKV + MLP fused) gives the same result without a copy
    wide = torch.cat([qkv, torch.randn(b, 11, 40, generator=gen).to(dtype)], dim=-1)
    q2, k2, v2 = fused_ops.qk_norm_rope(wide[..., : 3 * heads * d + 8], attn.norm_q.weight, attn.norm_k.weight,
                                        cos, sin, heads)  # fmt: skip
    assert torch.equal(q2, q) and torch.equal(k2, k) and torch.equal(v2, v)


def test_qk_norm_rope_rounds_once():
    gen = torch.Generator().manual_seed(4)
    heads, d = 3, 128
    qkv = torch.randn(1, 6, 3 * heads * d, generator=gen).to(torch.bfloat16)
    w = (1 + 0.3 * torch.randn(2, d, generator=gen)).to(torch.bfloat16)
    cos, sin = _rope(2, 2, 2)
    q, _, _ = fused_ops.qk_norm_rope(qkv, w[0], w[1], cos, sin, heads)
    t = qkv.double()[..., : heads * d].unflatten(-1, (heads, d))
    n = t / torch.sqrt((t**2).mean(-1, keepdim=True) + 1e-6) * w[0].double()
    rot = torch.stack([-n[..., 1::2], n[..., 0::2]], dim=-1).flatten(-2)
    exact = n * cos.double()[None, :, None] + rot * sin.double()[None, :, None]
    assert_rounded_once(q, exact.transpose(1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_qk_norm_rope_joint_matches_flux_double_attention(dtype, monkeypatch):
    gen = torch.Generator().manual_seed(5)
    heads, d, c, b, s_txt, s_img = 2, 128, 256, 2, 5, 12
    attn = FluxAttention(query_dim=c, heads=heads, dim_head=d, out_dim=c, added_kv_proj_dim=c,
                         context_pre_only=False, bias=True, eps=1e-6)  # fmt: skip
    _init(attn, gen)
    _perturb_norms(attn, gen)
    attn = attn.to(dtype)
    cos, sin = _rope(s_txt, 3, 4)
    img = torch.randn(b, s_img, c, generator=gen).to(dtype)
    txt = torch.randn(b, s_txt, c, generator=gen).to(dtype)
    seen = _capture_attention(monkeypatch)
    attn(hidden_states=img, encoder_hidden_states=txt, image_rotary_emb=(cos, sin))
    qkv_img = torch.cat([attn.to_q(img), attn.to_k(img), attn.to_v(img)], dim=-1)
    qkv_txt = torch.cat([attn.add_q_proj(txt), attn.add_k_proj(txt), attn.add_v_proj(txt)], dim=-1)
    q, k, v = fused_ops.qk_norm_rope_joint(
        qkv_txt, qkv_img, attn.norm_added_q.weight, attn.norm_added_k.weight, attn.norm_q.weight,
        attn.norm_k.weight, cos, sin, heads,
    )  # fmt: skip
    for got, name in ((q, "q"), (k, "k"), (v, "v")):
        assert got.shape == (b, heads, s_txt + s_img, d) and got.transpose(1, 2).is_contiguous()
        assert_within_16bit(got, seen[name].transpose(1, 2))


def test_qk_norm_rope_rejects_bad_shapes():
    w = torch.ones(128)
    with pytest.raises(ValueError, match="qkv"):
        fused_ops.qk_norm_rope(torch.zeros(1, 4, 3 * 128), w, w, torch.zeros(4, 128), torch.zeros(4, 128), 2)
    with pytest.raises(ValueError, match="rope"):
        fused_ops.qk_norm_rope(torch.zeros(1, 4, 3 * 128), w, w, torch.zeros(3, 128), torch.zeros(3, 128), 1)


# -- w4a16_gemv -------------------------------------------------------------------------------------------


def random_w4a16_layer(k: int, n: int, dtype: torch.dtype, gen: torch.Generator, device: str = "cpu"):
    """An adaLN modulation layer as the quantizer makes it (W4A16 INT4 g64, no smoothing or low rank) with
    random codes in -8..7 (the storage range, so the kernel's nibble decoding is covered), scales and bias."""
    layer = SVDQLinear(k, n, spec_for("svdquant", "int4", 32, "w4a16"), bias=True, dtype=dtype, device=device)
    codes = torch.randint(-8, 8, (n, k), generator=gen, dtype=torch.int8)
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(codes))
        layer.wscales.copy_((torch.rand(n, k // 64, generator=gen) * 0.02 + 0.002).to(dtype))
        layer.bias.copy_((torch.randn(n, generator=gen) * 0.1).to(dtype))
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
def test_w4a16_gemv_reference_is_dequantized_linear(dtype):
    gen = torch.Generator().manual_seed(6)
    layer = random_w4a16_layer(192, 72, dtype, gen)
    assert layer.spec.kind == "W4A16" and fused_ops.gemv_layer_refusal(layer) is None
    x = torch.randn(3, 192, generator=gen).to(dtype)
    w = dequantize(layer.quantized_weight()).double()
    exact = x.double() @ w.T + layer.bias.double()
    got = fused_ops.w4a16_gemv(x, layer)
    assert got.dtype == dtype and got.shape == (3, 72)
    assert_rounded_once(got, exact)
    assert layer.last_path.startswith("PyTorch reference (device is CPU")
    assert torch.equal(fused_ops.w4a16_gemv(x[0], layer), got[0])  # 1-D input


def test_gemv_layer_refusals():
    gen = torch.Generator().manual_seed(7)
    w4a4 = SVDQLinear(128, 64, spec_for("svdquant", "int4", 16, "w4a4"))
    assert "W4A16 INT4 only" in fused_ops.gemv_layer_refusal(w4a4)
    nf4 = SVDQLinear(128, 64, spec_for("nf4", "int4", 0, "w4a16"))
    assert "W4A16 INT4 only" in fused_ops.gemv_layer_refusal(nf4)
    layer = random_w4a16_layer(128, 64, torch.bfloat16, gen)
    layer.register_buffer("lora_down", torch.zeros(128, 16, dtype=torch.bfloat16))  # what a LoRA adds
    assert "low-rank" in fused_ops.gemv_layer_refusal(layer)
    assert fused_ops.gemv_layer_refusal(torch.nn.Linear(4, 4)) == "not an SVDQLinear layer"


def test_the_gemv_op_and_its_backend_give_one_reason(monkeypatch):
    """The dispatcher's GEMV backend and ``w4a16_gemv`` ask one rule (``gemv_refusal``): a layer the GEMV can
    never serve is refused for that, first, by both (the op said "device is CPU" of a LoRA'd layer that the
    backend refused for its low-rank branch); on a Turing GPU whose kernels load, both keep a bf16 layer off the
    fp16-only form and take an fp16 one."""
    from gpu.kernels import backend

    gen = torch.Generator().manual_seed(8)
    cpu = torch.device("cpu")
    lora = random_w4a16_layer(128, 64, torch.bfloat16, gen)
    lora.register_buffer("lora_down", torch.zeros(128, 16, dtype=torch.bfloat16))  # what a LoRA adds
    lora.register_buffer("lora_up", torch.zeros(64, 16, dtype=torch.bfloat16))
    why = backend._gemv_refuses(lora, cpu)
    assert why == fused_ops.gemv_refusal(lora, cpu) and "low-rank" in why
    fused_ops.w4a16_gemv(torch.randn(2, 128, generator=gen).to(torch.bfloat16), lora)
    assert lora.last_path == f"PyTorch reference ({why})"

    turing = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setitem(fused_ops._refusals, (0, "gemv"), None)  # pycuda and the kernel binary are there
    bf16 = random_w4a16_layer(128, 64, torch.bfloat16, gen)
    fp16 = random_w4a16_layer(128, 64, torch.float16, gen)
    no_bf16 = "GPU sm_75 has no bf16 MMA (the W4A16 GEMV takes fp16 there; layer is torch.bfloat16)"
    assert backend._gemv_refuses(bf16, turing) == fused_ops.gemv_refusal(bf16, turing) == no_bf16
    assert backend._gemv_refuses(fp16, turing) is None and fused_ops.gemv_refusal(fp16, turing) is None


# -- dispatch ---------------------------------------------------------------------------------------------


def test_cpu_path_and_constants():
    from gpu.kernels import launch

    assert fused_ops.fused_refusal(torch.device("cpu")) == "device is CPU, not a CUDA GPU"
    assert fused_ops.fused_refusal(torch.device("cpu"), "gemv").startswith("device is CPU")
    assert launch.LN_MAX_C == launch.GEMV_MAX_K == 16384  # the limits fused_ops checks before dispatching


def test_a_family_without_an_architecture_check_is_refused_by_none(monkeypatch):
    """The families' architecture checks, gathered in one table, were looked up by key: a family other than "norm"
    and "gemv" raised KeyError, even on the CPU, which is "not a CUDA GPU" whatever the family. Such a family is
    again turned down by no architecture (here a Pascal GPU, sm_61, which the GEMV's fp16 MMA needs more than)."""
    from gpu.kernels import availability, loader

    assert fused_ops.fused_refusal(torch.device("cpu"), "other") == "device is CPU, not a CUDA GPU"
    monkeypatch.setattr(fused_ops, "_refusals", {})
    monkeypatch.setattr(availability, "pycuda_refusal", lambda: None)  # pycuda and the kernel binary are there
    monkeypatch.setattr(loader, "binary_status", lambda arch: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    pascal = torch.device("cuda", 0)
    assert fused_ops.fused_refusal(pascal, "other") is None and fused_ops.fused_refusal(pascal, "norm") is None
    assert fused_ops.fused_refusal(pascal, "gemv").startswith("GPU sm_61 lacks fp16 mma.sync m16n8k8")


def test_launch_checks_shapes_before_touching_a_gpu():
    from gpu.kernels import launch

    bf = torch.bfloat16
    with pytest.raises(ValueError, match="multiple of 8"):
        launch.layernorm_modulate(torch.zeros(1, 2, 12, dtype=bf), torch.zeros(1, 12, dtype=bf),
                                  torch.zeros(1, 12, dtype=bf))  # fmt: skip
    with pytest.raises(ValueError, match="row stride"):
        launch.gate_residual(torch.zeros(2, 2, 16, dtype=bf), torch.zeros(16, 2, dtype=bf).t(),
                             torch.zeros(2, 2, 16, dtype=bf))  # fmt: skip
    with pytest.raises(ValueError, match="M <= 8"):
        launch.w4a16_gemv(torch.zeros(9, 64, dtype=bf), torch.zeros(8, 32, dtype=torch.uint8),
                          torch.zeros(8, 1, dtype=bf), None)  # fmt: skip
    with pytest.raises(ValueError, match="qkv_a"):
        w = torch.ones(128, dtype=bf)
        launch.qk_norm_rope(torch.zeros(1, 2, 300, dtype=bf), None, w, w, None, None,
                            torch.zeros(2, 128), torch.zeros(2, 128), 1)  # fmt: skip
