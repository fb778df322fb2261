"""User settings as typed, versioned JSON (``settings.json`` in the data dir).

Unknown keys are dropped and wrong types fall back to defaults, so a hand-edited or older file never stops
the app from starting; a newer version's file is copied aside first (``settings.json.v<N>-<timestamp>``).
``_MIGRATIONS`` upgrades old versions step by step. A file that cannot be read at all is moved aside
(``settings.json.damaged-<timestamp>``) before the defaults are used: the next save would otherwise overwrite
the only copy of the user's settings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.atomic import atomic_write_text
from gpu.damaged_files import copy_aside, move_aside
from gpu.errors import UserError

SETTINGS_VERSION = 2
log = logging.getLogger(__name__)


@dataclass
class LastJob:
    """The prompt panel as the user left it."""

    model: str = "demo"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    seed_locked: bool = False
    steps: int = 0  # 0: the model's default
    guidance: float = 0.0  # 0: the model's default
    width: int = 0
    height: int = 0
    batch_count: int = 1


@dataclass
class LoraSetting:
    """One row of the LoRA panel as the user left it (trigger words included: the user may have edited them).
    ``header_words``: the words the file's header gave then, so a start-up can tell the user's words from the
    header's (the file may have been replaced while the app was closed); None in a file saved before it was kept.
    ``text_strength``: the strength of the file's CLIP/T5 parts; None: the same as ``strength`` (also in a file
    saved before it was kept)."""

    path: str = ""
    enabled: bool = False
    strength: float = 1.0
    trigger_words: str = ""
    header_words: str | None = None
    text_strength: float | None = None


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    window_geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState(): dock layout
    last_job: LastJob = field(default_factory=LastJob)
    preview_every: int = 2  # a latent preview every N steps
    loras: list[LoraSetting] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _migrate_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 kept the prompt panel fields at the top level.
    job_keys = {f.name for f in fields(LastJob)}
    data["last_job"] = {k: data.pop(k) for k in list(data) if k in job_keys}
    return data


_MIGRATIONS = {1: _migrate_1_to_2}


def _typed(cls: type, data: dict[str, Any]) -> Any:
    defaults = cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        default = getattr(defaults, f.name)
        value = data[f.name]
        if f.name == "last_job" and isinstance(value, dict):
            values[f.name] = _typed(LastJob, value)
        elif f.name == "loras" and isinstance(value, list):
            values[f.name] = [_typed(LoraSetting, v) for v in value if isinstance(v, dict) and v.get("path")
                              and isinstance(v["path"], str)]  # fmt: skip
        elif default is None:  # a value older files lack (LoraSetting.header_words, text_strength): None stays
            # "not saved"; the annotation says which type it is (a string, under ``from __future__ import annotations``)
            if f.type == "float | None":
                if (number := _float(value)) is not None:
                    values[f.name] = number
            elif isinstance(value, str):
                values[f.name] = value
        elif isinstance(default, bool):
            if isinstance(value, bool):
                values[f.name] = value
        elif isinstance(default, float):
            if (number := _float(value)) is not None:
                values[f.name] = number
        elif type(value) is type(default):
            values[f.name] = value
    return cls(**values)


def _float(value: Any) -> float | None:
    """A number of a hand-edited file as a float; None for no number (text, true/false) or an integer past a
    float's range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _keep_unreadable(path: Path, reason: BaseException, notices: list[str] | None) -> Settings:
    try:
        kept = move_aside(path)
    except OSError as exc:
        log.error("settings file %s unreadable (%s) and could not be moved aside (%s)", path, reason, exc)
        message = f"Your settings file {path} could not be read ({reason}); using the default settings."
    else:
        log.warning("settings file %s unreadable (%s); kept it as %s and using defaults", path, reason, kept)
        message = (f"Your settings file {path} could not be read ({reason}). It was kept as {kept.name}; "
                   "the default settings are used.")  # fmt: skip
    if notices is not None:
        notices.append(message)
    return Settings()


def _keep_newer(path: Path, raw: bytes, version: int, notices: list[str] | None) -> None:
    """A newer version's settings: this one drops what it does not know when it saves on quit, so the file is
    copied first (the newer version's settings would be lost for good when the user goes back to it)."""
    try:
        copy = copy_aside(path, raw, f"v{version}")  # the bytes as they were, line endings included
    except (OSError, UserError) as exc:
        log.error("settings file %s is from a newer version (%d) and could not be copied: %s", path, version, exc)
        message = (f"Your settings file {path} was written by a newer version of Nibble Studio (settings version "
                   f"{version}) and could not be copied aside ({exc}); this version keeps only what it knows "
                   "when it saves.")  # fmt: skip
    else:
        log.warning("settings file %s is from a newer version (%d); kept a copy as %s", path, version, copy)
        message = (f"Your settings file {path} was written by a newer version of Nibble Studio (settings version "
                   f"{version}). This version uses what it knows; the file as it was is kept as "
                   f"{copy.name}.")  # fmt: skip
    if notices is not None:
        notices.append(message)


def load_settings(path: Path, notices: list[str] | None = None) -> Settings:
    """Reads ``settings.json``; a problem worth telling the user about is appended to ``notices``."""
    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8; RecursionError:
        # arrays nested past the parser's limit (a damaged file is any bytes)
        return _keep_unreadable(Path(path), exc, notices)
    if not isinstance(data, dict):
        return _keep_unreadable(Path(path), ValueError("not a JSON object"), notices)
    version = data.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > SETTINGS_VERSION:
        _keep_newer(Path(path), raw, version, notices)
    while isinstance(version, int) and version < SETTINGS_VERSION and version in _MIGRATIONS:
        data = _MIGRATIONS[version](data)
        version += 1
    data["version"] = SETTINGS_VERSION
    return _typed(Settings, data)


def save_settings(path: Path, settings: Settings) -> None:
    atomic_write_text(path, json.dumps(settings.to_json(), indent=2, sort_keys=True))
