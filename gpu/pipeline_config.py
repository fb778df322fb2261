"""A diffusers pipeline folder's JSON descriptions, read without torch: its model_index.json (the components it
lists), its transformer's config.json and any component's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpu.errors import ModelLoadError


def read_model_index(folder: Path, label: str) -> dict[str, Any]:
    """``folder``'s model_index.json, the pipeline's description; ModelLoadError starting with ``label`` when it
    cannot be read, is no JSON (nested past the parser's limit included) or no object."""
    try:
        index = json.loads((folder / "model_index.json").read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        raise ModelLoadError(f"{label}: model_index.json is unreadable ({err})") from None
    if not isinstance(index, dict):
        raise ModelLoadError(f"{label}: model_index.json is not a pipeline description")
    return index


def model_index_or_empty(folder: Path) -> dict[str, Any]:
    """``read_model_index``, {} where it fails: for the checks made before ``check_pipeline_complete``, which
    says what is wrong with it."""
    try:
        return read_model_index(folder, str(folder))
    except ModelLoadError:
        return {}


def pipeline_components(index: dict[str, Any]) -> list[str]:
    """The components a pipeline's model_index.json lists, in its order: not "_class_name" and the like, nor an
    optional component left out ([null, null])."""
    return [k for k, spec in index.items() if not k.startswith("_") and isinstance(spec, list) and None not in spec]


def transformer_config(folder: Path) -> dict[str, Any]:
    """The pipeline folder's ``transformer/config.json`` (torch-free); ModelLoadError when it is missing, not
    UTF-8 JSON, or not an object."""
    try:
        cfg = json.loads((folder / "transformer" / "config.json").read_bytes())  # JSON is UTF-8, whatever the locale
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise ModelLoadError(f"{folder.name or folder}: transformer/config.json is unreadable ({err})") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{folder.name or folder}: transformer/config.json is not a model configuration")
    return cfg


def config_json(component: Path) -> dict[str, Any]:
    """``component/config.json`` ({} when missing, unreadable, nested past the parser's limit or no object)."""
    try:
        value = json.loads((component / "config.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
