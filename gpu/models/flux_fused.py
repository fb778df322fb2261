"""Fused execution of an SVDQ-quantized diffusers ``FluxTransformer2DModel``, keeping the FluxPipeline interface.

``fuse_flux_transformer(model)`` rewrites the model in place:

1. Linears that read the same activation become one ``SVDQLinear`` (one activation quantization, one GEMM):
   double blocks' image Q/K/V -> ``attn.to_qkv`` [D -> 3D] and text Q/K/V -> ``attn.to_added_qkv`` (diffusers'
   own names for fused projections); single blocks' Q/K/V + ``proj_mlp`` -> ``proj_qkv_mlp`` [D -> 3D + 4D]
   (3072 -> 21504 in FLUX.1). This is exact only when the members share the smoothing vector: the quantized
   activations are a function of ``x / smooth`` alone, so they are then the same codes for every member, and
   the merged layer is the members' rows stacked (codes, group scales, bias), one ``smooth``, low-rank down
   projections concatenated along r and up projections block-diagonal (rank = sum of the members' ranks).
   Groups whose smoothing differs (a per-layer calibrated checkpoint) stay separate; so do groups whose
   low-rank branch the serving kernels cannot fuse (``gpu.kernels.rank_limits``: e.g. wider than 240 rank
   columns in one 128-channel tile on Hopper), where the single blocks fall back to fusing Q/K/V only. What
   happened is in ``fusion_report`` (module level, last call) and ``model.fusion_report``.
2. Blocks run the elementwise chain through ``gpu.modules.fused_ops`` (``layernorm_modulate``,
   ``gate_residual``, ``qk_norm_rope``, ``w4a16_gemv`` for the adaLN linears; ``use_ops`` gives one model
   another op set with the same API) and attention through ``F.scaled_dot_product_attention``. Single
   blocks keep the text+image stream concatenated across all 38 blocks instead of splitting/catting per
   block.
3. The model's forward is captured into a CUDA graph per input signature (shapes, dtypes, device, guidance
   present or not) with static input buffers; a new signature re-captures (at most ``max_cuda_graphs`` are
   kept); swapping any weight tensor (a LoRA, ``.to()``) drops the graphs, in-place weight edits need
   ``reset_cuda_graphs()``. On CPU, with autograd on, inside another capture or with ControlNet/IP-Adapter
   arguments, it runs eagerly.

Block and model classes are subclasses of diffusers' (swapped via ``__class__``), with the same forward
signatures, so a stock ``FluxPipeline(transformer=model)`` runs unchanged.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_flux import (
    FluxSingleTransformerBlock,
    FluxTransformer2DModel,
    FluxTransformerBlock,
)
from torch import nn

from gpu.adapters.flux import FLUX
from gpu.kernels.rank_limits import INT4_LIMITS, W4A8F_LIMITS, RankLimits, low_rank_refusal
from gpu.kernels.repack import carry_offload_mark
from gpu.lora.apply import carry_lora_bases, hand_back_lora_base
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import gelu_columns_
from gpu.modules.svdq_linear import SVDQLinear

# A merged layer the kernels refuse (gpu.kernels.rank_limits) would run the slow PyTorch reference, so such
# groups are not merged; no limit at all for merges the caller has already checked.
_UNLIMITED = RankLimits(max_window=None, max_total=1 << 30)

# What the last ``fuse_flux_transformer`` call did (also stored on the model as ``fusion_report``).
fusion_report: dict[str, Any] = {}


def shared_input_groups(model: nn.Module) -> list[list[str]]:
    """Full module names of every group of linears sharing an input (``FLUX.shared_inputs``, the groups the
    quantizer smooths together and the builders of random checkpoints too), e.g. ``["transformer_blocks.0.attn.to_q",
    "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v"]``."""
    return FLUX.shared_input_groups(name for name, _ in model.named_modules())


# -- elementwise ops ----------------------------------------------------------------------------------------


def ops_for(module: nn.Module) -> Any:
    """The op set a fused block or model runs: ``gpu.modules.fused_ops`` (kernels on the GPU, fp32-internal
    references elsewhere) unless ``use_ops`` gave its model another."""
    ops = module.__dict__.get("_ops_override")
    if ops is not None:
        return ops
    from gpu.modules import fused_ops as ops

    return ops


_USE_OPS_LOCK = threading.Lock()


@contextlib.contextmanager
def use_ops(model: FusedFluxTransformer2DModel, ops: Any) -> Iterator[None]:
    """Run ``model``'s fused blocks with ``ops`` (any object with ``gpu.modules.fused_ops``' op functions, e.g. the
    tests' diffusers-rounding set) inside the with block. Held on the model and its blocks, not process-wide: other
    models keep their ops, also in other threads (a second thread running this same model sees ``ops`` too). One
    ``use_ops`` per model at a time (RuntimeError for a second): two that ended out of order, on two threads, put
    the first one's ops back for good. The model's CUDA graphs replay the ops they were captured with, so they are
    dropped on entry and on exit."""
    holders = [model, *model.transformer_blocks, *model.single_transformer_blocks]
    with _USE_OPS_LOCK:  # the check and the set as one: two threads checked, then both set, then one removed both
        if any("_ops_override" in h.__dict__ for h in holders):
            raise RuntimeError("this model already runs other ops (use_ops): one use_ops per model at a time")
        for h in holders:
            h.__dict__["_ops_override"] = ops
    model.reset_cuda_graphs()
    try:
        yield
    finally:
        for h in holders:
            h.__dict__.pop("_ops_override", None)
        model.reset_cuda_graphs()


# -- merging linears ----------------------------------------------------------------------------------------


def merge_refusal(layers: Sequence[nn.Module], limits: RankLimits = INT4_LIMITS) -> str | None:
    """Why ``layers`` cannot be merged into one exact ``SVDQLinear``, or None when they can. ``limits``: the
    low-rank branch the kernels that will run the merged layer take (its block-diagonal up projection is bounded
    per channel tile, so LoRA-widened members still merge)."""
    if not all(isinstance(m, SVDQLinear) for m in layers):
        kinds = sorted({type(m).__name__ for m in layers})
        return f"not all SVDQLinear ({', '.join(kinds)})"
    first = layers[0]
    for m in layers[1:]:
        if m.in_features != first.in_features:
            return "different in_features"
        s, f = m.spec, first.spec
        if (s.method, s.weight_format, s.act_format, s.smooth) != (f.method, f.weight_format, f.act_format, f.smooth):
            return f"different specs ({s.kind} {s.weight_format}/{s.act_format} vs {f.weight_format}/{f.act_format})"
        if m.compute_dtype != first.compute_dtype or m.wscales.dtype != first.wscales.dtype:
            return "different dtypes"
        if m.compute_device != first.compute_device:
            return "different devices"
    if any(hasattr(m, "wscale_global") or hasattr(m, "ascale_global") for m in layers):
        return "global scales (NVFP4) would have to match; not merged"
    if first.spec.smooth and not all(torch.equal(m.smooth, first.smooth) for m in layers[1:]):
        return "smoothing vectors differ (each layer was calibrated on its own)"
    why = low_rank_refusal([(m.out_features, m.spec.rank) for m in layers], limits)
    return f"merged branch: {why}" if why else None


@torch.no_grad()
def merge_svdq_linears(layers: Sequence[SVDQLinear]) -> SVDQLinear:
    """One ``SVDQLinear`` computing ``cat([m(x) for m in layers], -1)`` exactly (see module docstring).

    Output rows follow ``layers``' order. Low-rank: lora_down [K, sum r] = cat along r; lora_up
    [sum N, sum r] block-diagonal, so member i's rows only see its own r_i columns. Call only when
    ``merge_refusal(layers)`` is None."""
    why = merge_refusal(layers, _UNLIMITED)
    if why:
        raise ValueError(f"cannot merge: {why}")
    first = layers[0]
    k = first.in_features
    ns = [m.out_features for m in layers]
    ranks = [m.spec.rank for m in layers]
    r_total = sum(ranks)
    has_bias = any(m.bias is not None for m in layers)
    spec = LayerSpec(first.spec.method, first.spec.weight_format, first.spec.act_format, r_total, first.spec.smooth)
    dev = first.compute_device  # the canonical 4-bit buffers may sit in host memory after a kernel repack
    with torch.device("meta"):  # allocate nothing twice: real tensors are assigned below
        merged = SVDQLinear(k, sum(ns), spec, bias=has_bias, dtype=first.compute_dtype)
    merged.qweight = torch.cat([m.qweight.to(dev) for m in layers])
    merged.wscales = torch.cat([m.wscales.to(dev) for m in layers])
    if spec.smooth:
        merged.smooth = first.smooth.clone()
    if r_total:
        merged.lora_down = torch.cat([m.lora_down for m in layers if m.spec.rank], dim=1)
        up = torch.zeros(sum(ns), r_total, dtype=first.lora_up.dtype, device=dev)
        row = col = 0
        for m, n, r in zip(layers, ns, ranks, strict=True):
            if r:
                up[row : row + n, col : col + r] = m.lora_up
            row, col = row + n, col + r
        merged.lora_up = up
    if has_bias:
        dt = next(m.bias.dtype for m in layers if m.bias is not None)
        merged.bias = torch.cat(
            [m.bias if m.bias is not None else torch.zeros(m.out_features, dtype=dt, device=dev) for m in layers]
        )
    # (out_features, rank, has bias) per member: what unmerge_svdq_linear gives back
    merged.merged_from = [(m.out_features, m.spec.rank, m.bias is not None) for m in layers]
    # The loader's mark (canonical codes move to host memory once packed) must survive the merge: without it
    # the merged QKV(+MLP) codes stayed on the GPU next to their packed copy (1.7 GiB of FLUX.1-dev, H200).
    carry_offload_mark(layers, merged)
    carry_lora_bases(list(layers), merged)  # a LoRA applied before the merge can still be removed after a split
    return merged


@torch.no_grad()
def unmerge_svdq_linear(merged: SVDQLinear) -> list[SVDQLinear]:
    """The exact inverse of ``merge_svdq_linears``: the members, rebuilt from row slices of the merged codes,
    group scales, bias and up projection and column slices of the down projection (tensors stay where the
    merged layer keeps them, e.g. the canonical codes in host memory after a kernel repack)."""
    members = []
    row = col = 0
    spec = merged.spec
    for i, (n, r, has_bias) in enumerate(merged.merged_from):
        with torch.device("meta"):
            m = SVDQLinear(merged.in_features, n, replace(spec, rank=r), bias=has_bias, dtype=merged.compute_dtype)
        m.qweight = merged.qweight[row : row + n].clone()
        m.wscales = merged.wscales[row : row + n].clone()
        if spec.smooth:
            m.smooth = merged.smooth.clone()
        if r:
            m.lora_down = merged.lora_down[:, col : col + r].contiguous()
            m.lora_up = merged.lora_up[row : row + n, col : col + r].contiguous()
        if has_bias:
            m.bias = merged.bias[row : row + n].clone()
        for name, t in m._buffers.items():  # per-layer scalars (global scales), shared by construction
            if t is not None and t.is_meta:
                m._buffers[name] = merged._buffers[name].clone()
        carry_offload_mark([merged], m)
        hand_back_lora_base(merged, i, m)
        members.append(m)
        row, col = row + n, col + r
    return members


def _try_merge(parent: nn.Module, members: Sequence[str], new_name: str, limits: RankLimits) -> str | None:
    """Merge ``parent.<members>`` (dotted paths) into ``parent.<new_name>`` and delete them; returns the
    refusal reason (nothing changed) or None."""
    layers = [parent.get_submodule(m) for m in members]
    why = merge_refusal(layers, limits)
    if why:
        return why
    merged = merge_svdq_linears(layers)
    merged.merged_names = list(members)  # dotted paths under ``parent``, for unfuse_flux_transformer
    for m in members:
        holder_name, _, leaf = m.rpartition(".")
        delattr(parent.get_submodule(holder_name) if holder_name else parent, leaf)
    setattr(parent, new_name, merged)
    return None


def _split_merged(parent: nn.Module, name: str) -> None:
    """Undo ``_try_merge(parent, members, name)`` when ``parent.<name>`` is a merged layer."""
    merged = parent._modules.get(name)
    if merged is None or not hasattr(merged, "merged_names"):
        return
    for path, member in zip(merged.merged_names, unmerge_svdq_linear(merged), strict=True):
        holder_name, _, leaf = path.rpartition(".")
        setattr(parent.get_submodule(holder_name) if holder_name else parent, leaf, member)
    delattr(parent, name)


# -- blocks -------------------------------------------------------------------------------------------------


def _text_lane(x: torch.Tensor) -> torch.cuda.Stream | None:
    """The side stream the double blocks run their text stream on (None on the CPU, or with
    ``NIBBLE_TEXT_LANE=0``, which runs everything on the current stream)."""
    if x.device.type != "cuda" or os.environ.get("NIBBLE_TEXT_LANE", "1") == "0":
        return None
    from gpu.kernels.launch import side_stream

    return side_stream(x.device)


@contextlib.contextmanager
def _forked(stream: torch.cuda.Stream | None) -> Iterator[None]:
    """Run the block on ``stream``, after all work queued so far on the current stream (on the current stream
    itself when ``stream`` is None). CUDA-graph capture records the fork; ``_join`` ends it."""
    if stream is None:
        yield
        return
    stream.wait_stream(torch.cuda.current_stream(stream.device))
    with torch.cuda.stream(stream):
        yield


def _join(stream: torch.cuda.Stream | None) -> None:
    """Make the current stream wait for everything queued on ``stream`` so far."""
    if stream is not None:
        torch.cuda.current_stream(stream.device).wait_stream(stream)


def _is_w4a16(layer: nn.Module) -> bool:
    return isinstance(layer, SVDQLinear) and layer.spec.act_format is None


# Per thread (two models may run forwards in two threads): a stack of {adaLN linear: its output} of the running
# forward_fused calls, computed up front in one grouped launch.
_thread = threading.local()


def _premodulated() -> list[dict[nn.Module, torch.Tensor]]:
    if not hasattr(_thread, "premodulated"):
        _thread.premodulated = []
    return _thread.premodulated


def _modulation(ops: Any, layer: nn.Module, temb: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """adaLN linear on silu(temb) [B, D] -> [B, n*D]: ``ops``' W4A16 GEMV for quantized layers, or the output
    ``FusedFluxTransformer2DModel.forward_fused`` computed for all of them at once (then not even the SiLU
    runs here: a kernel per block that the graph would replay for nothing). ``dtype``: cast silu(temb) to it."""
    stack = _premodulated()
    if stack and (y := stack[-1].get(layer)) is not None:
        return y
    temb_act = F.silu(temb) if dtype is None else F.silu(temb).to(dtype)
    if _is_w4a16(layer):
        return ops.w4a16_gemv(temb_act, layer)
    return layer(temb_act)


def _project(holder: nn.Module, fused: str, separate: Sequence[str], x: torch.Tensor) -> torch.Tensor:
    """x [B, S, D] -> [B, S, sum N] through the merged layer, or the separate layers concatenated."""
    if hasattr(holder, fused):
        return getattr(holder, fused)(x)
    return torch.cat([getattr(holder, name)(x) for name in separate], dim=-1)


def _linear_gelu(layer: nn.Module, x: torch.Tensor, gelu_from: int = 0) -> torch.Tensor:
    """layer(x) [..., N] with tanh-GELU on the output columns >= gelu_from: in the GEMM's epilogue for SVDQ
    layers on the kernels (no separate pass over the output), in place on the output otherwise."""
    if isinstance(layer, SVDQLinear):
        return layer(x, gelu_from=gelu_from)
    return gelu_columns_(layer(x), gelu_from)


def _feed_forward(ff: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """diffusers' FeedForward("gelu-approximate") at inference: proj -> tanh-GELU -> out (dropout is identity)."""
    act = ff.net[0]
    if act.approximate == "tanh":
        return ff.net[2](_linear_gelu(act.proj, x))
    return ff.net[2](F.gelu(act.proj(x), approximate=act.approximate))


