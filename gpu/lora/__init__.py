"""LoRA adapters for FLUX.1 on SVDQuant 4-bit (and 16-bit) models, without re-quantization.

``read_lora`` reads and validates a file (diffusers/PEFT, kohya or BFL/ComfyUI keys); ``manager_for(model)``
gives the model's ``LoraManager``, whose ``set([(path, strength), ...])`` applies exactly that set (appending
to SVDQuant's low-rank branch, merging into 16-bit layers) and restores the originals bit-exactly.
See ``gpu/lora/README.md``."""

from gpu.lora.formats import FORMATS, LoraError, LoraFile, LoraTarget, read_lora
from gpu.lora.manager import ActiveLora, LoraManager, check_strength, lora_hashes, manager_for, parse_lora_arg

__all__ = [
    "FORMATS", "ActiveLora", "LoraError", "LoraFile", "LoraManager", "LoraTarget", "check_strength",
    "lora_hashes", "manager_for", "parse_lora_arg", "read_lora",
]  # fmt: skip
