"""The header of any ``.safetensors`` file, read and checked without torch (the app reads LoRA headers while
its window is still opening; checkpoints and model folders are checked with the same rules)."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from gpu.errors import CheckpointError, FileProblem, ModelLoadError, named_few


def is_safetensors_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file of this name is a safetensors file by its name: ``.safetensors``, whatever its case (Windows
    users save ``MODEL.SAFETENSORS``)."""
    return os.fspath(name).lower().endswith(".safetensors")

_MAX_HEADER = 256 << 20
AGAIN = "copy or download the file again"  # what fixes a damaged or incomplete copy (every header problem here)
MODEL_AGAIN = "copy or download the model again"  # the same for a file inside a model folder


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")  # what torch.save files are usually named


def is_pickle(head: bytes) -> bool:
    """Whether a file's first bytes are torch.save's zip archive or a bare pickle (protocol 2 and up): what
    .ckpt/.pt/.bin checkpoints and LoRAs are, whatever their name. Read as safetensors, those bytes give an
    absurd header length, which would name the file "truncated" instead of what it is."""
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


PICKLE_PROBLEM = (f"a PyTorch pickle file ({'/'.join(PICKLE_SUFFIXES)}), not safetensors: pickles can run code "
                  "when they are opened, so they are never loaded")  # fmt: skip


READ_CHUNK = 16 << 20  # bytes per read and per hash update: the most held at a time for data that is not kept


def fill_hashed(f: BinaryIO, view: memoryview, name: str, *hashes: Any) -> None:
    """Fills ``view`` with the next bytes of ``f`` (file ``name``) and updates each of ``hashes`` with them as they
    lie in ``view`` (the memory the caller keeps), so a file rewritten during the read can make a checksum fail
    but never hand over unchecked bytes. ``CheckpointError`` when the file ends first."""
    for at in range(0, len(view), READ_CHUNK):
        part = view[at : at + READ_CHUNK]
        got = 0
        while got < len(part):
            n = f.readinto(part[got:])
            if not n:
                raise CheckpointError(f"{name}: truncated: the file got shorter while it was being read (is "
                                      "something writing to it?)", hint=AGAIN)  # fmt: skip
            got += n
        for h in hashes:
            h.update(part)


# Fills memory of the caller's (``view``) with the next ``len(view)`` bytes of a tensor, hashed as ``fill_hashed``.
TensorReader = Callable[[memoryview], None]
# What ``read_data_hashed`` does with each tensor: (its key, its header entry, a reader of its bytes) -> None.
TensorSink = Callable[[str, dict[str, Any], TensorReader], None]

_MIN_SCRATCH = 64 << 10  # the smallest scratch buffer for bytes not kept: a few small gaps need no 16 MiB


def read_data_hashed(f: BinaryIO, name: str, header: dict[str, Any], sink: TensorSink | None, *hashes: Any) -> None:
    """Reads the data section of the safetensors file ``f`` (file ``name``, open at the section's start with its
    checked ``header``, as ``open_safetensors`` gives them) once, in file order, up to the last tensor's end, and
    updates each of ``hashes`` with every byte of it: the tensors' and any gap between them. ``sink`` is called
    for each tensor and reads as much of its bytes as it keeps through the reader it is given, into its own memory
    (a fresh buffer, a tensor's, a staging buffer), so that what is hashed is the bytes the caller keeps; what it
    leaves unread (all, without ``sink``) passes through one scratch buffer of at most ``READ_CHUNK`` bytes.
    ``CheckpointError`` when two tensors share bytes or the file ends first."""
    # Ties (empty tensors) stay in the header's order: the order a caller's tensors are made in.
    slots = sorted(
        (((e["data_offsets"][0], e["data_offsets"][1]), k) for k, e in header.items() if k != "__metadata__"),
        key=lambda slot: slot[0],
    )
    scratch = memoryview(bytearray(0))
    key, left = "", 0  # the tensor being read, and how many of its bytes are not read yet

    def skip(count: int) -> None:
        nonlocal scratch
        if count > len(scratch):
            scratch = memoryview(bytearray(min(max(count, _MIN_SCRATCH), READ_CHUNK)))
        while count > 0:
            step = min(count, len(scratch))
            fill_hashed(f, scratch[:step], name, *hashes)
            count -= step

    def read(view: memoryview) -> None:
        nonlocal left
        if len(view) > left:
            raise ValueError(f"{name}: {len(view)} bytes asked of tensor {key}, which has {left} more")
        fill_hashed(f, view, name, *hashes)
        left -= len(view)

    at = 0
    for (begin, end), key in slots:
        if begin < at:
            raise CheckpointError(f"{name}: tensor {key} shares bytes of the data section with another: the file is "
                                  "corrupt", hint=AGAIN)  # fmt: skip
        skip(begin - at)
        left = end - begin
        if sink is not None:
            sink(key, header[key], read)
        skip(left)
        at = end