class FusedFluxTransformerBlock(FluxTransformerBlock):
    """FLUX double-stream block on merged projections and fused elementwise ops (same forward signature)."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        joint_attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden_states [B, Si, D] (image), encoder_hidden_states [B, St, D] (text), temb [B, D],
        image_rotary_emb (cos, sin) float32 [St + Si, hd] -> (text, image) with the input shapes."""
        if joint_attention_kwargs:
            raise NotImplementedError("fused FLUX blocks take no joint_attention_kwargs (IP-Adapter)")
        ops = ops_for(self)
        attn = self.attn
        x, c = hidden_states, encoder_hidden_states
        st = c.shape[1]
        # The text stream (512 tokens in FLUX.1) leaves most SMs idle in its own kernels (its GEMMs are one to
        # three partial waves): it runs on a side stream, overlapping the image stream, and joins it for the
        # joint attention and at the end of the block.
        lane = _text_lane(x)
        with _forked(lane):
            cm = _modulation(ops, self.norm1_context.linear, temb).chunk(6, dim=1)
            nc = ops.layernorm_modulate(c, cm[0], cm[1], self.norm1_context.norm.eps)
            qkv_t = _project(attn, "to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj"), nc)
        m = _modulation(ops, self.norm1.linear, temb).chunk(6, dim=1)
        nx = ops.layernorm_modulate(x, m[0], m[1], self.norm1.norm.eps)
        qkv_i = _project(attn, "to_qkv", ("to_q", "to_k", "to_v"), nx)
        _join(lane)
        cos, sin = image_rotary_emb
        # Text and image q/k have their own RMSNorm weights; the op writes both into one [B, H, St + Si, hd].
        q, k, v = ops.qk_norm_rope_joint(
            qkv_t, qkv_i, attn.norm_added_q.weight, attn.norm_added_k.weight, attn.norm_q.weight,
            attn.norm_k.weight, cos, sin, attn.heads, attn.norm_q.eps,
        )  # fmt: skip
        # q/k/v are views of token-major storage, and attention writes its output in the query's layout, so
        # the [B, S, H, hd] transpose below is contiguous and the output projections read it without a copy.
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # [B, S, H, hd]

        # The first residual add makes new tensors (the caller's inputs stay untouched), the second is in place.
        with _forked(lane):
            c = ops.gate_residual(c, cm[2], attn.to_add_out(o[:, :st].flatten(2)))
            nc = ops.layernorm_modulate(c, cm[3], cm[4], self.norm2_context.eps)
            c = ops.gate_residual(c, cm[5], _feed_forward(self.ff_context, nc), out=c)
        x = ops.gate_residual(x, m[2], attn.to_out[0](o[:, st:].flatten(2)))
        nx = ops.layernorm_modulate(x, m[3], m[4], self.norm2.eps)
        x = ops.gate_residual(x, m[5], _feed_forward(self.ff, nx), out=x)
        # Joined before returning: tensors the side stream read (o, temb, the caller's c) are freed when this
        # frame ends, and the main stream must not reuse their memory while the side stream may still read it.
        _join(lane)
        return c, x


