"""Two LoRAs of one name in two folders (loras/a/style.safetensors and loras/b/style.safetensors, as versions are
kept) read the same in the LoRA panel: only the tooltip told them apart. A row whose name another row has shows
as much of its folder as tells them apart, "style — a" and "style — b", in its name, its controls' names (a screen
reader's) and the tooltip; the others keep their name alone, and so does the one left when the other goes."""

from __future__ import annotations

from pathlib import Path

from app.lora_entry import folders_apart
from tests.app.test_lora_list import flux_lora


def test_rows_of_one_name_in_two_folders_show_the_folder_that_tells_them_apart(qtbot, bare_window, tmp_path):
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    loras = tmp_path / "loras"
    state.add_files([flux_lora(loras / "a" / "style.safetensors"), flux_lora(loras / "other.safetensors")])
    first = panel.row_for("style")
    assert first.enabled.full_text() == "style"  # one row of its name: the name alone
    state.add_files([flux_lora(loras / "b" / "style.safetensors")])
    assert first.enabled.full_text() == "style — a"  # its controls shown anew, in place

    def row(path: Path):  # its controls, scrolled into sight
        return panel.view.editor(next(i for i, e in enumerate(state.entries) if e.path == path))

    a, b, other = row(loras / "a" / "style.safetensors"), row(loras / "b" / "style.safetensors"), row(
        loras / "other.safetensors")  # fmt: skip
    assert [a.enabled.full_text(), b.enabled.full_text(), other.enabled.full_text()] == [
        "style — a", "style — b", "other"]  # fmt: skip
    assert a.enabled.text() == "style — a"  # shown whole where the row has room (cut short with "…" where not)
    assert a.enabled.accessibleName() == "style — a" and a.slider.accessibleName() == "Strength of style — a"
    assert b.remove_button.accessibleName() == "Remove style — b"
    assert a.enabled.toolTip().startswith(f"style — a\n{loras / 'a' / 'style.safetensors'}")
    model = panel.view.model()
    assert [model.index(i).data() for i in range(model.rowCount())][-3:] == ["style — a", "other", "style — b"]

    state.remove(b.entry)  # the one left of that name reads as its name again
    assert panel.row_for("style").enabled.full_text() == "style"
    assert panel.row_for("style").slider.accessibleName() == "Strength of style"


def test_the_folders_shown_are_the_fewest_that_tell_rows_of_one_name_apart():
    paths = [Path("/l/x/a/style.safetensors"), Path("/l/y/a/style.safetensors"), Path("/l/b/style.safetensors"),
             Path("/l/b/ink.safetensors"), Path("/l/c/ink.safetensors"), Path("/l/solo.safetensors"),
             Path("/l/c/Style.safetensors")]  # fmt: skip
    assert folders_apart(paths) == [str(Path("x", "a")), str(Path("y", "a")), "b", "b", "c", "", ""]
    # one folder holds both (names told apart by their suffix alone): the file's whole name
    assert folders_apart([Path("/l/style.safetensors"), Path("/l/style.SafeTensors")]) == [
        "style.safetensors", "style.SafeTensors"]  # fmt: skip
    # 2,000 files of one name (diffusers names every LoRA pytorch_lora_weights), each in a folder of its own
    many = [Path(f"/l/v{i}/pytorch_lora_weights.safetensors") for i in range(2000)]
    assert folders_apart(many) == [f"v{i}" for i in range(2000)]
