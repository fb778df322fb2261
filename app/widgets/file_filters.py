"""Name filters of the app's file dialogs."""

from __future__ import annotations

import sys


def safetensors_filter(label: str) -> str:
    """A file dialog's name filters: ``label``'s files, ``.safetensors`` in any case (the library and the LoRA
    panel take ``MINE.SAFETENSORS``), then all files. Qt's own dialog matches without case, but GTK's (and the
    desktop portal's) match a pattern as written: "*.safetensors" hid ``Style.SafeTensors`` on Linux. So there
    each letter is a class of both cases; Windows' and macOS' dialogs match without case, and would read such a
    class as letters."""
    if sys.platform in ("win32", "darwin"):
        pattern = "*.safetensors"
    else:
        pattern = "*." + "".join(f"[{c}{c.upper()}]" for c in "safetensors")
    return f"{label} ({pattern});;All files (*)"
