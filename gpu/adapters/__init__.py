"""Model adapters: per architecture, a table saying what every linear layer becomes."""

from gpu.adapters.base import ModelAdapter, adapter_for_config, adapter_named

__all__ = ["ModelAdapter", "adapter_for_config", "adapter_named"]
