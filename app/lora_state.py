"""Observable state of the LoRA panel: the LoRA files the user added, each enabled or not, with a strength and
editable trigger words. Only the header of a file is read here (metadata, key names); the engine reads and
checks the weights when it applies them, and reports problems as errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal


@dataclass
class LoraEntry:
    path: Path
    name: str
    enabled: bool = False
    strength: float = 1.0
    trigger_words: str = ""
    info: str = ""  # format / rank line shown under the name
    extra: dict = field(default_factory=dict)


def read_header(path: Path) -> tuple[str, str]:
    """(trigger words, info line) from the safetensors header alone; ("", reason) when unreadable."""
    from gpu.lora.formats import trigger_words_from

    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                return "", "not a .safetensors file"
            header = json.loads(f.read(size))
    except (OSError, ValueError):
        return "", "not a .safetensors file"
    meta = header.pop("__metadata__", {}) or {}
    ranks = {v["shape"][0] for k, v in header.items() if k.endswith((".lora_A.weight", ".lora_down.weight"))}
    keys = list(header)
    fmt = ("kohya" if any(k.startswith("lora_unet_") for k in keys)
           else "BFL/ComfyUI" if any(k.startswith(("diffusion_model.", "double_blocks.")) for k in keys)
           else "diffusers/PEFT")  # fmt: skip
    rank = f"rank {max(ranks)}" if ranks else "no LoRA factors"
    return ", ".join(trigger_words_from(meta)), f"{fmt}, {rank}, {len(keys)} tensors"


class LoraState(QObject):
    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[LoraEntry] = []

    def add_file(self, path: str | Path, enabled: bool = False, strength: float = 1.0) -> LoraEntry:
        path = Path(path).expanduser().resolve()
        for e in self.entries:
            if e.path == path:
                return e
        words, info = read_header(path)
        entry = LoraEntry(path, path.stem, enabled, strength, words, info)
        self.entries.append(entry)
        self.changed.emit()
        return entry

    def add_folder(self, folder: str | Path) -> list[LoraEntry]:
        return [self.add_file(p) for p in sorted(Path(folder).expanduser().glob("*.safetensors"))]

    def remove(self, entry: LoraEntry) -> None:
        self.entries = [e for e in self.entries if e is not entry]
        self.changed.emit()

    def set_enabled(self, entry: LoraEntry, enabled: bool) -> None:
        entry.enabled = bool(enabled)

    def set_strength(self, entry: LoraEntry, strength: float) -> None:
        entry.strength = max(-2.0, min(2.0, float(strength)))

    def requests(self) -> list[tuple[str, float]]:
        """What a generation request carries: enabled LoRAs with their strengths."""
        return [(str(e.path), e.strength) for e in self.entries if e.enabled]

    def trigger_text(self) -> str:
        return ", ".join(e.trigger_words for e in self.entries if e.enabled and e.trigger_words.strip())

    def add_shipped(self) -> None:
        """The example LoRAs in resources/loras (off until the user enables them)."""
        from gpu.paths import resources_dir

        folder = resources_dir() / "loras"
        if folder.is_dir():
            self.add_folder(folder)
