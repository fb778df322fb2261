"""``main.py inspect`` takes what ``generate --model`` takes (a library name or a path, through the library's own
``resolve``), and says which base pipeline the model runs with here.

``inspect demo-int4`` failed with "cannot read the file" while ``generate --model demo-int4`` took the name, and the
shipped demo-int4's base line printed the build machine's checkout as if it were the base."""

from __future__ import annotations

import shutil
from pathlib import Path

import gpu.library
import gpu.paths
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from main import main
from tests.test_base_fit import with_recorded_base

MODELS = resources_dir() / "models"


def _base_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("  base model:"))


def test_inspect_takes_a_library_name_as_generate_does(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "inspect", "demo-int4"]) == 0  # a built-in model
    out = capsys.readouterr().out
    assert out.startswith("demo-int4.safetensors: SVDQ format v1, flux") and "checksum OK" in out
    # the base the file records (the checkout it was built in), or the one beside it where that is not here: which
    # one depends on the machine (test_the_base_shown_is_the_one_used_here_not_the_build_machines checks the choice)
    name, _, rest = _base_line(out).removeprefix("  base model:   ").partition(", ")
    assert name == "demo" and Path(rest.split(" (")[0]).is_dir(), out

    mine = shutil.copy(MODELS / "demo-int4.safetensors", tmp_path / "q.safetensors")
    ModelLibrary(data).add(mine, name="my-int4")  # a user's library entry
    assert main(["--data-dir", str(data), "inspect", "my-int4"]) == 0
    assert capsys.readouterr().out.startswith("q.safetensors: SVDQ format v1")


