"""Quantize a whole model: calibrate, decompose every layer, write an SVDQ checkpoint."""

from gpu.quantizer.config import QuantizeConfig, QuantizeEvent
from gpu.quantizer.run import quantize_model

__all__ = ["QuantizeConfig", "QuantizeEvent", "quantize_model"]
