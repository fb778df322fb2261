"""The taskbar's flag for a window whose work ended while the user was in another program: a job's images, or a
quantize run of an hour on a 12B model, are done without the user watching for them."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QWidget


def ask_attention(window: QWidget) -> None:
    """Flags ``window`` in the taskbar (its entry flashes or is marked, as the desktop does it) until it is next
    activated; nothing while the user is in the app (any of its windows or dialogs is the active one: the window's
    own error box or quit question too), or the window is not shown (closing)."""
    if window.isVisible() and QApplication.activeWindow() is None:
        QApplication.alert(window)
