"""Observable properties in the style of Krita AI Diffusion: each ``Prop`` named ``x`` emits ``x_changed``.

State objects hold the truth; widgets are bound to them (``app.bindings``) and stay thin. A property emits
only when its value really changes, which is what breaks the widget -> state -> widget loop.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Prop(Generic[T]):
    def __init__(self, default: T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj: Any, value: T) -> None:
        if obj.__dict__.get(self.name, self.default) == value and self.name in obj.__dict__:
            return
        obj.__dict__[self.name] = value
        getattr(obj, f"{self.name}_changed").emit(value)
