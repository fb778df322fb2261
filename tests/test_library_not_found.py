"""What the library says of a model that is neither one of its names nor a file or folder.

It said both of everything: "no model named '/m/x.safetensors' in the library (…) and no file or folder
/m/x.safetensors" repeated a path given as one, and "no file or folder /home/me/my-model" named, in the windowed
app, a current folder the user never chose."""

from __future__ import annotations

import pytest

from gpu.errors import ModelLoadError
from gpu.library import ModelLibrary, given_as_path


def _refusal(library: ModelLibrary, key: str) -> str:
    with pytest.raises(ModelLoadError) as refused:
        library.resolve(key)
    return str(refused.value)


def test_a_name_is_said_as_a_name_and_a_path_as_the_path_it_was_looked_for_at(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    library = ModelLibrary(tmp_path / "data")
    assert _refusal(library, "demo-int5") == "no model named 'demo-int5' in the library (demo, demo-int4)"
    gone = tmp_path / "models" / "gone.safetensors"
    assert _refusal(library, str(gone)) == f"no file or folder {gone} (and no library model of that name)"
    # a relative path, or a file name, is read from the current folder: where it was looked for is said
    for relative in ("models/gone.safetensors", "gone.safetensors"):
        assert _refusal(library, relative) == (f"no file or folder {tmp_path / relative} (and no library model of "
                                               "that name)")  # fmt: skip
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _refusal(library, "~/gone") == f"no file or folder {tmp_path / 'gone'} (and no library model of that name)"


def test_what_reads_as_a_path():
    assert not any(map(given_as_path, ["demo", "flux.1-dev-int4", "my model"]))
    assert all(map(given_as_path, ["a/b", "/m/x", "~", "~/m", "x.safetensors", "X.SafeTensors"]))