class FusedFluxSingleTransformerBlock(FluxSingleTransformerBlock):
    """FLUX single-stream block on one merged Q/K/V(+MLP) projection and fused elementwise ops."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        joint_attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """diffusers' interface: (image [B, Si, D], text [B, St, D]) -> (text, image)."""
        if joint_attention_kwargs:
            raise NotImplementedError("fused FLUX blocks take no joint_attention_kwargs (IP-Adapter)")
        st = encoder_hidden_states.shape[1]
        joint = self.forward_joint(torch.cat([encoder_hidden_states, hidden_states], dim=1), temb, image_rotary_emb)
        return joint[:, :st], joint[:, st:]

    def forward_joint(
        self, hidden_states: torch.Tensor, temb: torch.Tensor, image_rotary_emb: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """hidden_states [B, St + Si, D] (text then image), temb [B, D], rope (cos, sin) float32 [St + Si, hd]
        -> [B, St + Si, D], written into ``hidden_states`` (callers pass a tensor they own)."""
        ops = ops_for(self)
        attn = self.attn
        d = hidden_states.shape[-1]
        shift, scale, gate = _modulation(ops, self.norm.linear, temb).chunk(3, dim=1)
        n = ops.layernorm_modulate(hidden_states, shift, scale, self.norm.norm.eps)
        cos, sin = image_rotary_emb
        norm_args = (attn.norm_q.weight, attn.norm_k.weight, cos, sin, attn.heads, attn.norm_q.eps)
        if hasattr(self, "proj_qkv_mlp"):
            # One GEMM writes [q | k | v | GELU(mlp)] ([B, S, 3D + 4D], GELU in its epilogue). qk_norm_rope
            # writes normalized q/k and hands back v as a view of buf; once attention has read it, its output
            # takes v's columns: proj_out then reads [o | GELU(mlp)] as a column slice of the same buffer,
            # with no cat and no GELU pass (a row-contiguous copy, as the output is token-major).
            buf = _linear_gelu(self.proj_qkv_mlp, n, gelu_from=3 * d)
            q, k, v = ops.qk_norm_rope(buf, *norm_args)
            o = F.scaled_dot_product_attention(q, k, v)  # [B, H, S, hd]
            buf[..., 2 * d : 3 * d].unflatten(-1, (attn.heads, -1)).copy_(o.transpose(1, 2))
            y = self.proj_out(buf[..., 2 * d :])
        else:
            qkv, mlp = _project(attn, "to_qkv", ("to_q", "to_k", "to_v"), n), _linear_gelu(self.proj_mlp, n)
            q, k, v = ops.qk_norm_rope(qkv, *norm_args)
            o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)  # [B, S, D]
            y = self.proj_out(torch.cat([o, mlp], dim=-1))
        return ops.gate_residual(hidden_states, gate, y, out=hidden_states)


