"""The mouse wheel over a value control in a scrolled dock or list scrolls it, unless the control has the focus."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QWheelEvent


class WheelWhenFocused:
    """A mix-in for a value control (spin box, slider, combo box) in a scrolled dock or list: the mouse wheel
    changes its value only while it has the keyboard focus (clicked, or Tabbed to), and scrolls the dock or list
    otherwise. Wheeling down the LoRA list changed the strength of each slider that came under the pointer, and
    wheeling down the prompt dock to reach Generate changed Steps, Guidance, the size and the images per job, the
    next job running them without a word. Not a wheel-focus stop either (a spin box or combo box is by default: the
    wheel over it took the focus and then its value). Put it first among the bases: ``class X(WheelWhenFocused,
    QSpinBox)``; it passes its arguments, keywords too (``minimum=``), on to the control."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()  # on to the dock or list, which scrolls
