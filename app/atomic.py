"""Crash-safe writes for the app's own files (settings, library): the engine's temp-fsync-rename writer."""

from __future__ import annotations

from pathlib import Path

from gpu.atomic import atomic_write_bytes


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


__all__ = ["atomic_write_bytes", "atomic_write_text"]
