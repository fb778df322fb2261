"""settings.json keeps every setting, whatever its type: the loader reads each field by its declared type. It
compared annotation strings ("float | None"), so a field of another optional type was dropped at every start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from app.settings import LastJob, Settings, _typed, load_settings, save_settings


def _other(kind: Any, default: Any) -> Any:
    """A value of type ``kind`` that is not ``default`` (of a dataclass: every field changed so)."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        return _other(next(a for a in args if a is not NoneType), default)
    if origin is list:
        return [_other(args[0], None)]
    if is_dataclass(kind):
        return _changed(kind)
    if kind is bool:
        return not default
    if kind in (int, float):
        return (default or 0) + kind(1.5)  # 1 for an int
    return f'{default or ""} é\n"x"'  # text a JSON file must escape


def _changed(cls: type) -> Any:
    hints, defaults = get_type_hints(cls), cls()
    return cls(**{f.name: _other(hints[f.name], getattr(defaults, f.name)) for f in fields(cls)})


def test_every_setting_survives_a_save_and_a_load(tmp_path):
    """Each field of the settings (nested ones, each LoRA row's too) at a value of its type that is not its
    default comes back as saved; the version is the loader's to write."""
    path = tmp_path / "settings.json"
    saved = replace(_changed(Settings), version=Settings().version)
    save_settings(path, saved)
    notices: list[str] = []
    assert load_settings(path, notices) == saved and notices == []


@dataclass
class _Later:
    """Settings of types none has yet: the loader dropped all the optional ones."""

    count: int | None = None
    on: bool | None = None
    name: str | None = None
    jobs: list[LastJob] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)


def test_settings_of_any_optional_or_list_type_are_read():
    later = _changed(_Later)
    assert later.count is not None and later.on is not None  # the test's own values are set
    assert _typed(_Later, json.loads(json.dumps(asdict(later)))) == later


def test_settings_are_not_saved_into_a_data_folder_made_again(tmp_path):
    """The settings are saved while the app runs: a data folder moved or removed meanwhile was made again at its
    old path for them (the atomic write makes missing folders), splitting the user's data in two."""
    gone = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as refused:
        save_settings(gone / "settings.json", Settings())
    assert refused.value.filename == str(gone) and not gone.exists()
