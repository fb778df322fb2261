"""``main.run_gui`` when the GUI cannot be imported: only the app package itself missing (an engine-only install)
prints the help; any other missing module (appdirs, whose name also begins with "app") is raised, so a broken
install says what is missing instead of printing help and exiting 0 (the windowed exe then showed nothing)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

import pytest

import main


class _FailingGuiImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import app.main_window`` raise ``error`` (a module missing on the way, Qt's library failing to load),
    while the module is still found (``importlib.util.find_spec``), as it is where it is installed."""

    def __init__(self, error: ImportError) -> None:
        self.error = error

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname == "app.main_window" else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: object) -> None:
        raise self.error


@pytest.fixture
def gui_import_fails(monkeypatch):
    """Makes importing the window fail: ``missing`` not found ("app" alone: an engine-only install, where the window
    module is not found either), or ``error`` raised; a display is there unless a test says otherwise."""

    def install(missing: str = "", error: ImportError | None = None) -> None:
        monkeypatch.delitem(sys.modules, "app.main_window", raising=False)
        error = error or ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        monkeypatch.setattr(sys, "meta_path", [_FailingGuiImport(error), *sys.meta_path])
        if missing == "app":
            monkeypatch.setattr(main, "app_installed", lambda: False, raising=False)
        monkeypatch.setattr(main, "no_display_for_the_window", lambda: False)

    return install


def no_display(monkeypatch) -> None:
    """A Linux machine with no display server named, as over ssh, in cron or a CUDA container."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(main, "no_display_for_the_window", REAL_NO_DISPLAY)  # the fixture's display taken away


REAL_NO_DISPLAY = main.no_display_for_the_window


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
    gui_import_fails("app")
    no_display(monkeypatch)
    assert main.main(["--data-dir", str(tmp_path / "data")]) == 0
    assert "usage:" in capsys.readouterr().out


def test_without_qt_s_libraries_and_no_display_the_missing_display_is_said(gui_import_fails, capsys, monkeypatch,
                                                                          tmp_path):
    """``python main.py`` on a GPU server without libEGL crashed with ImportError's traceback (exit 1): the window was
    imported, loading Qt, before the display was checked."""
    gui_import_fails(error=ImportError("libEGL.so.1: cannot open shared object file: No such file or directory"))
    no_display(monkeypatch)
    assert main.main(["--data-dir", str(tmp_path / "data")]) == 2
    assert main.NO_DISPLAY in capsys.readouterr().err


def test_the_installed_window_module_is_found_without_importing_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "app.main_window", raising=False)
    assert main.app_installed()
    assert "app.main_window" not in sys.modules


def test_an_install_without_the_app_package_has_no_app(monkeypatch):
    """Finding ``app.main_window`` imports the ``app`` package first, which raised where there is none (an
    engine-only install): ``python main.py`` ended in that traceback instead of printing its help."""
    import main

    monkeypatch.setitem(sys.modules, "app", None)  # the package cannot be imported, as where it is not installed
    monkeypatch.delitem(sys.modules, "app.main_window", raising=False)  # nor found as imported by another test
    assert main.app_installed() is False
