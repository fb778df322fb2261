"""SVDQ checkpoint format, version 1.

A standard ``.safetensors`` file (so any safetensors reader can list it; never pickle):

* tensors: every parameter of the base transformer, except that each quantized linear ``<name>`` is
  replaced by the ``SVDQLinear`` buffers ``<name>.qweight``, ``.wscales``, ``.smooth``, ``.lora_down``
  ``[K, r]``, ``.lora_up`` ``[N, r]``, ``.bias`` (+ ``.wscale_global``/``.ascale_global`` for NVFP4), in
  the canonical layout of ``gpu.modules.svdq_linear`` (kernels repack at load time).
* ``__metadata__["svdq"]``: JSON with ``format``/``format_version``, ``architecture``, ``model_class``,
  ``model_config`` (the base model's diffusers config), ``dtype``, ``layers`` (per layer: method,
  formats, group sizes, rank, in/out features), ``quantization`` (run settings), ``calibration``
  summary, ``base_model`` (library name, absolute and relative path of the pipeline it came from),
  ``scheduler`` (optional: the scheduler of the pipeline that calibrated it, ``{"class": name, "config": {...}}``;
  ``{}`` or absent in files written before it was recorded), ``tool`` version, ``created``, and ``sha256`` of the
  data section (every byte after the header).

The checksum is written without a second pass over the tensors: the header is first written with a
placeholder of the digest's length, the data section is hashed from disk, and the placeholder is
overwritten in place. The file appears under its final name only when complete (atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file

from gpu.atomic import atomic_path
from gpu.bfl_names import bfl_prefix
from gpu.errors import CheckpointError, NewerAppError
from gpu.file_kinds import PICK_MODEL, QUANTIZE_FIRST, USE_AS_LORA, foreign_quantized, other_file
from gpu.safetensors_header import AGAIN, TensorReader, open_safetensors, read_data_hashed, read_safetensors_header
from gpu.version import __version__

FORMAT_NAME = "nibble-svdq"
FORMAT_VERSION = 1
METADATA_KEY = "svdq"
_PLACEHOLDER = "Z" * 64  # same length as a hex SHA-256 digest, so patching never moves the data


@dataclass
class CheckpointMeta:
    architecture: str
    model_class: str
    model_config: dict[str, Any]
    dtype: str
    layers: dict[str, dict[str, Any]]  # name -> LayerSpec json + in_features/out_features/group sizes
    quantization: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    base_model: dict[str, Any] = field(default_factory=dict)
    # the scheduler the model was made with: {"class": diffusers class name, "config": its settings}; {}: not recorded
    scheduler: dict[str, Any] = field(default_factory=dict)
    tool: str = f"nibble-studio {__version__}"
    created: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def save_checkpoint(path: Path | str, tensors: dict[str, torch.Tensor], meta: CheckpointMeta,
                    replace: bool = True) -> Path:  # fmt: skip
    """Writes ``tensors`` (name -> CPU tensor) with ``meta`` atomically; fills ``meta.sha256``. ``replace=False``:
    a file at ``path`` as it is published stays, and ``OutputAppeared`` is raised (``atomic_path``)."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta.sha256 = _PLACEHOLDER
    with atomic_path(path, replace=replace) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: meta.to_json()})
        header_len, _ = read_safetensors_header(tmp)
        digest = file_sha256(tmp, 8 + header_len)
        _patch_placeholder(tmp, header_len, digest)
    meta.sha256 = digest
    return path


def _patch_placeholder(path: Path, header_len: int, digest: str) -> None:
    with open(path, "rb+") as f:
        f.seek(8)
        header = f.read(header_len)
        at = header.find(_PLACEHOLDER.encode())
        if at < 0 or header.find(_PLACEHOLDER.encode(), at + 1) >= 0:
            raise RuntimeError("checksum placeholder not found exactly once in the header")
        f.seek(8 + at)
        f.write(digest.encode())