def test_a_name_that_is_nothing_is_one_line_saying_where_it_was_looked_for(tmp_path, capsys, monkeypatch):
    """A name is looked for in the library, a file name or path (a relative one from the current folder) on disk."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "inspect", "demo-int5"]) == 2
    err = capsys.readouterr().err
    assert err == "error: no model named 'demo-int5' in the library (demo, demo-int4)\n"
    assert main(["--data-dir", str(data), "inspect", "demo-int5.safetensors"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: no file or folder {tmp_path / 'demo-int5.safetensors'} (and no library model of that "
                   "name)\n")  # fmt: skip
    assert main(["--data-dir", str(data), "inspect", "demo"]) == 2  # a library name, but no SVDQ file
    err = capsys.readouterr().err
    assert err == (f"error: {MODELS / 'demo'} is a diffusers pipeline folder, not an SVDQ file (inspect reads "
                   "the .safetensors files that quantize writes)\n")  # fmt: skip


def test_the_base_shown_is_the_one_used_here_not_the_build_machines(tmp_path, capsys, monkeypatch):
    """The shipped demo-int4 records the absolute path of the checkout it was built in; here the base beside it is
    used (``resolve_base``), and the recorded path is said not to exist."""
    build_machine = tmp_path / "build-machine" / "resources" / "models" / "demo"  # never made: another machine's
    checkout = tmp_path / "checkout" / "resources"
    shipped = shutil.copytree(MODELS / "demo", checkout / "models" / "demo")
    model = with_recorded_base(checkout / "models" / "demo-int4.safetensors", {"path": str(build_machine),
                                                                                "relative_path": "demo"})  # fmt: skip
    for module in (gpu.paths, gpu.library):  # this checkout's resources are those of another
        monkeypatch.setattr(module, "resources_dir", lambda: checkout)
    assert main(["--data-dir", str(tmp_path / "data"), "inspect", str(model)]) == 0
    line = _base_line(capsys.readouterr().out)
    assert line == f"  base model:   demo, {shipped} (the file records {build_machine}, which does not exist here)"

    shutil.rmtree(shipped)  # no base at all: said, and the file is inspected all the same
    assert main(["--data-dir", str(tmp_path / "data"), "inspect", str(model)]) == 0
    line = _base_line(capsys.readouterr().out)
    assert line.startswith("  base model:   demo, none usable on this machine: demo-int4.safetensors: its base "
                           "pipeline (text encoders, VAE) was not found (tried: ")  # fmt: skip


def test_inspecting_a_file_needs_no_data_folder(tmp_path, capsys, monkeypatch):
    """inspect only reads the library (to find a name, or a base by library name): with no data folder, and none that
    can be made (HOME on a path that cannot exist), a file is inspected and nothing is created."""
    monkeypatch.delenv(gpu.paths.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", "/proc/self/no-home")
    assert main(["inspect", str(MODELS / "demo-int4.safetensors")]) == 0
    assert capsys.readouterr().out.startswith("demo-int4.safetensors: SVDQ format v1")
    assert not Path("/proc/self/no-home").exists()


def test_inspect_says_the_scheduler_the_file_records(tmp_path, capsys):
    """The scheduler an SVDQ file records (the one it runs with on a stand-in base) was not shown: its class and the
    settings that differ from the class's defaults are, or that it records none."""
    from header_files import edit_svdq_meta

    from tests.test_base_fit import _demo_scheduler

    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: meta.update(scheduler=_demo_scheduler(shfit=1.0)))  # fmt: skip
    for path, said in ((model, "FlowMatchEulerDiscreteScheduler (shift 3.0, use_dynamic_shifting true)"),
                       (MODELS / "demo-int4.safetensors", "not recorded: it runs with its base pipeline's "
                                                          "scheduler")):  # fmt: skip
        assert main(["--data-dir", str(tmp_path / "data"), "inspect", str(path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert f"  scheduler:    {said}" in lines


def test_help_and_inspect_never_import_the_app(tmp_path):
    """main.py imported the app package at its top (``app.data_dir``, for a --data-dir's words): every command
    imported the desktop app's package, which an engine-only install does not have. ``--help`` and ``inspect``
    import neither it nor Qt, with --data-dir too: its blank-name check (``blank_data_dir``) was imported from the
    app, so on an engine-only install every command given --data-dir stopped with ModuleNotFoundError."""
    import json
    import os
    import subprocess
    import sys

    model = str(MODELS / "demo-int4.safetensors")
    script = ("import json, sys, main\n"
              "def app_modules():\n    return sorted(m for m in ('app', 'PySide6') if m in sys.modules)\n"
              "try:\n    main.main(['--help'])\nexcept SystemExit:\n    pass\n"
              "help = app_modules()\n"
              f"code = main.main(['inspect', {model!r}])\n"
              "plain = app_modules()\n"
              f"named = main.main(['--data-dir', {str(tmp_path / 'named')!r}, 'inspect', {model!r}])\n"
              f"blank = main.main(['--data-dir', '', 'inspect', {model!r}])\n"
              "print(json.dumps([help, code, plain, named, blank, app_modules()]))\n")
    env = {**os.environ, "NIBBLE_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    # a blank --data-dir is refused (2) in the engine's own words, still without the app
    assert json.loads(run.stdout.splitlines()[-1]) == [[], 0, [], 0, 2, []], run.stdout[-500:]
    assert '--data-dir "": the folder name is empty' in run.stderr


def test_inspect_prints_no_library_advice_on_stderr(tmp_path):
    """``inspect`` of a file that records its scheduler imported diffusers' FLUX pipeline (to check the schedule)
    without the quieting generate and quantize do (``quiet_libraries``): transformers' advice to install
    torchvision, two '[transformers] ... requires torchvision' lines, came on stderr of a command that succeeded."""
    from cli_runs import run_each
    from header_files import edit_svdq_meta

    from tests.test_base_fit import _demo_scheduler

    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: meta.update(scheduler=_demo_scheduler(shfit=1.0)))  # fmt: skip
    (run,) = run_each([["--data-dir", str(tmp_path / "data"), "inspect", str(model)]], scratch=tmp_path / "runs")
    assert run.returncode == 0 and "  scheduler:    FlowMatchEulerDiscreteScheduler" in run.stdout
    assert run.stderr == ""
