"""The finished blocks' files in a quantize run's parts folder (``block-XXXX.safetensors``): each written
atomically with its SHA-256 recorded in the manifest (``write_shard``), and checked against it before a run resumes
(``damaged_shards``: a missing or damaged one is redone, never assembled)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from gpu.atomic import atomic_path
from gpu.checkpoint.format import file_sha256


def damaged_shards(parts: Path, done: dict) -> dict[str, str]:
    """Finished blocks whose shard is missing, damaged or unrecorded -> what is wrong (they are redone)."""
    bad = {}
    for name, rec in done.items():
        file = rec.get("file") if isinstance(rec, dict) else None
        if not isinstance(file, str) or not re.fullmatch(r"block-\d{4}\.safetensors", file):
            bad[name] = f"the manifest's record of {name} is invalid"
        elif not (parts / file).is_file():
            bad[name] = f"{file} is missing"
        elif file_sha256(parts / file) != rec.get("sha256"):
            bad[name] = f"{file} is damaged (checksum mismatch)"
    return bad


def write_shard(path: Path, shard: dict[str, torch.Tensor]) -> str:
    """Writes a finished block's tensors (name -> tensor, any shape and dtype) to ``path`` atomically -> the file's
    SHA-256, which the manifest records: checked on resume, a damaged shard is redone, never assembled."""
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in shard.items()}, str(tmp))
        return file_sha256(tmp)
