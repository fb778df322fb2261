"""User settings as typed, versioned JSON (``settings.json`` in the data dir).

Unknown keys are dropped and wrong types fall back to defaults, so a hand-edited or older file never stops
the app from starting; a newer version's file is copied aside first (``settings.json.v<N>-<timestamp>``).
``_MIGRATIONS`` upgrades old versions step by step. A file whose content cannot be read at all is moved aside
(``settings.json.damaged-<timestamp>``) before the defaults are used: the next save would otherwise overwrite
the only copy of the user's settings. A file the system refuses to read (another program holds it, a failing disk)
is not damaged: it is left where it is and ``SettingsKept`` is raised, so that nothing writes over it in a
session that runs on the defaults; the same for a damaged file that cannot be moved aside, or a newer version's
file that cannot be copied: the session must not write over the only copy either.
"""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from app.atomic import atomic_write_text
from gpu.damaged_files import copy_aside, move_aside
from gpu.errors import UserError

SETTINGS_VERSION = 2
log = logging.getLogger(__name__)


class SettingsKept(UserError):
    """``settings.json`` is left as it is and the session must save no settings over it (``load_settings``): it is
    the only copy of something this version cannot keep otherwise. ``settings``: what the session runs on (the
    defaults unless said)."""

    def __init__(self, message: str, hint: str = "", settings: Settings | None = None) -> None:
        super().__init__(message, hint)
        self.settings = Settings() if settings is None else settings


# What a session that may not write settings.json loses, for the messages that say so.
_NOT_SAVED = ("saves no settings until it is started again (the prompt panel, the LoRA list and the window layout "
              "of this session are not kept)")  # fmt: skip


@dataclass
class LastJob:
    """The prompt panel as the user left it."""

    model: str = "demo"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    seed_locked: bool = False
    steps: int = 0  # 0: the model's default
    guidance: float | None = None  # None: the model's default (0 is a guidance the panel offers)
    width: int = 0
    height: int = 0
    batch_count: int = 1


@dataclass
class LoraSetting:
    """One row of the LoRA panel as the user left it (trigger words included: the user may have edited them).
    ``header_words``: the words the file's header gave then, so a start-up can tell the user's words from the
    header's (the file may have been replaced while the app was closed); None in a file saved before it was kept.
    ``text_strength``: the strength of the file's CLIP/T5 parts; None: the same as ``strength`` (also in a file
    saved before it was kept). ``example``: for an example LoRA the app ships, its name below resources/loras
    (``app.lora_examples.example_name``), by which it is found at the next start: an app folder moved or upgraded
    has it at another ``path``; "" for another file; None in a file saved before it was kept."""

    path: str = ""
    enabled: bool = False
    strength: float = 1.0
    trigger_words: str = ""
    header_words: str | None = None
    text_strength: float | None = None
    example: str | None = None


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    window_geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState(): dock layout
    # base64 of the gallery's QSplitter.saveState(): the grid's and the details pane's widths. A file saved before
    # it was kept has none: the splitter starts as it is made.
    gallery_splitter: str = ""
    last_job: LastJob = field(default_factory=LastJob)
    preview_every: int = 2  # a latent preview every N steps (0: none), which the engine makes (``generate``)
    loras: list[LoraSetting] = field(default_factory=list)
    # The example LoRAs (resources/loras, by their path below it) the user removed from the panel: not added again
    # at the next starts. A file saved before it was kept has none: every example is added, as then.
    removed_examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _migrate_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the prompt panel's fields at the top level: they go into ``last_job``. A file without its
    "version" is read as version 1, and one written by hand or by a script may hold a ``last_job`` all the same:
    kept, the fields at the top level filling in only what it lacks (it was replaced by those, none, and the next
    autosave wrote the empty prompt panel over the file). A kept field that is no value of its type gives way to
    a top-level one that is (kept, it would fall back to the default)."""
    job_keys = {f.name for f in fields(LastJob)}
    moved = {k: data.pop(k) for k in list(data) if k in job_keys}
    kept = data.get("last_job")
    if isinstance(kept, dict):
        hints = get_type_hints(LastJob)
        fit = {k: v for k, v in kept.items() if k not in moved or _value(hints[k], v) is not _UNFIT}
        data["last_job"] = {**moved, **fit}
    else:
        data["last_job"] = moved
    return data


_MIGRATIONS = {1: _migrate_1_to_2}


_UNFIT = object()  # what ``_value`` gives for a value that is not of its field's type: the default stays


def _typed(cls: type, data: dict[str, Any]) -> Any:
    """The dataclass ``cls`` from a JSON object: each field's value read by its declared type (``_value``); a field
    missing or of another type keeps its default, a key ``cls`` has no field for is dropped."""
    hints = get_type_hints(cls)  # the types themselves: the annotations are strings (``from __future__``)
    values = {f.name: _value(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data}
    return cls(**{name: value for name, value in values.items() if value is not _UNFIT})


def _value(kind: Any, value: Any) -> Any:
    """``value`` of a hand-edited or older file as the type ``kind`` (a settings dataclass, ``list[X]``,
    ``X | None``, bool, int, float, str), ``_UNFIT`` when it is none: of a list, the items that fit. A type not
    read here raises ``TypeError``: a field added with one fails the settings' round-trip test, rather than being
    dropped at every start."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        if value is None and NoneType in args:
            return None
        return next((v for arg in args if arg is not NoneType and (v := _value(arg, value)) is not _UNFIT), _UNFIT)
    if origin is list:
        if not isinstance(value, list):
            return _UNFIT
        return [v for item in value if (v := _value(args[0], item)) is not _UNFIT]
    if is_dataclass(kind):
        return _typed(kind, value) if isinstance(value, dict) else _UNFIT
    if kind is float:
        number = _float(value)
        return _UNFIT if number is None else number
    if kind in (bool, int, str):
        return value if type(value) is kind else _UNFIT  # true is no int here, nor 1.0
    raise TypeError(f"app.settings._value reads no setting of type {kind!r}: add that type there")


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
    """The defaults in place of a file whose content is no settings, moved aside first. Raises ``SettingsKept``
    when it cannot be moved (an editor or sync tool holds it open on Windows): saved over, it was gone for good
    a second after the start, before the user had read why."""
    try:
        kept = move_aside(path)
    except OSError as exc:
        log.error("settings file %s unreadable (%s) and could not be moved aside (%s)", path, reason, exc)
        raise SettingsKept(
            f"Your settings file {path} could not be read ({reason}), and it could not be moved aside to keep it "
            f"({exc.strerror or exc}). Nibble Studio uses the default settings for now and {_NOT_SAVED}, so that "
            "the file stays as it is.",
            "Correct the file, or move it out of the data folder to start over with the default settings, then "
            "restart Nibble Studio (if another program has the file open, an editor or a sync tool, close it first).",
        ) from exc
    log.warning("settings file %s unreadable (%s); kept it as %s and using defaults", path, reason, kept)
    if notices is not None:
        notices.append(f"Your settings file {path} could not be read ({reason}). It was kept as {kept.name}; "
                       "the default settings are used.")  # fmt: skip
    return Settings()