# -- model --------------------------------------------------------------------------------------------------

_INPUTS = ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids",
           "guidance")  # fmt: skip


class FusedFluxTransformer2DModel(FluxTransformer2DModel):
    """``FluxTransformer2DModel`` with fused blocks and per-signature CUDA-graph replay (same forward API).

    Attributes set by ``fuse_flux_transformer``: ``cuda_graphs`` (bool, default True), ``max_cuda_graphs``
    (int, default 1), ``fusion_report`` (dict)."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor = None,
        pooled_projections: torch.Tensor = None,
        timestep: torch.LongTensor = None,
        img_ids: torch.Tensor = None,
        txt_ids: torch.Tensor = None,
        guidance: torch.Tensor = None,
        joint_attention_kwargs: dict[str, Any] | None = None,
        controlnet_block_samples: list[torch.Tensor] | None = None,
        controlnet_single_block_samples: list[torch.Tensor] | None = None,
        return_dict: bool = True,
        controlnet_blocks_repeat: bool = False,
    ) -> torch.Tensor | Transformer2DModelOutput:
        """hidden_states [B, Si, C_in], encoder_hidden_states [B, St, D_text], pooled_projections [B, D_pool],
        timestep [B] (0..1), img_ids [Si, 3], txt_ids [St, 3], guidance [B] or None -> [B, Si, C_out]."""
        extras = joint_attention_kwargs or controlnet_block_samples is not None
        if extras or controlnet_single_block_samples is not None:
            # ControlNet residuals / IP-Adapter: diffusers' loop (it calls our fused blocks), eagerly.
            return super().forward(
                hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, guidance,
                joint_attention_kwargs, controlnet_block_samples, controlnet_single_block_samples, return_dict,
                controlnet_blocks_repeat,
            )  # fmt: skip
        inputs = {
            "hidden_states": hidden_states, "encoder_hidden_states": encoder_hidden_states,
            "pooled_projections": pooled_projections, "timestep": timestep, "img_ids": img_ids,
            "txt_ids": txt_ids, "guidance": guidance,
        }  # fmt: skip
        if self._graph_allowed(hidden_states):
            out = self._graph_forward(inputs)
        else:
            out = self.forward_fused(**inputs)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    def forward_fused(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
        img_ids: torch.Tensor,
        txt_ids: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The eager fused forward (what the CUDA graph captures); shapes as in ``forward``."""
        ops = ops_for(self)
        x = self.x_embedder(hidden_states)
        timestep = timestep.to(x.dtype) * 1000
        if guidance is None:
            temb = self.time_text_embed(timestep, pooled_projections)
        else:
            temb = self.time_text_embed(timestep, guidance.to(x.dtype) * 1000, pooled_projections)
        c = self.context_embedder(encoder_hidden_states)
        txt_ids = txt_ids[0] if txt_ids.ndim == 3 else txt_ids
        img_ids = img_ids[0] if img_ids.ndim == 3 else img_ids
        rope = self.pos_embed(torch.cat((txt_ids, img_ids), dim=0))
        _premodulated().append(self._modulations(ops, temb, x.dtype))
        try:
            for block in self.transformer_blocks:
                c, x = block(x, c, temb, rope)
            st = c.shape[1]
            joint = torch.cat([c, x], dim=1)  # once for all single blocks, not split/cat per block
            for block in self.single_transformer_blocks:
                joint = block.forward_joint(joint, temb, rope)
            x = joint[:, st:]
            scale, shift = _modulation(ops, self.norm_out.linear, temb, x.dtype).chunk(2, dim=1)
        finally:
            _premodulated().pop()
        x = ops.layernorm_modulate(x, shift, scale, self.norm_out.norm.eps)
        return self.proj_out(x)

    def _modulations(self, ops: Any, temb: torch.Tensor, dtype: torch.dtype) -> dict[nn.Module, torch.Tensor]:
        """Every W4A16 adaLN linear's output on silu(temb), in one grouped GEMV launch of ``ops`` (they all read the
        same vector): {layer: [B, n*D]}. Empty when temb is not of the model's dtype (each block computes its own)."""
        layers = [m for b in self.transformer_blocks for m in (b.norm1.linear, b.norm1_context.linear)]
        layers += [b.norm.linear for b in self.single_transformer_blocks] + [self.norm_out.linear]
        layers = [m for m in layers if _is_w4a16(m)]
        if not layers or temb.dtype != dtype:
            return {}
        cache = self.__dict__.setdefault("_gemv_groups", {})
        return dict(zip(layers, ops.w4a16_gemv_many(F.silu(temb), layers, cache), strict=True))

    # -- CUDA graphs --------------------------------------------------------------------------------------
    def _graph_allowed(self, hidden_states: torch.Tensor) -> bool:
        return (
            getattr(self, "cuda_graphs", True)
            and hidden_states.device.type == "cuda"
            and not torch.is_grad_enabled()
            and not torch.cuda.is_current_stream_capturing()
            and not torch.compiler.is_compiling()
        )

    def _graph_forward(self, inputs: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """Replay the graph captured for these inputs' signature (capturing it first); returns a copy of the
        static output, since the next replay overwrites it (pipelines with true CFG call twice per step)."""
        device = inputs["hidden_states"].device
        key = tuple(
            (name, None) if (t := inputs[name]) is None else (name, tuple(t.shape), t.dtype, t.device)
            for name in _INPUTS
        ) + (torch.is_inference_mode_enabled(),)  # static buffers made in inference mode are inference tensors
        graphs: OrderedDict = self.__dict__.setdefault("_cuda_graph_cache", OrderedDict())
        weights = self._current_weights()
        captured_with = self.__dict__.get("_cuda_graph_weights")
        stale = (
            captured_with is None
            or len(captured_with) != len(weights)
            or any(a is not b for a, b in zip(weights, captured_with, strict=True))
        )
        # Hold no reference to the weights while capturing: the capture's warm-up packs layers on first use, and
        # packing moves loader-marked canonical buffers to host memory, which a held list would keep on the
        # GPU (4.3 GiB for FLUX.1-dev) and make look like a weight swap on the next call (a second capture).
        del weights, captured_with
        if stale:
            # Graphs hold raw pointers to the weights (and to the kernels' repacked copies made from them):
            # after a weight tensor is swapped (LoRA, .to()) they must be captured again.
            graphs.clear()
            self.__dict__.pop("_cuda_graph_weights", None)
        entry = graphs.get(key)
        if entry is None:
            while len(graphs) >= max(1, getattr(self, "max_cuda_graphs", 1)):
                graphs.popitem(last=False)  # frees that graph's memory pool with it
            entry = self._capture(inputs, device)
            graphs[key] = entry
            self.__dict__["_cuda_graph_weights"] = self._current_weights()  # as the capture left them
        else:
            graphs.move_to_end(key)
            for name, t in inputs.items():
                if t is not None:
                    entry.static[name].copy_(t, non_blocking=True)
        entry.graph.replay()
        return entry.out.clone()

    def _capture(self, inputs: dict[str, torch.Tensor | None], device: torch.device) -> SimpleNamespace:
        static = {n: None if t is None else t.to(device).clone() for n, t in inputs.items()}
        # Warm-up on a side stream (PyTorch's recipe): lazy work - kernel loading, weight repacking, cuBLAS
        # workspaces - happens here, outside the capture.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.forward_fused(**static)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.forward_fused(**static)
        # The side stream's cached activation blocks can serve no other stream: give them back, so that the
        # VAE and the next steps find the memory (a 16 GiB budget reserved 15.3 GiB without this; H200 run).
        torch.cuda.current_stream(device).synchronize()
        torch.cuda.empty_cache()
        return SimpleNamespace(graph=graph, static=static, out=out)

    def _current_weights(self) -> list[torch.Tensor | None]:
        """Every parameter and buffer object, in a fixed order (compared by identity: ~0.2 ms for FLUX.1's
        ~3.1k tensors, where reading each tensor's version counter would cost several times more)."""
        slots = self.__dict__.get("_cuda_graph_slots")
        if slots is None:
            slots = [(m._parameters, n) for m in self.modules() for n in m._parameters]
            slots += [(m._buffers, n) for m in self.modules() for n in m._buffers]
            self.__dict__["_cuda_graph_slots"] = slots
        return [d.get(n) for d, n in slots]

    def reset_cuda_graphs(self) -> None:
        """Drop every captured graph. Needed after editing weights in place (``copy_``, ``load_state_dict``
        without ``assign``) or replacing whole submodules; swapped weight tensors are noticed by themselves."""
        for name in ("_cuda_graph_cache", "_cuda_graph_slots", "_cuda_graph_weights", "_gemv_groups"):
            self.__dict__.pop(name, None)


def fuse_flux_transformer(model: FluxTransformer2DModel, limits: RankLimits | None = None) -> FluxTransformer2DModel:
    """Rewrite an SVDQ-quantized ``FluxTransformer2DModel`` in place for fused execution; returns it.

    Works on any FluxTransformer2DModel (non-quantized linears simply stay separate); see the module
    docstring for what changes and ``fusion_report`` for what was merged. ``limits``: the low-rank branch a merged
    layer may carry (``merge_refusal``); default: those of the kernels that serve the model's W4A4 layers."""
    if not isinstance(model, FluxTransformer2DModel):
        raise TypeError(f"expected a FluxTransformer2DModel, got {type(model).__name__}")
    if limits is None:
        limits = _serving_kernel_limits(model)
    groups: list[dict[str, Any]] = []

    def record(name: str, members: Sequence[str], why: str | None, note: str | None = None) -> None:
        groups.append({"layer": name, "members": list(members), "fused": why is None, "reason": why or note})

    for i, block in enumerate(model.transformer_blocks):
        if not isinstance(block, FusedFluxTransformerBlock):
            for new, members in (("to_qkv", ("to_q", "to_k", "to_v")),
                                 ("to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj"))):  # fmt: skip
                why = _try_merge(block.attn, members, new, limits)
                record(f"transformer_blocks.{i}.attn.{new}", [f"attn.{m}" for m in members], why)
            block.attn.fused_projections = "to_qkv" in block.attn._modules  # diffusers' flag for these names
            block.__class__ = FusedFluxTransformerBlock
    for i, block in enumerate(model.single_transformer_blocks):
        if not isinstance(block, FusedFluxSingleTransformerBlock):
            prefix = f"single_transformer_blocks.{i}"
            members = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
            why = _try_merge(block, members, "proj_qkv_mlp", limits)
            if why is None:
                record(f"{prefix}.proj_qkv_mlp", members, None)
            elif _try_merge(block.attn, ("to_q", "to_k", "to_v"), "to_qkv", limits) is None:
                # e.g. 4 members' branches too wide but 3 fit: Q/K/V merged, proj_mlp kept as it was
                record(f"{prefix}.attn.to_qkv", members[:3], None, f"proj_mlp kept separate: {why}")
            else:
                record(f"{prefix}.proj_qkv_mlp", members, why)
            block.__class__ = FusedFluxSingleTransformerBlock
    model.__class__ = FusedFluxTransformer2DModel
    model.cuda_graphs = True
    model.max_cuda_graphs = 1
    report = _summarize(groups, ops_for(model).__name__)
    report["rank_limit"] = limits.describe()
    model.fusion_report = report
    fusion_report.clear()
    fusion_report.update(report)
    return model


