"""``main.run_gui`` when the GUI cannot be imported: only the app package itself missing (an engine-only install)
prints the help; any other missing module (appdirs, whose name also begins with "app") is raised, so a broken
install says what is missing instead of printing help and exiting 0 (the windowed exe then showed nothing)."""

from __future__ import annotations

import importlib.abc
import sys

import pytest

import main


class _MissingWhileImportingGui(importlib.abc.MetaPathFinder):
    """Makes ``import app.main_window`` fail as if the module named ``missing`` could not be found on the way."""

    def __init__(self, missing: str) -> None:
        self.missing = missing

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == "app.main_window":
            raise ModuleNotFoundError(f"No module named {self.missing!r}", name=self.missing)


@pytest.fixture
def gui_import_fails(monkeypatch):
    def install(missing: str) -> None:
        monkeypatch.delitem(sys.modules, "app.main_window", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_MissingWhileImportingGui(missing), *sys.meta_path])

    return install


@pytest.mark.parametrize("missing", ["appdirs", "applications", "apport"])
def test_a_missing_library_named_app_something_is_raised(gui_import_fails, capsys, missing):
    gui_import_fails(missing)
    with pytest.raises(ModuleNotFoundError) as info:
        main.run_gui(main.build_parser().parse_args([]), [])
    assert info.value.name == missing
    assert "usage:" not in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["app", "app.main_window", "app.widgets"])
def test_without_the_app_package_the_help_is_printed(gui_import_fails, capsys, missing):
    gui_import_fails(missing)
    assert main.run_gui(main.build_parser().parse_args([]), []) == 0
    assert "usage:" in capsys.readouterr().out


def test_an_engine_only_install_with_no_display_prints_the_help(gui_import_fails, capsys, monkeypatch, tmp_path):
    """``python main.py`` over ssh on an engine-only install exited 2 ("no display"): the display was checked before
    the app was looked for."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    gui_import_fails("app")
    assert main.main(["--data-dir", str(tmp_path / "data")]) == 0
    assert "usage:" in capsys.readouterr().out
