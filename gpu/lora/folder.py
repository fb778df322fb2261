"""Which files of a folder are LoRA files: ``.safetensors`` in any case (``Style.SafeTensors`` from a Windows
download is one on Linux too), in the folder and its subfolders, as ComfyUI and Forge keep them
(``loras/flux/style/*.safetensors``). Torch-free, headers not read: only names and folder listings."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpu.paths import file_identity
from gpu.safetensors_header import PICKLE_SUFFIXES, is_safetensors_name

# Levels of subfolders looked into below the folder picked: ComfyUI's deepest usual one is loras/flux/style/artist
# (3); a folder much deeper is more likely a whole disk's tree picked by mistake than LoRAs.
MAX_DEPTH = 8


def is_lora_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file of this name is a LoRA file by its name: ``.safetensors``, whatever its case."""
    return is_safetensors_name(name)


@dataclass
class FolderListing:
    """What ``list_lora_files`` found under a folder: the LoRA files (by name, sorted), the pickle files beside
    them (named when there is no LoRA file: they are never read), the subfolders that could not be listed and
    those left out for being deeper than ``MAX_DEPTH``."""

    files: list[Path] = field(default_factory=list)
    pickles: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)
    too_deep: list[Path] = field(default_factory=list)


def list_lora_files(folder: str | Path, stop: Callable[[], bool] = lambda: False) -> FolderListing:
    """The LoRA files of ``folder`` and its subfolders (``is_lora_name``), sorted by their path below it, folder
    by folder. Hidden files and folders (a dot name, or Windows' hidden attribute: macOS' ``._x.safetensors``
    resource forks, ``.git``, ``.cache``) are left out; a folder linked to more than once (a link to a parent: a
    loop) is listed once; a subfolder that cannot be listed is noted and skipped. ``stop`` is asked between two
    folders: when it says so, what was found until then is returned. Raises ``OSError`` when ``folder`` itself
    cannot be listed (gone, no permission, not a folder)."""
    root = Path(folder)
    found = FolderListing()
    seen: set[tuple[int, int] | str] = set()
    pending = [(root, 0)]
    while pending and not stop():
        where, depth = pending.pop()
        try:
            entries = _listing(where, seen)
        except OSError:
            if where == root:
                raise
            found.unreadable.append(where)
            continue
        subfolders = []
        for entry in entries:
            if _is_folder(entry):
                (found.too_deep if depth >= MAX_DEPTH else subfolders).append(Path(entry.path))
            elif is_lora_name(entry.name):
                found.files.append(Path(entry.path))
            elif entry.name.lower().endswith(PICKLE_SUFFIXES):
                found.pickles.append(Path(entry.path))
        # Depth first, in name order: the last pushed is listed next.
        pending.extend((sub, depth + 1) for sub in reversed(subfolders))
    return found


def _listing(where: Path, seen: set[tuple[int, int] | str]) -> list[os.DirEntry[str]]:
    """The visible entries of the folder ``where`` by name (case-blind, as file managers sort); none when it was
    listed already (by another path: a link to it, or to a folder above it). Raises ``OSError``."""
    # Through links: the folder itself, which any path to it shares. Not its inode alone: a drive that says 0 for
    # every folder had all its subfolders skipped as listed already.
    key = file_identity(where)
    if key in seen:
        return []
    seen.add(key)
    with os.scandir(where) as it:
        entries = [e for e in it if not _hidden(e)]
    return sorted(entries, key=lambda e: (e.name.casefold(), e.name))


def _hidden(entry: os.DirEntry[str]) -> bool:
    """A dot name, or (on Windows) the hidden attribute."""
    if entry.name.startswith("."):
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0) if os.name == "nt" else 0
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """Whether the entry is a folder, or a link to one (followed: ``_listing`` lists each folder once); a link to
    nothing, or one the system will not follow, is no folder."""
    try:
        return entry.is_dir()
    except OSError:
        return False
