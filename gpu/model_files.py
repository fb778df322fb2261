"""Facts about model files on disk, read without loading weights: kind, architecture, dtype, size (the model's
hash: ``gpu.model_hash``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu.errors import ModelLoadError, named_few
from gpu.file_kinds import PICK_MODEL, check_safetensors_name
from gpu.pipeline_checks import (
    check_not_prequantized,
    check_pipeline_complete,
    check_text_to_image_pipeline,
    check_weight_components,
)
from gpu.pipeline_config import transformer_config
from gpu.safetensors_header import checked_weight_files

# Generation defaults when a model ships no nibble.json (FLUX.1-dev's recommended settings).
FALLBACK_DEFAULTS = {"width": 1024, "height": 1024, "steps": 28, "guidance": 3.5, "max_sequence_length": 512}
DEFAULTS_FILE = "nibble.json"


@dataclass
class ModelFacts:
    path: Path
    kind: str  # "diffusers" | "svdq"
    architecture: str
    model_class: str
    precision: str  # e.g. "bf16", "SVDQuant INT4 r32"
    size_bytes: int
    transformer_params: int
    defaults: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)  # SVDQ only: recorded base pipeline
    checksum: str = ""  # SVDQ only: the SHA-256 of the data section its header records (not computed here)


def inspect_model_path(path: Path | str) -> ModelFacts:
    """Classify ``path`` as a diffusers pipeline folder or an SVDQ file; raises ModelLoadError otherwise."""
    path = Path(path).expanduser()
    if not model_path_there(path):
        raise missing_model(path)
    if path.is_dir():
        return _inspect_folder(path)
    check_model_file_name(path)
    return _inspect_svdq(path)


def missing_model(path: Path, hint: str = "") -> ModelLoadError:
    """The error for a model file or folder that is not at ``path`` (moved, renamed, deleted, its drive gone),
    naming it."""
    return ModelLoadError(f"{path}: no such file or folder", hint)


READ_MODEL_HINT = "check that you may read the file and the folders it is in, and that its drive is connected"


def unreadable_model(path: Path, err: OSError) -> ModelLoadError:
    """The error for a model file or folder the system will not let us look at (``err``: Permission denied, a
    stale NFS handle, an I/O error, a name too long), naming it."""
    return ModelLoadError(f"{path}: cannot be read: {err.strerror or err}", READ_MODEL_HINT)


def model_path_there(path: Path) -> bool:
    """Whether a file or folder is at ``path`` (False: nothing is, as for ``Path.exists``); ``unreadable_model``
    when the system will not say: ``Path.exists`` raises then (Python 3.11), and one library model in a folder
    the user may not enter stopped the whole list."""
    try:
        return path.exists()
    except OSError as err:
        raise unreadable_model(path, err) from None


def check_model_file_name(path: Path) -> None:
    """``check_safetensors_name`` of a model file picked as ``path`` (a pickle, a GGUF file, ... named as the
    quantize wizard names them), passed when either the name it was picked by or the name of the file it
    resolves to is a .safetensors name: a Hugging Face cache link is named for the model and points to a blob
    named by its hash, while a link of the user's (``current -> pack/q.safetensors``) or a Windows short name
    (``FLUX-I~1.SAF``) names the file only once resolved. When neither passes, what the picked name is said,
    unless only the resolved name is something known (a link to a pickle)."""
    try:
        check_safetensors_name(path, PICK_MODEL)
        return
    except ModelLoadError as picked:
        refusal = picked
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a link loop: nothing else to go by
        raise refusal from None
    if real.name == path.name:
        raise refusal
    try:
        check_safetensors_name(real, PICK_MODEL)
    except ModelLoadError as resolved:
        # PICK_MODEL is the hint for a name of no known kind ("current"): the resolved name's refusal (a pickle, a
        # GGUF file) says more then
        raise (resolved if refusal.hint == PICK_MODEL else refusal) from None


def _inspect_folder(path: Path) -> ModelFacts:
    from gpu.adapters import adapter_for_config

    if not (path / "model_index.json").is_file():
        raise ModelLoadError(f"{path}: not a diffusers pipeline folder (no model_index.json)", _pick_in(path))
    check_text_to_image_pipeline(path)  # before transformer/: an SDXL folder has none, and was "not a pipeline"
    if not (path / "transformer" / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a diffusers pipeline folder (no transformer/config.json)", _pick_in(path))
    cfg = transformer_config(path)
    check_pipeline_complete(path, f"model {path.name}")
    check_not_prequantized(path)
    # The text encoders' and the VAE's files too: a text_encoder/ of only pytorch_model.bin was listed, and
    # from_pretrained loaded the pickle.
    check_weight_components(path, path.name, skip=("transformer",))
    try:
        adapter = adapter_for_config(str(cfg.get("_class_name")))
    except ValueError as err:
        raise ModelLoadError(f"{path.name}: {err}") from None
    # Headers, sizes and an index's shards checked: a damaged or deleted weight file is named with a hint here,
    # before a generation or a quantize run fails on it.
    weights = checked_weight_files(path / "transformer", path.name)
    dtype, params = _safetensors_summary(weights, f"{path.name}: transformer/")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    check_defaults_readable(path, f"model {path.name}")
    defaults = pipeline_defaults(path)
    return ModelFacts(path, "diffusers", adapter.architecture, adapter.diffusers_class, dtype, size, params, defaults)


def _pick_in(folder: Path) -> str:
    """What to pick instead of ``folder``, which is no pipeline: the pipeline it is a part of (its transformer/ or
    text_encoder/, whose weight file is no model of its own: it was named, and then refused for not being the
    whole pipeline), else the model files in it (a ComfyUI or Hugging Face folder of single files), else the
    pipeline's own folder. Said in words that fit the app's dialogs and the command line alike."""
    pipeline = folder.absolute().parent  # absolute: the parent of "transformer", given from inside it, is "."
    if (pipeline / "model_index.json").is_file():
        return f"it is the {folder.name}/ part of the pipeline {pipeline}: pick that pipeline folder instead"
    try:
        files = sorted(f.name for f in folder.glob("*.safetensors"))
    except OSError:
        files = []
    if files:
        return f"it holds {named_few(files)}: pick the model file itself, not the folder it is in"
    return "pick the folder that holds model_index.json, transformer/, text_encoder/, …"


def _inspect_svdq(path: Path) -> ModelFacts:
    from gpu.checkpoint.format import read_checkpoint_meta
    from gpu.errors import CheckpointError

    try:
        meta = read_checkpoint_meta(path)
    except CheckpointError as err:
        raise ModelLoadError(str(err), err.hint) from None
    q = meta.quantization
    precision = f"{q.get('method', '?')} {str(q.get('precision', '?')).upper()} r{q.get('rank', '?')}"
    _, params = _safetensors_summary([path])
    return ModelFacts(
        path, "svdq", meta.architecture, meta.model_class, precision, path.stat().st_size, params,
        defaults=dict(meta.base_model.get("defaults") or FALLBACK_DEFAULTS), base=dict(meta.base_model),
        checksum=meta.sha256,
    )  # fmt: skip


def pipeline_defaults(folder: Path) -> dict[str, Any]:
    """The generation defaults of the pipeline at ``folder``: its nibble.json over FLUX.1-dev's settings."""
    return {**FALLBACK_DEFAULTS, **_read_defaults(folder)}