def read_safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(header length, parsed header) of any safetensors file, checked to be well-formed and complete (the
    file holds every byte the header describes); plain-words ``CheckpointError`` otherwise."""
    with open_safetensors(path) as (_, n, header):
        return n, header


def element_counts(header: dict[str, Any], prefix: str = "") -> dict[str, int]:
    """dtype (safetensors' name, "BF16") -> how many elements the tensors of ``header`` (``read_safetensors_header``'s)
    whose names start with ``prefix`` hold, from their shapes alone."""
    counts: dict[str, int] = {}
    for key, entry in header.items():
        if key != "__metadata__" and key.startswith(prefix):
            counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + math.prod(entry["shape"])
    return counts


@contextmanager
def open_safetensors(path: Path) -> Iterator[tuple[BinaryIO, int, dict[str, Any]]]:
    """The file open (at the start of its data section) with its header length and checked header,
    as ``read_safetensors_header`` checks them. A reader that takes the data from this same handle reads the
    file whose header was checked, even if another file is renamed over the path meanwhile. An ``OSError``
    inside the block (the header's read or the caller's) becomes the plain-words ``CheckpointError``."""
    name = Path(path).name
    try:
        with open(path, "rb") as f:
            n, header = _read_header(f, name)
            yield f, n, header
    except OSError as err:
        reason = err.strerror or str(err)
        raise FileProblem(name, f"cannot read the file ({reason})",
                          "check that the file exists and that you may read it", reason) from None


def _read_header(f: BinaryIO, name: str) -> tuple[int, dict[str, Any]]:
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
    plausible = n is not None and n <= _MAX_HEADER and 8 + n <= size
    # Only bytes that are no header length can be a pickle's start: a safetensors file whose header is 640, 896,
    # 1152 or 1408 bytes long (+ k * 64 KiB) begins with the same two bytes as a pickle, and was refused as one.
    if not plausible and is_pickle(head):
        raise FileProblem(name, PICKLE_PROBLEM, "use the .safetensors version of the file")
    if n is None:
        raise FileProblem(name, f"not a safetensors file (only {size} bytes)", AGAIN)
    if not plausible:
        # What comes first is what the user can act on; the header's length, often an absurd number
        # read from bytes that are no header at all, only backs it up.
        raise FileProblem(name, f"not a safetensors file, or a damaged/incomplete copy (its header claims {n} "
                          f"bytes, the file has {size})", AGAIN)  # fmt: skip
    raw = f.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise FileProblem(name, "the header is not valid JSON: the file is corrupt", AGAIN) from None
    if not isinstance(header, dict):
        raise FileProblem(name, "the header is not a JSON object: the file is corrupt", AGAIN)
    data_len = _check_entries(name, header)
    if 8 + n + data_len > size:
        raise FileProblem(name, f"truncated: the header describes {8 + n + data_len} bytes, the file has {size}",
                          AGAIN)
    return n, header


# What ``from_pretrained`` loads from a component folder when no variant is asked for, first found first:
# diffusers (transformer/, vae/) looks for the sharded index before the single file, transformers (text encoders)
# for the single file first. A variant (``diffusion_pytorch_model.fp16.safetensors``) loads only when asked for.
LOADED_WEIGHTS = ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors",
                  "model.safetensors", "model.safetensors.index.json")  # fmt: skip


def loaded_weight_files(folder: Path) -> list[Path]:
    """The ``.safetensors`` files of a model folder's component (``folder`` = e.g. ``transformer/``) that
    diffusers' or transformers' ``from_pretrained`` loads, in name order: the shards a ``LOADED_WEIGHTS`` index
    lists, or that single file; [] when there is neither. Never a variant or any other file lying beside them: a
    ``.fp16`` copy beside the main file counted every parameter twice (the estimated VRAM, the memory plan, the
    model hash). ``ValueError`` for an index that lists no weight files (unreadable, not JSON, no weight_map, an
    empty one); ``OSError`` when the folder cannot be read. Shards are not checked to exist
    (``checked_weight_files`` does)."""
    return _loaded_weights(folder)[1]


def _loaded_weights(folder: Path) -> tuple[str | None, list[Path]]:
    """(the name of the index that lists them, None for a single file or none, ``loaded_weight_files``): the
    index is named from this one look, so a file removed meanwhile cannot leave the caller without it."""
    for name in LOADED_WEIGHTS:
        found = folder / name
        if not found.is_file():
            continue
        if not name.endswith(".index.json"):
            return None, [found]
        try:
            weight_map = json.loads(found.read_bytes()).get("weight_map")
            shards = sorted({str(shard) for shard in weight_map.values()})
        except (OSError, ValueError, AttributeError, TypeError):  # unreadable, not JSON, or no weight_map table
            raise ValueError(f"{name} is damaged: it does not list the weight files") from None
        if not shards:  # from_pretrained would load nothing from it: every weight left unset
            raise ValueError(f"{name} lists no weight files (its weight_map is empty)")
        return name, [folder / shard for shard in shards]
    return None, []


def _pickles_in(folder: Path) -> list[str]:
    """The names of the PyTorch pickle files (``PICKLE_SUFFIXES``, e.g. ``pytorch_model.bin``) in ``folder``."""
    return sorted(f.name for f in folder.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES and f.is_file())


def checked_weight_files(folder: Path, model: str) -> list[Path]:
    """The weight files of a model folder's component (``folder`` = e.g. ``transformer/``) that loading it reads
    (``loaded_weight_files``), each one present and its header and size checked as ``read_safetensors_header``
    checks them. Headers and sizes only: torch-free and cheap enough for the GUI thread (a truncated or deleted
    file passed the quantize wizard's source page, and the run failed at once). ``ModelLoadError`` naming
    ``model`` and the missing or damaged file otherwise, with a hint to copy or download the model again; a
    component whose weights are only PyTorch pickles is named as such (the app loads safetensors only, and
    from_pretrained would have loaded the pickle)."""
    where = f"{model}: {folder.name}/"
    try:
        index, files = _loaded_weights(folder)
        others = sorted(f.name for f in folder.glob("*.safetensors"))
        pickles = [] if files or others else _pickles_in(folder)
    except OSError as err:
        raise ModelLoadError(f"{where} cannot be read ({err.strerror or err})", MODEL_AGAIN) from None
    except ValueError as err:
        raise ModelLoadError(f"{where}{err}", MODEL_AGAIN) from None
    if not files and others:  # e.g. only diffusion_pytorch_model.fp16.safetensors, which loads only when asked for
        raise ModelLoadError(
            f"{where} holds no {LOADED_WEIGHTS[1]} (nor its sharded index), the weights that load; only "
            f"{named_few(others)}",
            f"{MODEL_AGAIN}; a variant such as .fp16 loads only when asked for: renamed to {LOADED_WEIGHTS[1]} "
            "it is the model's weights")  # fmt: skip
    if pickles:
        what = "a PyTorch pickle" if len(pickles) == 1 else "PyTorch pickles"
        raise ModelLoadError(f"{where} holds only {named_few(pickles)}, {what}, which Nibble Studio never loads",
                             "get the .safetensors version of this model")  # fmt: skip
    if not files:
        raise ModelLoadError(f"{where} holds no .safetensors weights ({folder})", MODEL_AGAIN)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        listed = f", which {index} lists" if index else ""  # a single file is missing only when removed just now
        raise ModelLoadError(f"{where} lacks {named_few(missing)}{listed}", MODEL_AGAIN)
    for f in files:
        try:
            read_safetensors_header(f)
        except CheckpointError as err:
            raise ModelLoadError(f"{where}{err}", MODEL_AGAIN) from None
    return files


def _check_entries(name: str, header: dict[str, Any]) -> int:
    """Checks the header's structure (what safetensors itself would reject deep inside a load, and what our
    readers index blindly); returns the data section's length."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FileProblem(name, "the header's __metadata__ is not a table of texts: the file is corrupt", AGAIN)
    data_len = 0
    for key, e in header.items():
        if key == "__metadata__":
            continue
        ok = (
            isinstance(e, dict) and isinstance(e.get("dtype"), str)
            and isinstance(e.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in e["shape"])
            and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
            and all(isinstance(o, int) for o in e["data_offsets"]) and 0 <= e["data_offsets"][0] <= e["data_offsets"][1]
        )  # fmt: skip
        if not ok:
            raise FileProblem(name, f"the header's entry for tensor {key!r} is malformed: the file is corrupt", AGAIN)
        data_len = max(data_len, e["data_offsets"][1])
    return data_len
