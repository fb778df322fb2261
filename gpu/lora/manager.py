"""Per-model LoRA state: which LoRA files at which strengths are applied right now.

``LoraManager.set([(path, strength), ...])`` makes the model (and, for files with a CLIP or T5 part, the
pipeline's text encoders) carry exactly that set: it reads and checks every file and every target against the
models first (an error leaves the model as it was), then restores the
originals and applies the new set. Asking for the set already applied does nothing, so the engine can call it
before every image. Strength 0 means "not applied" (bit-exact no-op). Files are re-read when they change on
disk (size/mtime). The same LoRA twice in one set (one path twice, or identical files) is refused: it would
count double."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from gpu.lora.apply import apply_deltas, plan, restore
from gpu.lora.formats import LoraError, LoraFile, check_lora_file, read_lora, unreadable_lora
from gpu.lora.metadata import MAX_STRENGTH, file_stamp

_ATTR = "_nibble_lora_manager"
_ENCODER_SET_ATTR = "_nibble_lora_set"  # on a text encoder: the LoRAs on it (``encoder_loras``)


@dataclass(frozen=True)
class ActiveLora:
    file: LoraFile
    strength: float

    def describe(self) -> dict:
        f = self.file
        return {
            "name": f.name,
            "file": str(f.path),
            "strength": self.strength,
            "hash": f.short_hash,
            "format": f.format,
            "rank": f.rank,
            "changes": f.components,
            "trigger_words": list(f.trigger_words),
        }


def split_lora_arg(text: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` (CLI) -> (path, strength); a Windows drive colon is not a separator."""
    if not text.strip():
        raise LoraError("--lora needs a file name (FILE or FILE:STRENGTH)")
    head, sep, tail = text.rpartition(":")
    if sep and head and not (len(head) == 1 and head.isalpha()):
        try:
            return head, float(tail)
        except ValueError:
            # A colon can belong to the file name; only when it does not is the text after it a bad strength.
            if not Path(text).exists() and Path(head).is_file():
                raise LoraError(
                    f"--lora {text}: strength {tail!r} is not a number",
                    hint=f"give a number from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}, e.g. 0.8",
                ) from None
    return text, 1.0


