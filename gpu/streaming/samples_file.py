"""A quantize run's calibration samples on disk (``SAMPLES`` in its parts folder): written with their digest
(``save_samples``), read back only where that digest still matches (``verified_samples``), and counted from the
file's header alone for the disk space check (``kept_samples``). A sample is a dict of the transformer's inputs
(``CalibSample``: hidden_states [1, S_img, C], encoder_hidden_states [1, S_txt, D_txt], ids, pooled projections,
timestep, guidance)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open
from safetensors.torch import save_file

from gpu.atomic import atomic_path
from gpu.checkpoint.format import file_sha256
from gpu.errors import CheckpointError
from gpu.safetensors_header import read_safetensors_header
from gpu.streaming.parts_folder import SAMPLES

if TYPE_CHECKING:  # imported, gpu.quantizer's package would import the engine, which imports this module
    from gpu.quantizer.shared import CalibSample


def verified_samples(parts: Path, manifest: dict) -> list[CalibSample] | None:
    """The saved samples, if the file is there and matches the digest recorded with it; else None."""
    rec = manifest.get("samples")
    path = parts / SAMPLES
    if not isinstance(rec, dict) or not path.is_file() or file_sha256(path) != rec.get("sha256"):
        return None
    return load_samples(path)


def save_samples(path: Path, samples: list[CalibSample]) -> str:
    """Writes the samples atomically -> the file's SHA-256 (the same samples give the same bytes)."""
    flat = {f"{i}.{k}": v.detach().cpu().clone().contiguous() for i, s in enumerate(samples) for k, v in s.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"count": str(len(samples))})
        return file_sha256(tmp)


def load_samples(path: Path) -> list[CalibSample]:
    """The samples ``save_samples`` wrote to ``path``, read into memory (not mapped)."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        n = int(f.metadata()["count"])
        out: list[CalibSample] = [{} for _ in range(n)]
        for k in f.keys():
            i, name = k.split(".", 1)
            out[int(i)][name] = f.get_tensor(k).clone()  # not mapped: the parts folder is removed at the end
    return out


def sample_tokens(sample: CalibSample) -> int:
    """The tokens a block sees for ``sample``: image and text."""
    return sample["hidden_states"].shape[1] + sample["encoder_hidden_states"].shape[1]


def kept_samples(parts: Path, manifest: dict) -> tuple[int, int] | None:
    """(how many samples, tokens per sample) of the samples file ``manifest`` records, read from its header only;
    None when there is none to keep (the run records them)."""
    path = parts / SAMPLES
    if not isinstance(manifest.get("samples"), dict) or not path.is_file():
        return None
    try:
        _n, header = read_safetensors_header(path)
        count = int(header["__metadata__"]["count"])
        tokens = header["0.hidden_states"]["shape"][1] + header["0.encoder_hidden_states"]["shape"][1] if count else 0
    except (CheckpointError, KeyError, IndexError, TypeError, ValueError):  # not the engine's samples: recorded again
        return None
    return count, int(tokens)
