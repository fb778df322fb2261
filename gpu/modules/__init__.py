"""nn.Modules of the engine: the quantized linear layer and its reference numerics."""

from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear

__all__ = ["LayerSpec", "SVDQLinear"]
