"""LoRA adapters for FLUX.1 on SVDQuant 4-bit (and 16-bit) models, without re-quantization.

``read_lora`` reads and validates a file (diffusers/PEFT, kohya or BFL/ComfyUI keys); ``manager_for(model)``
gives the model's ``LoraManager``, whose ``set([(path, strength), (path, strength, text_strength), ...])``
applies exactly that set (appending to SVDQuant's low-rank branch, merging into 16-bit layers, the text encoders'
too, at the text strength, for files with a CLIP or T5 part) and restores the originals bit-exactly.
See the README's LoRA section."""

import importlib
from typing import Any

# Names resolve on first use (PEP 562), so torch-free parts (``gpu.lora.metadata``) import without torch.
_MANAGER = (
    "ActiveLora", "LoraManager", "check_strength", "encoder_loras", "lora_hashes", "manager_for", "parse_lora_arg",
    "parse_lora_args", "split_lora_arg",
)  # fmt: skip
_WHERE = {
    **dict.fromkeys(
        ("FORMATS", "LoraError", "LoraFile", "LoraTarget", "check_lora_file", "read_lora"), "gpu.lora.formats"
    ),
    **dict.fromkeys(_MANAGER, "gpu.lora.manager"),
}


def __getattr__(name: str) -> Any:  # whatever the named module holds
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gpu.lora' has no attribute {name!r}")


__all__ = [
    "FORMATS", "ActiveLora", "LoraError", "LoraFile", "LoraManager", "LoraTarget", "check_lora_file",
    "check_strength", "encoder_loras", "lora_hashes", "manager_for", "parse_lora_arg", "parse_lora_args", "read_lora",
    "split_lora_arg",
]  # fmt: skip
