"""Names in the model library: a user's model keeps a name of its own when a built-in takes its old one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpu.errors import UserError
from gpu.library import ModelLibrary, builtin_models

DEMO_INT4 = Path(__file__).parents[1] / "resources/models/demo-int4.safetensors"


def test_a_user_model_named_like_a_built_in_is_listed_under_a_new_name_and_told_once(tmp_path):
    """A later version may ship a built-in under a name the user had given a model of their own: the built-in
    took the name and the user's model vanished from the list (and from resolve, remove, add-again)."""
    assert "demo-int4" in builtin_models() and "demo-int4-2" not in builtin_models()
    mine = tmp_path / "models" / "my-int4.safetensors"
    mine.parent.mkdir()
    shutil.copyfile(DEMO_INT4, mine)
    other = tmp_path / "models" / "other.safetensors"
    shutil.copyfile(DEMO_INT4, other)
    models = [{"name": "demo-int4", "path": str(mine)}, {"name": "other", "path": str(other)}]
    (tmp_path / "library.json").write_text(json.dumps({"version": 1, "models": models}))

    library = ModelLibrary(tmp_path)
    entries = {e.name: e for e in library.entries()}
    assert entries["demo-int4"].builtin and entries["demo-int4"].path != mine  # the built-in keeps its name
    assert entries["demo-int4-2"].path == mine and not entries["demo-int4-2"].builtin
    assert entries["demo-int4-2"].facts is not None and entries["other"].path == other
    (notice,) = library.take_notices()
    assert "'demo-int4'" in str(notice) and "'demo-int4-2'" in str(notice) and str(mine) in str(notice)
    assert library.resolve("demo-int4-2").path == mine

    saved = json.loads((tmp_path / "library.json").read_text())
    assert [(m["name"], m["path"]) for m in saved["models"]] == [("demo-int4-2", str(mine)), ("other", str(other))]
    again = ModelLibrary(tmp_path)
    assert [e.name for e in again.entries()][-2:] == ["demo-int4-2", "other"]
    assert again.take_notices() == []  # said once: the new name was saved
    assert again.add(mine).already_added and again.add(mine).name == "demo-int4-2"
    again.remove("demo-int4-2")
    assert [m["name"] for m in json.loads((tmp_path / "library.json").read_text())["models"]] == ["other"]


def test_the_rename_is_told_once_even_when_the_library_cannot_be_saved(tmp_path, monkeypatch):
    """Where the new name cannot be saved, every read renamed the entry again and told it again."""
    from gpu.errors import OutputError

    mine = tmp_path / "my-int4.safetensors"
    shutil.copyfile(DEMO_INT4, mine)
    (tmp_path / "library.json").write_text(json.dumps({"version": 1, "models": [{"name": "demo", "path": str(mine)}]}))
    library = ModelLibrary(tmp_path)

    def refuse(paths):
        raise OutputError(f"cannot write {library.file}: Read-only file system")

    monkeypatch.setattr(library, "_save", refuse)
    assert [e.name for e in library.entries()][-1] == "demo-2"
    assert library.resolve("demo-2").path == mine and [e.name for e in library.entries()][-1] == "demo-2"
    (notice,) = library.take_notices()
    assert "'demo-2'" in str(notice) and library.take_notices() == []


def test_a_removal_refused_says_the_true_reason(tmp_path):
    """A name no longer listed (removed already, by a Remove clicked twice) was refused as "not a user-added model
    (built-in models cannot be removed)", of the user's own model: it says it is not in the library now."""
    library = ModelLibrary(tmp_path)
    mine = tmp_path / "mine.safetensors"
    shutil.copyfile(DEMO_INT4, mine)
    library.add(mine)
    library.remove("mine")
    with pytest.raises(UserError) as removed_again:
        library.remove("mine")
    assert str(removed_again.value) == ("no model named 'mine' in the library (demo, demo-int4): nothing to remove "
                                        "(it may have been removed already)")  # fmt: skip
    with pytest.raises(UserError, match="^'demo' is a built-in model: built-in models cannot be removed$"):
        library.remove("demo")
