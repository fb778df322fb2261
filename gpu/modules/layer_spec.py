"""What one quantized linear layer is: method, weight/activation formats and low-rank rank."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gpu.quant import get_format
from gpu.quantize_defaults import RANK_METHODS, SMOOTHING_METHODS

METHODS = ("svdquant", "naive", "smoothquant", "svd", "lorc", "nf4", "rtn")
PRECISIONS = ("int4", "nvfp4", "fp4", "int8")


@dataclass(frozen=True)
class LayerSpec:
    """method:        how the layer was quantized (``rtn`` = plain round-to-nearest, used for W4A16 layers)
    weight_format: a ``gpu.quant`` format name for the (residual) weight
    act_format:    format of the activations, or None for 16-bit activations (W4A16 / NF4)
    rank:          rank of the 16-bit low-rank branch (0 = none)
    smooth:        whether activations are divided by a smoothing vector before quantization
    """

    method: str
    weight_format: str
    act_format: str | None
    rank: int
    smooth: bool

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} (known: {', '.join(METHODS)})")
        get_format(self.weight_format)
        if self.act_format is not None:
            get_format(self.act_format)
        if self.rank < 0:
            raise ValueError(f"rank must be >= 0, got {self.rank}")

    @property
    def kind(self) -> str:
        """Short label: W4A4, W8A8, W4A16, ..."""
        wbits = get_format(self.weight_format).bits
        abits = get_format(self.act_format).bits if self.act_format else 16
        return f"W{wbits}A{abits}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LayerSpec:
        try:
            return cls(
                method=str(data["method"]),
                weight_format=str(data["weight_format"]),
                act_format=None if data["act_format"] is None else str(data["act_format"]),
                rank=int(data["rank"]),
                smooth=bool(data["smooth"]),
            )
        except KeyError as missing:
            raise ValueError(f"layer spec lacks the field {missing}") from None


def spec_for(method: str, precision: str, rank: int, role: str) -> LayerSpec:
    """The spec of a layer of the given adapter ``role`` ("w4a4" or "w4a16") under a quantization run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    if role == "w4a16":
        wfmt = "nf4" if method == "nf4" else ("int8" if precision == "int8" else "int4")
        return LayerSpec("nf4" if method == "nf4" else "rtn", wfmt, None, 0, False)
    if method == "nf4":
        return LayerSpec("nf4", "nf4", None, 0, False)
    uses_rank = method in RANK_METHODS
    uses_smooth = method in SMOOTHING_METHODS
    return LayerSpec(method, precision, precision, rank if uses_rank else 0, uses_smooth)
