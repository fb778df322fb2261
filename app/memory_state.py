"""Observable state of the memory plan: how the engine uses GPU and system memory for the selected model
(``gpu.runtime.memory_policy``), shown in the model panel. Filled from the engine's model info."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.observable import Prop


class MemoryState(QObject):
    name_changed = Signal(object)
    text_changed = Signal(object)
    fits_changed = Signal(object)

    name = Prop("")  # the policy's identifier, e.g. "cpu", "encode-by-block"; "" until the engine reports
    text = Prop("Memory plan: waiting for the engine…")
    fits = Prop(True)  # False: the plan exceeds the GPU (the text says so)

    def show_policy(self, policy: Any) -> None:
        """Takes a ``MemoryPolicy`` (or None: nothing known yet, keep what is shown)."""
        if policy is None:
            return
        self.name = str(policy.name)
        self.text = str(policy.label)
        self.fits = bool(policy.fits)