def file_sha256(path: Path, start: int = 0) -> str:
    """Hex SHA-256 of the file's bytes from ``start`` on (the data section, or the whole file), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(16 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint_meta(path: Path | str) -> CheckpointMeta:
    """Parses and validates the metadata only (cheap: no tensor data is read)."""
    path = Path(path)
    _, header = read_safetensors_header(path)
    return _meta_from_header(path.name, header)


def read_buildable_meta(path: Path | str) -> CheckpointMeta:
    """``read_checkpoint_meta``, and the counts of repeated blocks its model_config gives checked against the
    blocks the header's tensor names hold (``_check_block_counts``), and its rotary embedding's split of a head
    (``_check_rope_axes``): the metadata a model skeleton is built from."""
    from gpu.adapters import adapter_named

    path = Path(path)
    _, header = read_safetensors_header(path)
    meta = _meta_from_header(path.name, header)
    adapter = adapter_named(meta.architecture)
    _check_block_counts(path.name, meta, header, adapter.block_counts)
    if adapter.rope_axes is not None:
        _check_rope_axes(path.name, meta.model_config, *adapter.rope_axes)
    return meta


def _meta_from_header(name: str, header: dict[str, Any]) -> CheckpointMeta:
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if raw is None:
        raise _not_svdq(name, header)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # also nesting past the parser's limit, or an over-long integer
        raise CheckpointError(f"{name}: the SVDQ metadata is not valid JSON", hint=REMAKE) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{name}: the SVDQ metadata is not a JSON object", hint=REMAKE)
    if data.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{name}: unknown checkpoint format {data.get('format')!r}", hint=REMAKE)
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise NewerAppError(
            f"{name}: SVDQ format version {version} is not supported (this app reads version {FORMAT_VERSION})",
            hint=NEWER_APP,
        )
    from gpu.adapters import adapter_named

    architecture = data.get("architecture")
    try:
        adapter = adapter_named(str(architecture))
    except ValueError as err:  # named: a model a newer version runs (the format's version is the same); else damage
        if isinstance(architecture, str) and architecture:
            raise NewerAppError(f"{name}: {err}", hint=NEWER_APP) from None
        raise CheckpointError(f"{name}: {err}", hint=REMAKE) from None
    if data.get("model_class") != adapter.diffusers_class:
        raise CheckpointError(
            f"{name}: model class {data.get('model_class')!r} does not match architecture {adapter.architecture!r}",
            hint=REMAKE,
        )
    known = {f for f in CheckpointMeta.__dataclass_fields__}
    try:
        meta = CheckpointMeta(**{k: v for k, v in data.items() if k in known})
    except TypeError as err:
        raise CheckpointError(f"{name}: incomplete SVDQ metadata ({err})", hint=REMAKE) from None
    _check_meta_types(name, meta)
    return meta


def _not_svdq(name: str, header: dict[str, Any]) -> CheckpointError:
    """The error for a .safetensors file without SVDQ metadata, saying what it is instead."""
    # Another tool's 4-bit file first: a Forge NF4 file has every BFL name of a 16-bit checkpoint.
    if known := foreign_quantized(header):
        return CheckpointError(f"{name}: {known[0]}", hint=known[1])
    if bfl_prefix(header) is not None:
        return CheckpointError(f"{name}: a single-file FLUX.1 checkpoint (16-bit or FP8), not a quantized model",
                               hint=QUANTIZE_FIRST)  # fmt: skip
    if known := other_file(header, PICK_MODEL, USE_AS_LORA):  # a LoRA, an SDXL checkpoint, ...
        return CheckpointError(f"{name}: {known[0]}", hint=known[1])
    return CheckpointError(f"{name}: not an SVDQ checkpoint (no '{METADATA_KEY}' metadata): not a quantized model",
                           hint=PICK_MODEL)  # fmt: skip


_STORAGE_DTYPES = ("float16", "bfloat16", "float32")


def _check_meta_types(name: str, meta: CheckpointMeta) -> None:
    """Every field the loader and ``inspect`` read has the type they read it as, so a hand-edited or damaged
    header is named here instead of failing deep inside them."""
    from gpu.modules.layer_spec import LayerSpec

    for field_name in ("model_config", "layers", "quantization", "calibration", "base_model", "scheduler"):
        if not isinstance(getattr(meta, field_name), dict):
            raise CheckpointError(f"{name}: the SVDQ metadata's {field_name} is not a JSON object", hint=REMAKE)
    if meta.dtype not in _STORAGE_DTYPES:
        raise CheckpointError(f"{name}: the SVDQ metadata's storage dtype {meta.dtype!r} is not one of "
                              f"{', '.join(_STORAGE_DTYPES)}", hint=REMAKE)  # fmt: skip
    if not isinstance(meta.sha256, str) or len(meta.sha256) != 64:
        raise CheckpointError(f"{name}: the SVDQ metadata has no checksum (sha256)", hint=REMAKE)
    for layer, entry in meta.layers.items():
        try:
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            LayerSpec.from_json(entry)
            check_fields(entry, _LAYER_FIELDS)
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{name}: the SVDQ metadata of layer {layer} is invalid ({err})",
                                  hint=REMAKE) from None  # fmt: skip
    for field_name, fields in (("base_model", _BASE_FIELDS), ("calibration", _CALIBRATION_FIELDS),
                               ("scheduler", _SCHEDULER_FIELDS)):  # fmt: skip
        try:
            check_fields(getattr(meta, field_name), fields)
            if field_name == "scheduler" and meta.scheduler and not fields.keys() <= meta.scheduler.keys():
                raise ValueError("a recorded scheduler needs both its class and its config")
        except ValueError as err:
            raise CheckpointError(f"{name}: the SVDQ metadata's {field_name} is invalid ({err})", hint=REMAKE) from None


def _check_block_counts(
    name: str, meta: CheckpointMeta, header: dict[str, Any], block_counts: tuple[tuple[str, str], ...]
) -> None:
    """The number of each repeated block the model_config gives (``ModelAdapter.block_counts``) is the number of
    those blocks the header's tensor names hold. Checked before the model is built: its cost grows with these
    counts (num_layers 10000 took 90 s and 1.8 GB to build, only to be refused for its missing tensors)."""
    held: dict[str, set[int]] = {blocks: set() for _, blocks in block_counts}
    for key in header:
        blocks, _, rest = key.partition(".")
        index = rest.partition(".")[0]
        if blocks in held and index.isascii() and index.isdigit():
            held[blocks].add(int(index))
    for config_key, blocks in block_counts:
        count = meta.model_config.get(config_key)
        # absent: the model's default, compared with the tensors once built; not a number: building names it
        if type(count) is int and count != len(held[blocks]):
            raise CheckpointError(f"{name}: the model_config in its SVDQ metadata gives {config_key} {count}, but "
                                  f"the file holds tensors of {len(held[blocks])} {blocks}", hint=REMAKE)  # fmt: skip


def _check_rope_axes(name: str, config: dict[str, Any], axes_key: str, head_key: str, head_default: int,
                     axes: int) -> None:  # fmt: skip
    """The model_config's rotary embedding widths (``config[axes_key]``: one per position axis) split an attention
    head (``config[head_key]``, else ``head_default``) whole: ``axes`` positive even numbers summing to its width.
    No tensor's shape shows them, so a hand-edited ``[16, 56, 40]`` passed every check and failed mid-image (the
    rotation's width is not the head's)."""
    widths = config.get(axes_key)
    head = config.get(head_key, head_default)
    if widths is None or type(head) is not int or head <= 0:  # absent: the model's default; a head width of no
        return  # positive number: building names it
    said = json.dumps(widths)[:60]
    if not isinstance(widths, list) or len(widths) != axes or \
            any(type(w) is not int or w <= 0 or w % 2 for w in widths):  # fmt: skip
        problem = f"it needs {axes} positive even numbers, one per position axis"
    elif sum(widths) != head:
        problem = f"they add up to {sum(widths)}, but the attention heads are {head} wide ({head_key})"
    else:
        return
    raise CheckpointError(f"{name}: the model_config in its SVDQ metadata gives {axes_key} {said}: {problem}",
                          hint=REMAKE)  # fmt: skip


# What fixes an SVDQ file whose header or tensors are not what its model needs (edited, damaged, or another model's)
REMAKE = f"re-quantize the model, or {AGAIN}"
# What runs an SVDQ file a newer version of the app wrote (a format version, or an architecture, it does not know)
NEWER_APP = "update Nibble Studio, or re-quantize the model with this version"

# The optional fields the loader, the library and ``inspect`` read of a layer, the base model and the calibration
# summary: field -> (the JSON types it may have, NoneType where it may be null; those types in words).
_NUMBER = ((int, float, type(None)), "a number or null")
_TEXT = ((str, type(None)), "a text or null")
_LAYER_FIELDS = {"alpha": _NUMBER, "error": _NUMBER, "kind": ((str,), "a text")}
_BASE_FIELDS = {"defaults": ((dict, type(None)), "a JSON object or null"), "name": _TEXT, "path": _TEXT,
                "relative_path": _TEXT}  # fmt: skip
_CALIBRATION_FIELDS = {"mean_layer_error": _NUMBER}
# the class and each setting of the config are checked where it is made (``gpu.checkpoint.scheduler``)
_SCHEDULER_FIELDS = {"class": ((str,), "a text"), "config": ((dict,), "a JSON object")}


def check_fields(data: dict[str, Any], fields: dict[str, tuple[tuple[type, ...], str]]) -> None:
    """ValueError naming the first of ``fields`` present in ``data`` with a type it may not have (true and false
    are no number: a bool passes only where ``bool`` is one of the types)."""
    for key, (types, words) in fields.items():
        value = data.get(key)
        if key in data and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
            raise ValueError(f"{key} is {json.dumps(data[key])[:40]}, not {words}")


def load_checkpoint(
    path: Path | str,
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
    device: torch.device | str | None = None,
) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """Validates everything and returns (meta, tensors on ``device``, CPU by default).

    The tensors are fresh memory (each of its header's dtype and shape), not views of a memory map: a file
    kept mapped could not be deleted, replaced or renamed on Windows while its model stays loaded. The data
    section is read once, in file order, and what is hashed is the bytes the tensors are made of (and any gap
    between them), so what loads is exactly what was verified, whatever happens to the file meanwhile.
    Host memory: one copy of the data on the CPU; on a GPU ``device`` only the largest tensor, as a staging
    buffer (a 12B model's 6.4 GiB held in private RAM while the text encoders load swapped a 16 GB laptop).

    ``expected``: name -> (shape, dtype) the model needs (from ``gpu.checkpoint.skeleton``); when given,
    missing/extra tensors and shape/dtype mismatches are reported by name, before any data is read."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    meta, _, tensors = _read_checked(Path(path), expected, keep=device)
    return meta, tensors


def verify_checkpoint(path: Path | str) -> CheckpointMeta:
    """Every check loading the model makes (sizes, checksum, tensor layout, and the tensor set its metadata's model
    needs), with the data read through one reusable buffer of at most 16 MiB and no tensor kept: for callers that
    only need to know the file is sound."""
    return inspect_checkpoint(path)[0]


def inspect_checkpoint(path: Path | str) -> tuple[CheckpointMeta, dict[str, dict[str, Any]]]:
    """``verify_checkpoint``'s checks, and (meta, each tensor's header entry: name -> its ``dtype``, ``shape``
    and ``data_offsets``) from the header they read: what ``main.py inspect`` prints. The tensor set is checked
    against the model skeleton the metadata describes (built on the meta device: no tensor memory, after its block
    counts were checked against the header's), as loading checks it: a file missing a tensor was said sound here,
    then refused by generate; so is the scheduler it records (``checked_scheduler``)."""
    from gpu.checkpoint.scheduler import checked_scheduler  # they build on this module
    from gpu.checkpoint.skeleton import expected_tensors, file_skeleton

    path = Path(path)
    meta = read_buildable_meta(path)
    checked_scheduler(path.name, meta.architecture, meta.scheduler)  # its recorded scheduler, as loading makes it
    expected = expected_tensors(file_skeleton(path, meta))
    meta, entries, _ = _read_checked(path, expected, keep=None)
    return meta, entries


def _read_checked(
    path: Path, expected: dict[str, tuple[tuple[int, ...], torch.dtype]] | None, keep: torch.device | None
) -> tuple[CheckpointMeta, dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """The checks and the read: (meta, the tensors' header entries, the tensors); ``keep``: where the tensors go
    (None: none is kept)."""
    # Header, size and data from one open file: one renamed over the path midway is never mixed in.
    with open_safetensors(path) as (f, header_len, header):
        meta = _meta_from_header(path.name, header)
        entries = {k: v for k, v in header.items() if k != "__metadata__"}
        data_len = max((int(e["data_offsets"][1]) for e in entries.values()), default=0)
        size = os.fstat(f.fileno()).st_size
        if size != 8 + header_len + data_len:
            raise CheckpointError(
                f"{path.name}: truncated or padded: the header describes {8 + header_len + data_len} bytes, "
                f"the file has {size}",
                hint=AGAIN,
            )
        layout = _data_layout(path.name, entries)
        if expected is not None:  # a wrong model is named before gigabytes are read
            _check_tensor_set(path.name, entries, expected)
        tensors, digest = _read_data(f, path.name, header, layout, keep)
    if digest != meta.sha256:
        raise CheckpointError(f"{path.name}: checksum mismatch: the tensor data is corrupt", hint=AGAIN)
    return meta, entries, tensors


@dataclass(frozen=True)
class _Slot:
    """Where one tensor's bytes lie in the data section (offsets from its start)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int


def _data_layout(name: str, entries: dict[str, Any]) -> list[_Slot]:
    """The tensors in file order, each checked to hold exactly the bytes its dtype and shape need and to share
    none with another (checked before any data is read, as safetensors itself refuses such files)."""
    slots = []
    for key, e in entries.items():
        dtype = TORCH_DTYPES.get(e["dtype"])
        if dtype is None:
            raise CheckpointError(f"{name}: tensor {key} has dtype {e['dtype']}, which no SVDQ checkpoint holds: "
                                  "the file is corrupt or was not written by Nibble Studio", hint=AGAIN)  # fmt: skip
        start, end = e["data_offsets"]
        need = math.prod(e["shape"]) * dtype.itemsize
        if end - start != need:
            raise CheckpointError(f"{name}: tensor {key} has {end - start} bytes of data, its shape {e['shape']} "
                                  f"and dtype {e['dtype']} need {need}: the file is corrupt", hint=AGAIN)  # fmt: skip
        slots.append(_Slot(key, dtype, tuple(e["shape"]), start, end))
    slots.sort(key=lambda s: (s.start, s.end))
    for before, after in zip(slots, slots[1:], strict=False):
        if after.start < before.end:
            raise CheckpointError(f"{name}: tensors {before.name} and {after.name} share bytes of the data section: "
                                  "the file is corrupt", hint=AGAIN)  # fmt: skip
    return slots


def _read_data(
    f: BinaryIO, name: str, header: dict[str, Any], layout: list[_Slot], keep: torch.device | None
) -> tuple[dict[str, torch.Tensor], str]:
    """Reads the data section (``f`` at its start, ``header`` its checked header, ``layout`` its tensors) once, in
    file order (``read_data_hashed``): each tensor into a fresh tensor of its dtype and shape on ``keep`` (a GPU's
    through one reused host staging buffer, copied after it was hashed) or, with ``keep`` None, through a scratch
    buffer. Returns (tensors, hex SHA-256 of every byte of the section: the tensors' bytes and any gap between
    them, the digest's definition since format v1)."""
    h = hashlib.sha256()
    tensors: dict[str, torch.Tensor] = {}
    slots = {slot.name: slot for slot in layout}
    staged = keep is not None and keep.type != "cpu"
    staging = torch.empty(max((s.end - s.start for s in layout), default=0) if staged else 0, dtype=torch.uint8)

    def into_tensor(key: str, _: dict[str, Any], read: TensorReader) -> None:
        slot = slots[key]
        t = torch.empty(slot.shape, dtype=slot.dtype, device=keep)
        # bf16 and fp8 have no numpy dtype: memory is filled through a flat uint8 view of it.
        raw = t.view(-1).view(torch.uint8)
        if staged:
            # A synchronous copy from pageable memory: the buffer is free for the next tensor when it returns.
            read(memoryview(staging[: raw.numel()].numpy()))
            raw.copy_(staging[: raw.numel()])
        else:
            read(memoryview(raw.numpy()))
        tensors[key] = t

    read_data_hashed(f, name, header, into_tensor if keep is not None else None, h)
    return tensors, h.hexdigest()


# safetensors dtype names -> torch dtypes (the SVDQ reader's, and the LoRA reader's)
TORCH_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
    "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
    "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


def _check_tensor_set(
    name: str, entries: dict[str, Any], expected: dict[str, tuple[tuple[int, ...], torch.dtype]]
) -> None:
    missing = sorted(set(expected) - set(entries))
    extra = sorted(set(entries) - set(expected))
    if missing:
        raise CheckpointError(f"{name}: missing tensors: {_few(missing)}", hint=REMAKE)
    if extra:
        raise CheckpointError(f"{name}: unexpected tensors: {_few(extra)}", hint=REMAKE)
    for key, (shape, dtype) in expected.items():
        got_shape = tuple(entries[key]["shape"])
        if got_shape != tuple(shape):
            raise CheckpointError(f"{name}: tensor {key} has shape {list(got_shape)}, expected {list(shape)}",
                                  hint=REMAKE)  # fmt: skip
        got_dtype = TORCH_DTYPES.get(entries[key]["dtype"])
        if dtype.is_floating_point != (got_dtype is not None and got_dtype.is_floating_point) or (
            not dtype.is_floating_point and got_dtype != dtype
        ):
            raise CheckpointError(f"{name}: tensor {key} has dtype {entries[key]['dtype']}, expected {dtype}",
                                  hint=REMAKE)  # fmt: skip


def _few(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