def _serving_kernel_limits(model: nn.Module) -> RankLimits:
    """The rank limits of the kernels that run ``model``'s W4A4 layers: what the Hopper FP8 GEMM fuses when it
    serves them (a merge must not push a branch out of its epilogue), else the INT4 kernels' (also on CPU, where
    the limits only keep merges the laptop kernels could run)."""
    layer = next((m for m in model.modules() if isinstance(m, SVDQLinear) and m.spec.act_format is not None), None)
    if layer is None or layer.compute_device.type != "cuda":
        return INT4_LIMITS
    from gpu.kernels.backend import W4A8

    # By device and layer kind only: a LoRA too wide for the FP8 kernels on this one layer must not make the whole
    # model fuse under the INT4 kernels' limits.
    return W4A8F_LIMITS if W4A8.refuses_device(layer, layer.compute_device) is None else INT4_LIMITS


def unfuse_flux_transformer(model: nn.Module) -> nn.Module:
    """Undo ``fuse_flux_transformer`` in place (exactly: merged layers split back into their members, blocks
    and model back to diffusers' classes, CUDA graphs dropped); returns the model. A no-op on an unfused model.
    For what needs the original layer names, e.g. LoRAs that target Q, K and V separately."""
    if not isinstance(model, FusedFluxTransformer2DModel):
        return model
    model.reset_cuda_graphs()
    for block in model.transformer_blocks:
        for name in ("to_qkv", "to_added_qkv"):
            _split_merged(block.attn, name)
        block.attn.fused_projections = False
        block.__class__ = FluxTransformerBlock
    for block in model.single_transformer_blocks:
        _split_merged(block, "proj_qkv_mlp")
        _split_merged(block.attn, "to_qkv")
        block.__class__ = FluxSingleTransformerBlock
    model.__class__ = FluxTransformer2DModel
    for attr in ("cuda_graphs", "max_cuda_graphs", "fusion_report"):
        model.__dict__.pop(attr, None)
    return model


def _summarize(groups: list[dict[str, Any]], ops_name: str) -> dict[str, Any]:
    fused = [g for g in groups if g["fused"]]
    reasons: dict[str, int] = {}
    for g in groups:
        if g["reason"]:
            reasons[g["reason"]] = reasons.get(g["reason"], 0) + 1
    return {
        "ops": ops_name,
        "merged": len(fused),
        "kept_separate": len(groups) - len(fused),
        "reasons": reasons,
        "groups": groups,
    }
