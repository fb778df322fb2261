"""FLUX.1 (dev and schnell) in diffusers' ``FluxTransformer2DModel``.

Attention and MLP linears of both streams and the single blocks' projections carry ~all FLOPs: W4A4
SVDQuant. adaLN modulation linears are GEMVs on the timestep/pooled vector (27% of FLUX's bytes, no
FLOPs) whose inputs must stay 16-bit: W4A16. Embedders, ``norm_out`` and ``proj_out`` stay 16-bit.

Q/K/V of each stream, and in single blocks Q/K/V + ``proj_mlp``, read one normalized activation: the quantizer
smooths each such group with one vector, so the fused runtime (``gpu.models.flux_fused``) can merge them.
"""

from gpu.adapters.base import ModelAdapter, register_adapter

_DOUBLE = r"transformer_blocks\.\d+\."
_SINGLE = r"single_transformer_blocks\.\d+\."

FLUX = register_adapter(
    ModelAdapter(
        architecture="flux",
        diffusers_class="FluxTransformer2DModel",
        pipeline_class="FluxPipeline",
        rules=(
            (_DOUBLE + r"norm1(_context)?\.linear", "w4a16"),
            (_SINGLE + r"norm\.linear", "w4a16"),
            (_DOUBLE + r"attn\.(to_q|to_k|to_v|add_q_proj|add_k_proj|add_v_proj)", "w4a4"),
            (_DOUBLE + r"attn\.(to_out\.0|to_add_out)", "w4a4"),
            (_DOUBLE + r"ff(_context)?\.net\.(0\.proj|2)", "w4a4"),
            (_SINGLE + r"attn\.(to_q|to_k|to_v)", "w4a4"),
            (_SINGLE + r"(proj_mlp|proj_out)", "w4a4"),
        ),
        shared_inputs=(
            ("transformer_blocks", ("attn.to_q", "attn.to_k", "attn.to_v")),
            ("transformer_blocks", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
            ("single_transformer_blocks", ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")),
        ),
        block_counts=(("num_layers", "transformer_blocks"), ("num_single_layers", "single_transformer_blocks")),
        # img_ids/txt_ids hold 3 coordinates (text index, row, column), each rotating its share of a head's channels
        rope_axes=("axes_dims_rope", "attention_head_dim", 128, 3),
        # FluxPipeline sets a schedule up with sigmas and a shift mu, which of diffusers' schedulers only the
        # flow-match Euler one takes (Heun's refuses sigmas; DDPM's and the like run no flow-matching model)
        schedulers=("FlowMatchEulerDiscreteScheduler",),
    )
)