def _keep_newer(path: Path, raw: bytes, version: int, settings: Settings, notices: list[str] | None) -> None:
    """A newer version's settings: this one drops what it does not know when it saves, so the file is copied
    first (the newer version's settings would be lost for good when the user goes back to it). Raises
    ``SettingsKept`` with ``settings`` (what this version read of it) when the copy cannot be made."""
    try:
        copy = copy_aside(path, raw, f"v{version}")  # the bytes as they were, line endings included
    except (OSError, UserError) as exc:
        log.error("settings file %s is from a newer version (%d) and could not be copied: %s", path, version, exc)
        why = (exc.strerror or exc) if isinstance(exc, OSError) else exc
        raise SettingsKept(
            f"Your settings file {path} was written by a newer version of Nibble Studio (settings version "
            f"{version}), and a copy of it could not be made ({why}). This version uses what it knows of it and "
            f"{_NOT_SAVED}, so that the newer version's settings are not cut down to what this one knows.",
            f"Check that the data folder {path.parent} can be written and its disk is not full, then restart "
            "Nibble Studio; or use the newer version.",
            settings,
        ) from exc
    log.warning("settings file %s is from a newer version (%d); kept a copy as %s", path, version, copy)
    if notices is not None:
        notices.append(f"Your settings file {path} was written by a newer version of Nibble Studio (settings "
                       f"version {version}). This version uses what it knows; the file as it was is kept as "
                       f"{copy.name}.")  # fmt: skip


def load_settings(path: Path, notices: list[str] | None = None) -> Settings:
    """Reads ``settings.json``; a problem worth telling the user about is appended to ``notices``. Raises
    ``SettingsKept`` when the file is there but cannot be read (another program has it open, a failing disk: its
    content may be the user's settings, whole, so it is not moved aside), or when it cannot be kept
    aside before it would be written over: the caller runs on the exception's ``settings`` and saves nothing
    (moved aside, or written over, the user's LoRA list and prompt were gone for good)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        log.error("settings file %s could not be read: %s", path, exc)
        raise SettingsKept(
            f"Your settings file {path} could not be read ({exc.strerror or exc}). Nibble Studio uses the default "
            f"settings for now and {_NOT_SAVED}, so that the file stays as it is.",
            "If another program has the file open (a backup, sync or antivirus tool, an editor), close it, then "
            "restart Nibble Studio; otherwise check that the file can be read.",
        ) from exc
    try:
        # The bytes, not their UTF-8 text: json reads UTF-8 with a byte order mark too, which Windows Notepad
        # ("UTF-8 with BOM") and PowerShell 5 (Set-Content -Encoding UTF8) write, and their UTF-16: as UTF-8 text,
        # such a file was taken for damaged, set aside, and every setting started over.
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8; RecursionError:
        # arrays nested past the parser's limit (a damaged file is any bytes)
        return _keep_unreadable(path, exc, notices)
    if not isinstance(data, dict):
        return _keep_unreadable(path, ValueError("not a JSON object"), notices)
    version = data.get("version", 1)
    newer = isinstance(version, int) and not isinstance(version, bool) and version > SETTINGS_VERSION
    while isinstance(version, int) and version < SETTINGS_VERSION and version in _MIGRATIONS:
        data = _MIGRATIONS[version](data)
        version += 1
    data["version"] = SETTINGS_VERSION
    settings = _typed(Settings, data)
    settings.loras = [s for s in settings.loras if s.path]  # a row naming no file is no row of the panel
    if newer:
        _keep_newer(path, raw, version, settings, notices)
    return settings


def save_settings(path: Path, settings: Settings) -> None:
    """Writes ``settings.json`` atomically, into its folder only: a data folder moved or removed while the app ran
    is not made again at its old path for it (``FileNotFoundError`` naming the folder)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the data folder is gone (moved, renamed or removed)", str(path.parent))
    atomic_write_text(path, json.dumps(settings.to_json(), indent=2, sort_keys=True))