def parse_lora_arg(text: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` (CLI) -> (path, strength), checked as far as it can be without the model (the
    strength's range; the file from its header: there, readable, a FLUX.1 LoRA), so that a mistake is said
    before the model loads, not seconds later."""
    path, strength = split_lora_arg(text)
    check_strength(strength, f"--lora {text}")
    check_lora_file(path)
    return path, strength


def parse_lora_args(texts: list[str]) -> list[tuple[str, float]]:
    """The CLI's ``--lora`` values -> [(path, strength)], each checked by ``parse_lora_arg``, and one file given
    twice refused here too (the manager refuses it, but only once the model has loaded; identical copies under
    other names are still found there, from their hashes)."""
    loras = [parse_lora_arg(text) for text in texts]
    seen: dict[Path, Path] = {}
    for path, strength in loras:
        if strength == 0.0:  # skipped when applied, as the manager does
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise _asked_twice(seen[key], Path(path))
        seen[key] = Path(path)
    return loras


def _asked_twice(first: Path, second: Path) -> LoraError:
    """The error for one LoRA asked for twice: one file (``first`` and ``second`` the same path) or two identical
    files."""
    same = f"{second} is asked for twice"
    if first.resolve() != second.resolve():
        same = f"{first.name} and {second.name} are the same LoRA (identical files)"
    return LoraError(same, hint=f"use it once, at the strength you want (-{MAX_STRENGTH:g} to {MAX_STRENGTH:g})")


def check_strength(strength: float, name: str = "LoRA") -> float:
    """``strength`` as a float, if the engine applies it (finite, within ±``MAX_STRENGTH``); else ``LoraError``."""
    strength = float(strength)
    if not math.isfinite(strength) or abs(strength) > MAX_STRENGTH:
        raise LoraError(f"{name}: strength {strength:g} is not possible",
                        hint=f"use a strength from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}")  # fmt: skip
    return strength


class LoraManager:
    """The LoRAs on one transformer and, for files with a CLIP or T5 part, on its pipeline's text encoders."""

    def __init__(self, model: nn.Module, encoders: dict[str, nn.Module | None] | None = None) -> None:
        self.model = model
        self.encoders: dict[str, nn.Module] = {n: m for n, m in (encoders or {}).items() if m is not None}
        self.active: list[ActiveLora] = []
        self._key: tuple = ()
        self._files: dict[str, tuple[tuple[int, int], LoraFile]] = {}

    def use_encoders(self, encoders: dict[str, nn.Module | None]) -> None:
        """The text encoders LoRAs' CLIP/T5 parts go to; other ones than before first get their originals back."""
        encoders = {n: m for n, m in encoders.items() if m is not None}
        if {n: id(m) for n, m in encoders.items()} != {n: id(m) for n, m in self.encoders.items()}:
            self.clear()
            self.encoders = encoders

    def read(self, path: str | Path) -> LoraFile:
        p = Path(path).expanduser()
        try:
            stamp = file_stamp(p)
        except OSError as err:
            check_lora_file(p)  # says what is wrong: gone, a folder, unreadable
            raise unreadable_lora(p, err) from err  # it is there again (a race): still no stat to go by
        cached = self._files.get(str(p.resolve()))
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_lora(p))
            self._files[str(p.resolve())] = cached
        return cached[1]

    def _wanted(self, loras: list[tuple[str | Path, float]] | None) -> tuple[list[ActiveLora], tuple]:
        """The LoRAs to apply (files read and checked, strength 0 ones skipped) and the key of that set."""
        wanted: list[ActiveLora] = []
        for path, strength in loras or []:
            f = self.read(path)
            s = check_strength(strength, f.path.name)
            if s == 0.0:
                continue
            twin = next((a.file for a in wanted if a.file.sha256 == f.sha256), None)
            if twin is not None:  # applied twice, it would count double (and be listed twice in the PNG)
                raise _asked_twice(twin.path, f.path)
            wanted.append(ActiveLora(f, s))
        return wanted, tuple((str(a.file.path), a.file.sha256, a.strength) for a in wanted)

    def is_applied(self, loras: list[tuple[str | Path, float]] | None) -> bool:
        """Whether the model carries exactly these LoRAs already (so ``set`` would change nothing). Reads the
        files: a missing or broken one raises ``LoraError`` here."""
        return self._wanted(loras)[1] == self._key

    def set(self, loras: list[tuple[str | Path, float]] | None) -> list[ActiveLora]:
        """Apply exactly these LoRAs (strength 0 ones are skipped); returns the applied list."""
        wanted, key = self._wanted(loras)
        if key == self._key:
            return self.active
        models = {"transformer": self.model, **self.encoders}
        deltas = plan(models, [(a.file, a.strength) for a in wanted])  # raises before anything changes
        self.clear()
        try:
            apply_deltas(deltas)
        except BaseException:  # e.g. out of memory half-way: no half-applied set, the model goes back to no LoRAs
            self.clear()
            raise
        self.active, self._key = wanted, key
        for name, encoder in self.encoders.items():
            on = tuple((a.file.sha256, a.strength) for a in wanted if name in a.file.components)
            encoder.__dict__[_ENCODER_SET_ATTR] = on
        return self.active

    def clear(self) -> None:
        for module in (self.model, *self.encoders.values()):
            restore(module)
        for encoder in self.encoders.values():
            encoder.__dict__.pop(_ENCODER_SET_ATTR, None)
        self.active, self._key = [], ()


def encoder_loras(encoder: nn.Module) -> tuple:
    """The LoRAs on a text encoder now, as (file SHA-256, strength) pairs (``()``: none): what an encoding made
    with it depends on, beside the prompt (``gpu.generation.memory`` keys its prompt cache on it)."""
    return encoder.__dict__.get(_ENCODER_SET_ATTR, ())


def manager_for(model: nn.Module, encoders: dict[str, nn.Module | None] | None = None) -> LoraManager:
    """The model's LoRA manager (created on first use, lives as long as the model). ``encoders``: the pipeline's
    text encoders by component name (``text_encoder``, ``text_encoder_2``), which LoRAs' CLIP/T5 parts change;
    without them a file with such a part is refused."""
    manager = model.__dict__.get(_ATTR)
    if manager is None:
        manager = LoraManager(model)
        model.__dict__[_ATTR] = manager
    if encoders is not None:
        manager.use_encoders(encoders)
    return manager


def lora_hashes(active: list[ActiveLora]) -> str:
    """A1111's ``Lora hashes`` value: ``name: hash, name2: hash2``."""
    return ", ".join(f"{a.file.name}: {a.file.short_hash}" for a in active)