def check_defaults_readable(folder: Path, label: str) -> None:
    """ModelLoadError when ``folder`` has a nibble.json that is no JSON object: ``pipeline_defaults`` would
    quietly use FLUX.1-dev's settings instead of the model's (for the demo: 1024x1024 and 28 steps, not
    128x128 and 16, many minutes per image on a CPU, and images unlike the model's)."""
    try:
        _parse_defaults(folder)
    except ValueError as err:
        raise ModelLoadError(f"{label}: {DEFAULTS_FILE} {err}",
                             "fix it, or delete it to use FLUX.1-dev's settings") from None  # fmt: skip


def _read_defaults(folder: Path) -> dict[str, Any]:
    try:
        return _parse_defaults(folder)
    except ValueError:
        return {}


def _parse_defaults(folder: Path) -> dict[str, Any]:
    """``folder``'s nibble.json ({} when there is none); ValueError saying what is wrong with it otherwise."""
    f = folder / DEFAULTS_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested past the parser's limit
        raise ValueError(f"is damaged ({err})") from None
    if not isinstance(data, dict):
        raise ValueError("holds no settings (a JSON object is expected)")
    return data


_DTYPE_LABEL = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8"}


def _safetensors_summary(files: list[Path], where: str = "") -> tuple[str, int]:
    """(dominant float dtype label, parameter count) from safetensors headers only; a damaged or truncated
    file is a ModelLoadError whose message starts with ``where`` (the model and folder it is in)."""
    from gpu.errors import CheckpointError
    from gpu.safetensors_header import element_counts, read_safetensors_header

    counts: dict[str, int] = {}
    for f in files:
        try:
            _, header = read_safetensors_header(f)
        except CheckpointError as err:
            raise ModelLoadError(f"{where}{err}", err.hint) from None
        for dtype, n in element_counts(header).items():
            counts[dtype] = counts.get(dtype, 0) + n
    floats = {k: v for k, v in counts.items() if k in _DTYPE_LABEL}
    dominant = max(floats, key=floats.get) if floats else "?"
    return _DTYPE_LABEL.get(dominant, dominant.lower()), sum(counts.values())
