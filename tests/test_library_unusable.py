"""Library models that cannot be used: each one is its own entry's problem, said with the engine's remedy, and the
other models stay usable. One model whose file could not be looked at (a folder the user may not enter, a stale NFS
handle) stopped the whole list, and with it the app's start and every command, those on other models too; one whose
file is there but unusable (a newer format, a truncated copy) lost its remedy and read as "missing"."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import gpu.library
from gpu.errors import ModelLoadError
from gpu.library import ModelLibrary
from main import main

DEMO_INT4 = Path(__file__).parents[1] / "resources/models/demo-int4.safetensors"


def unreachable(monkeypatch, folder: Path, code: int) -> None:
    """``os.stat`` of anything in ``folder`` fails with ``code``, as in a folder the user may not enter (EACCES;
    root is let in everywhere, so the test cannot take its permissions away) or a stale NFS handle (ESTALE)."""
    real = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path).startswith(f"{folder}{os.sep}"):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


def _listed(data: Path, models: dict[str, Path]) -> None:
    (data / "library.json").write_text(json.dumps({"version": 1, "models": [{"name": n, "path": str(p)}
                                                                             for n, p in models.items()]}))


@pytest.mark.parametrize("code", [errno.EACCES, errno.ESTALE, errno.EIO])
def test_a_model_that_cannot_be_looked_at_is_its_own_entrys_problem(tmp_path, monkeypatch, capsys, code):
    data = tmp_path / "data"
    data.mkdir()
    mine, other = tmp_path / "locked" / "mine.safetensors", tmp_path / "other.safetensors"
    mine.parent.mkdir()
    shutil.copyfile(DEMO_INT4, mine)
    shutil.copyfile(DEMO_INT4, other)
    _listed(data, {"mine": mine, "other": other})
    unreachable(monkeypatch, mine.parent, code)

    library = ModelLibrary(data)
    entries = {e.name: e for e in library.entries()}
    assert entries["other"].facts is not None and entries["demo"].facts is not None
    locked = entries["mine"]
    assert locked.facts is None and not locked.missing  # something is there: put back is no remedy
    assert locked.problem == f"{mine}: cannot be read: {os.strerror(code)}"
    assert "may read the file and the folders it is in" in locked.hint
    assert library.resolve("other").path == other and library.resolve("demo").name == "demo"
    with pytest.raises(ModelLoadError) as refused:
        library.resolve("mine")
    assert str(refused.value) == f"model 'mine': {locked.problem}" and refused.value.hint == locked.hint
    with pytest.raises(ModelLoadError) as by_path:
        library.resolve(str(mine))
    assert str(by_path.value) == locked.problem

    assert main(["--data-dir", str(data), "inspect", "demo-int4"]) == 0  # commands on the other models work
    assert main(["--data-dir", str(data), "inspect", "mine"]) == 2
    assert f"{mine}: cannot be read: {os.strerror(code)}" in capsys.readouterr().err


def test_a_model_file_there_but_unusable_keeps_the_engines_remedy(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    mine, gone = tmp_path / "mine.safetensors", tmp_path / "gone.safetensors"
    shutil.copyfile(DEMO_INT4, mine)
    shutil.copyfile(DEMO_INT4, gone)
    library = ModelLibrary(data)
    library.add(mine)
    library.add(gone)
    mine.write_bytes(DEMO_INT4.read_bytes()[:-1000])  # a copy cut short
    gone.unlink()

    with pytest.raises(ModelLoadError) as refused:
        library.resolve("mine")
    assert refused.value.hint == "copy or download the file again"  # the command line names the remedy
    assert main(["--data-dir", str(data), "inspect", "mine"]) == 2
    assert "(copy or download the file again)" in capsys.readouterr().err

    entries = {e.name: e for e in library.entries()}
    cut = entries["mine"]
    assert cut.facts is None and cut.hint == refused.value.hint  # kept with the entry, for the app
    assert not cut.missing  # "(missing)" and "put it back" would be wrong: it is there
    assert entries["gone"].missing and "no such file or folder" in entries["gone"].problem
    assert main(["--data-dir", str(data), "inspect", "gone"]) == 2  # gone: what to do is said too (it was not)
    assert capsys.readouterr().err.endswith("no such file or folder (put the file back where it was (or connect its "
                                            "drive), or remove 'gone' in the app's Models panel)\n")  # fmt: skip


def test_a_listed_file_given_by_its_path_goes_by_its_library_name(tmp_path):
    """generate --model /…/schnell/flux-int4.safetensors recorded the file's stem, "flux-int4", although the library
    lists that name for another file (dev/flux-int4.safetensors): restoring the image picked the other model."""
    dev, schnell = tmp_path / "dev" / "flux-int4.safetensors", tmp_path / "schnell" / "flux-int4.safetensors"
    for path in (dev, schnell):
        path.parent.mkdir()
        shutil.copyfile(DEMO_INT4, path)
    library = ModelLibrary(tmp_path / "data")
    assert [library.add(dev).name, library.add(schnell).name] == ["flux-int4", "flux-int4-2"]
    assert library.resolve(str(schnell)).name == "flux-int4-2"
    assert library.resolve(str(dev)).name == "flux-int4"
    unlisted = tmp_path / "flux-int4.safetensors"
    shutil.copyfile(DEMO_INT4, unlisted)
    assert library.resolve(str(unlisted)).name == "flux-int4"  # a file not listed goes by its stem, as before


def test_a_file_with_a_malformed_header_field_or_an_unforeseen_failure_is_its_own_entrys_problem(
    tmp_path, capsys, monkeypatch, caplog
):
    """A valid-checksum SVDQ file whose base_model.defaults is no JSON object ended in a ValueError traceback from
    the library: the app's model list stayed empty ("Starting the engine…" for good) and every command failed, those on
    other models too. It is named as the file's problem; so is any failure no check names yet (logged with its
    traceback), which is that model's and not the list's."""
    from tests.test_base_fit import with_recorded_base

    data = tmp_path / "data"
    data.mkdir()
    odd = with_recorded_base(tmp_path / "odd.safetensors", {"defaults": "x"})
    strange = shutil.copyfile(DEMO_INT4, tmp_path / "strange.safetensors")
    _listed(data, {"odd": odd, "strange": strange})
    real = gpu.library.inspect_model_path

    def inspect(path: Path):
        if path == strange:
            raise RuntimeError("something no check foresaw")
        return real(path)

    monkeypatch.setattr(gpu.library, "inspect_model_path", inspect)
    entries = {e.name: e for e in ModelLibrary(data).entries()}
    assert entries["demo"].facts is not None and entries["demo-int4"].facts is not None
    assert entries["odd"].facts is None and not entries["odd"].missing
    assert entries["odd"].problem == ("odd.safetensors: the SVDQ metadata's base_model is invalid (defaults is \"x\", "
                                      "not a JSON object or null)")  # fmt: skip
    assert entries["odd"].hint == "re-quantize the model, or copy or download the file again"
    assert entries["strange"].facts is None and not entries["strange"].missing
    assert entries["strange"].problem == f"{strange}: could not be read as a model (RuntimeError: something no check " \
        "foresaw)"  # fmt: skip
    assert "something no check foresaw" in caplog.text and "Traceback" in caplog.text

    assert main(["--data-dir", str(data), "inspect", "demo-int4"]) == 0  # commands on the other models work
    assert main(["--data-dir", str(data), "inspect", str(odd)]) == 2  # and this one's is one line, with the remedy
    assert capsys.readouterr().err.endswith("(defaults is \"x\", not a JSON object or null); re-quantize the model, "
                                            "or copy or download the file again\n")  # fmt: skip
