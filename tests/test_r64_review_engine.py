"""Review R64: engine defects proven as strict xfail tests (each fails today for the reason its mark gives)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from gpu.library import ModelLibrary
from gpu.library_found import add_found_models, found_models, left_out
from gpu.paths import resources_dir

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


@pytest.mark.skipif(os.name == "nt", reason="POSIX change time")
@pytest.mark.xfail(strict=True, reason="R64: a model removed under the previous version comes back after a chmod")
def test_a_model_removed_before_records_held_its_header_stays_removed_after_a_chmod(tmp_path):
    """The previous version (F62) recorded a removal with size, modification and change time, without ``head``.
    Such a record is kept as it is at every save (``unlisted_field`` / ``_stamped`` stamp only records of a path
    alone), so ``_still_that_file`` never gets a header digest to stand for its change time: a chmod (or a hard-
    linking backup) still adds the model the user removed back at the next start, the defect R62 fixed for
    records made from now on. A record that still holds could take its file's ``head`` at the next save."""
    models = tmp_path / "models"
    models.mkdir()
    model = Path(shutil.copyfile(DEMO_INT4, models / "flux-int4.safetensors"))
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    library.remove("flux-int4")
    data = json.loads(library.file.read_text(encoding="utf-8"))
    for record in data["unlisted"]:
        record.pop("head")  # as the previous version wrote it
    library.file.write_text(json.dumps(data), encoding="utf-8")
    library = ModelLibrary(tmp_path / "data")  # an update started: its first start, a save of the library
    library.add(Path(shutil.copyfile(DEMO_INT4, models / "other-int4.safetensors")))
    assert left_out(library.file, model) == "removed"
    time.sleep(0.05)  # a tick of the file system's clock
    os.chmod(model, 0o444)  # the user makes the models folder read-only; a sync tool fixes permissions
    assert found_models(models, [e.path for e in library.entries()], library.file) == []
    assert [e.name for e in add_found_models(library, models, [e.path for e in library.entries()])] == []
