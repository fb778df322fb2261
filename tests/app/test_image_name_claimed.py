"""A new image's name is claimed as the image is published (as ``main.py generate`` does), never replaced: another
program writing into the images folder keeps its file. The real window and engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

import app.engine_worker
from app.data_dir import DataDir
from app.image_files import new_image_path, read_image_settings, relative, save_new_image
from gpu.generation.png_metadata import write_png


def test_a_file_another_program_writes_at_the_chosen_name_meanwhile_is_kept(qtbot, window, monkeypatch):
    """The name was chosen free (``free_image_path``), then the image was published over it with a replace: a
    picture another program wrote at that name in between was lost, without a word. Now the image takes the next
    name, and the gallery records the one written."""
    choose = app.engine_worker.new_image_path
    others: list[Path] = []

    def another_program_meanwhile(*args: Any, **kwargs: Any) -> Path:
        path = choose(*args, **kwargs)
        write_png(path, Image.new("RGB", (8, 8), (1, 2, 3)), {"prompt": "another program's picture"})
        others.append(path)
        return path

    monkeypatch.setattr(app.engine_worker, "new_image_path", another_program_meanwhile)
    controller = window.controller
    controller.prompt.prompt = "a red fox"
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
        controller.generate()
    (other,) = others
    assert read_image_settings(other)["prompt"] == "another program's picture"  # was: "a red fox", replaced
    (record,) = finished.args[0]
    assert record.path == relative(controller.data, other.with_name(f"{other.stem}-1.png"))
    assert read_image_settings(controller.gallery.path_of(record))["prompt"] == "a red fox"
    assert controller.store.all_paths().keys() == {record.path}


def test_a_file_written_at_the_name_while_the_image_is_written_is_kept(tmp_path):
    """The name looked at free before the write may be taken by the time the image is published: the image then
    takes the next name the trash does not keep either, and the other file stays."""
    data = DataDir(tmp_path / "data").create()
    path = new_image_path(data, 7, 0)
    kept_for_undo = data.trash / relative(data, path.with_name(f"{path.stem}-1.png"))
    kept_for_undo.parent.mkdir(parents=True)
    kept_for_undo.write_bytes(b"a deleted picture")

    def write(tmp: Path) -> None:
        path.write_bytes(b"another program's picture")  # arrives while ours is written
        write_png(tmp, Image.new("RGB", (8, 8)), {"prompt": "a red fox"})

    written = save_new_image(data, path, write)
    assert path.read_bytes() == b"another program's picture"
    assert written == path.with_name(f"{path.stem}-2.png") and read_image_settings(written)["prompt"] == "a red fox"
    assert kept_for_undo.read_bytes() == b"a deleted picture"
