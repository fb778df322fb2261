"""R62 review (failing, xfail): defects found in the engine's side of F62-F64, each test failing today for the
reason it names (run with --runxfail to see it fail)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from gpu.library import ModelLibrary
from gpu.library_found import add_found_models, found_models
from gpu.paths import resources_dir

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def _removed_model(tmp_path: Path) -> tuple[Path, Path, ModelLibrary]:
    """(the models folder, a model file in it, the library): the model added, then removed by the user (Remove keeps
    its file), and left out of the models folder's search as it should be."""
    models = tmp_path / "models"
    models.mkdir()
    model = Path(shutil.copyfile(DEMO_INT4, models / "flux-int4.safetensors"))
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    library.remove("flux-int4")
    assert found_models(models, [], library.file) == []
    time.sleep(0.05)  # a tick of the file system's coarse clock: the change time below differs
    return models, model, library


def _chmod(model: Path, tmp_path: Path) -> None:
    """``chmod`` (a user making the models folder read-only, ``chmod -R``, a sync tool fixing permissions): the
    file's bytes, size and modification time unchanged, its change time moved."""
    os.chmod(model, 0o444)


def _hard_link(model: Path, tmp_path: Path) -> None:
    """A hard-linking backup (rsnapshot, ``cp -al``, Time-Machine-like tools) links the file into its snapshot: the
    link count, and so the change time, moves; nothing of the file itself."""
    backup = tmp_path / "snapshot"
    backup.mkdir()
    os.link(model, backup / model.name)


@pytest.mark.skipif(os.name == "nt", reason="POSIX change time")
@pytest.mark.parametrize("touch", [_chmod, _hard_link], ids=["chmod", "hard-link backup"])
@pytest.mark.xfail(strict=True, reason="R62: a removed model comes back after a chmod or a hard-linking backup "
                                       "moved only its change time")  # fmt: skip
def test_a_removed_model_stays_removed_after_its_change_time_alone_moves(tmp_path, touch):
    """The user removed a model (its file kept). Anything that moves the file's change time without touching the
    file (chmod, a hard link made by a backup tool, an xattr set by an indexer or antivirus) makes the removal's
    record (F62: it now compares the change time) stop holding, and the next start adds the removed model back,
    unasked. The same file, same bytes, same size and modification time: it should stay removed."""
    models, model, library = _removed_model(tmp_path)
    st = model.stat()
    touch(model, tmp_path)
    now = model.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert now.st_ctime_ns != st.st_ctime_ns
    assert found_models(models, [], library.file) == [], "the removed model is found again"
    assert [e.name for e in add_found_models(library, models, [])] == []
