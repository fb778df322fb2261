"""The tensor names of a FLUX.1 transformer in Black Forest Labs' layout: where they sit in a file (``bfl_prefix``),
and which diffusers tensors each becomes: one table, read without torch, for the engine that loads a BFL file
under diffusers names (``gpu.streaming.source.bfl_to_diffusers``) and for the LoRA reader that maps a BFL, kohya
or XLabs LoRA's layers onto diffusers modules (``gpu.lora.keys``).

BFL -> diffusers (D = hidden size, M = MLP width; a linear's ``.weight`` and ``.bias`` go alike):

    img_in, txt_in                          -> x_embedder, context_embedder
    time_in.{in,out}_layer                  -> time_text_embed.timestep_embedder.linear_{1,2}
    vector_in.{in,out}_layer                -> time_text_embed.text_embedder.linear_{1,2}
    guidance_in.{in,out}_layer              -> time_text_embed.guidance_embedder.linear_{1,2}
    final_layer.linear                      -> proj_out
    final_layer.adaLN_modulation.1          -> norm_out.linear, with its two D-row halves swapped
                                               (BFL emits shift, scale; diffusers expects scale, shift)
    double_blocks.i.img_mod.lin / txt_mod.lin -> transformer_blocks.i.norm1.linear / norm1_context.linear
    double_blocks.i.img_attn.qkv [3D, D]    -> attn.to_q / to_k / to_v (row thirds)
    double_blocks.i.txt_attn.qkv [3D, D]    -> attn.add_q_proj / add_k_proj / add_v_proj
    double_blocks.i.img_attn.proj           -> attn.to_out.0;   txt_attn.proj -> attn.to_add_out
    double_blocks.i.img_attn.norm.{query,key}_norm.scale -> attn.norm_q / norm_k .weight
    double_blocks.i.txt_attn.norm.{query,key}_norm.scale -> attn.norm_added_q / norm_added_k .weight
    double_blocks.i.img_mlp.{0,2}           -> ff.net.0.proj / ff.net.2;  txt_mlp -> ff_context
    single_blocks.i.linear1 [3D + M, D]     -> attn.to_q / to_k / to_v / proj_mlp (row slices)
    single_blocks.i.linear2                 -> proj_out
    single_blocks.i.norm.{query,key}_norm.scale -> attn.norm_q / norm_k .weight
    single_blocks.i.modulation.lin          -> norm.linear
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Where the transformer's BFL names may sit in a file, most specific first.
PREFIXES = ("model.diffusion_model.", "")


def bfl_prefix(keys: Iterable[str]) -> str | None:
    """The prefix under which ``keys`` (a file's tensor names) hold a BFL-layout FLUX transformer; None if not."""
    keys = set(keys)
    for prefix in PREFIXES:
        if f"{prefix}img_in.weight" in keys and any(k.startswith(f"{prefix}double_blocks.") for k in keys):
            return prefix
    return None


@dataclass(frozen=True)
class BflLinear:
    """What one BFL linear layer is in diffusers. ``modules``: the diffusers linears its output rows go to, in row
    order; several for a fused layer, whose rows are split D (the hidden size) rows to each but the last, which takes
    ``last_rows`` times D (a single block's MLP input after its q, k, v: FLUX.1's MLP ratio, 4, which diffusers'
    block is built with). ``swap_halves``: the two halves of its output rows trade places (BFL's final modulation
    emits shift, scale; diffusers' scale, shift)."""

    modules: tuple[str, ...]
    last_rows: int = 1
    swap_halves: bool = False

    def rows(self, dim: int) -> int:
        """The layer's output rows for hidden size ``dim``: what its weight's and bias's first dimension must be."""
        return (len(self.modules) - 1 + self.last_rows) * dim

    def row_ranges(self, dim: int) -> list[tuple[int, int]]:
        """Each of ``modules``' [start, end) rows of the layer's ``rows(dim)`` output rows, for hidden size ``dim``."""
        ranges = [(j * dim, (j + 1) * dim) for j in range(len(self.modules))]
        ranges[-1] = (ranges[-1][0], self.rows(dim))
        return ranges


# A double block's linears (under double_blocks.i. -> transformer_blocks.i.), in the order diffusers' block lists
# them (the image stream's modulation first).
DOUBLE_LINEARS = {
    "img_mod.lin": BflLinear(("norm1.linear",)),
    "txt_mod.lin": BflLinear(("norm1_context.linear",)),
    "img_attn.qkv": BflLinear(("attn.to_q", "attn.to_k", "attn.to_v")),
    "txt_attn.qkv": BflLinear(("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
    "img_attn.proj": BflLinear(("attn.to_out.0",)),
    "txt_attn.proj": BflLinear(("attn.to_add_out",)),
    "img_mlp.0": BflLinear(("ff.net.0.proj",)),
    "img_mlp.2": BflLinear(("ff.net.2",)),
    "txt_mlp.0": BflLinear(("ff_context.net.0.proj",)),
    "txt_mlp.2": BflLinear(("ff_context.net.2",)),
}
# A single block's linears (under single_blocks.i. -> single_transformer_blocks.i.).
SINGLE_LINEARS = {
    "linear1": BflLinear(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), last_rows=4),
    "linear2": BflLinear(("proj_out",)),
    "modulation.lin": BflLinear(("norm.linear",)),
}
# The linears outside the blocks.
TOP_LINEARS = {
    "img_in": BflLinear(("x_embedder",)),
    "txt_in": BflLinear(("context_embedder",)),
    "time_in.in_layer": BflLinear(("time_text_embed.timestep_embedder.linear_1",)),
    "time_in.out_layer": BflLinear(("time_text_embed.timestep_embedder.linear_2",)),
    "vector_in.in_layer": BflLinear(("time_text_embed.text_embedder.linear_1",)),
    "vector_in.out_layer": BflLinear(("time_text_embed.text_embedder.linear_2",)),
    "guidance_in.in_layer": BflLinear(("time_text_embed.guidance_embedder.linear_1",)),
    "guidance_in.out_layer": BflLinear(("time_text_embed.guidance_embedder.linear_2",)),
    "final_layer.linear": BflLinear(("proj_out",)),
    "final_layer.adaLN_modulation.1": BflLinear(("norm_out.linear",), swap_halves=True),
}
# The RMSNorm scales of the attention (BFL tensor -> diffusers tensor, inside a block): no linears, so no LoRA
# names them.
DOUBLE_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
SINGLE_NORMS = {
    "norm.query_norm.scale": "attn.norm_q.weight",
    "norm.key_norm.scale": "attn.norm_k.weight",
}

# Where each kind of block's linears sit: BFL's block list -> (diffusers' block list, its table).
_BLOCK_LISTS = {"double_blocks": ("transformer_blocks", DOUBLE_LINEARS),
               "single_blocks": ("single_transformer_blocks", SINGLE_LINEARS)}  # fmt: skip
_BLOCK_NAME = re.compile(r"(double_blocks|single_blocks)\.(\d+)\.(.+)")


def bfl_linear(name: str) -> tuple[tuple[str, ...], BflLinear] | None:
    """A BFL linear's module name (``double_blocks.3.img_attn.qkv``, ``img_in``) -> (the full diffusers names of
    its ``modules``, in row order: ``transformer_blocks.3.attn.to_q``, …; its table entry); None for a name that
    is no FLUX.1 linear."""
    m = _BLOCK_NAME.fullmatch(name)
    if m:
        block_list, index, leaf = m.groups()
        diffusers_list, table = _BLOCK_LISTS[block_list]
        layer = table.get(leaf)
        return (tuple(f"{diffusers_list}.{index}.{module}" for module in layer.modules), layer) if layer else None
    layer = TOP_LINEARS.get(name)
    return (layer.modules, layer) if layer else None
