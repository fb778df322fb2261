"""Quantize a whole model: calibrate, decompose every layer, write an SVDQ checkpoint.

``quantize_model`` is the streaming, resumable engine (``gpu.streaming``) used for every model;
``quantize_model_in_memory`` is the whole-pipeline reference it is tested against."""

from gpu.quantizer.config import QuantizeConfig, QuantizeEvent
from gpu.quantizer.in_memory import quantize_model_in_memory
from gpu.streaming.engine import quantize_model
from gpu.streaming.run_inputs import source_rank_limit

__all__ = ["QuantizeConfig", "QuantizeEvent", "quantize_model", "quantize_model_in_memory", "source_rank_limit"]
