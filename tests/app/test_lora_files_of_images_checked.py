"""What a dropped image of ours does to a LoRA file it names: a file an image named by its path was added as a row
whatever it was (an SDXL LoRA, /etc/passwd) and kept in the settings; a LoRA file saved over since the image was made
was switched on unsaid, though the image recorded its hash."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from gpu.generation.png_metadata import write_png
from gpu.lora import read_lora
from gpu.paths import resources_dir
from tests.app.gui import drop_file, loras_restored
from tests.app.test_foreign_loras import _Hashing
from tests.lora_files import sdxl_like, text_encoder_lora

EXAMPLE = resources_dir() / "loras" / "monochrome-style.safetensors"


def _our_png(path: Path, lora_list: list[dict]) -> Path:
    """A PNG with our settings, made with the LoRAs of ``lora_list``."""
    write_png(path, Image.new("RGB", (16, 16)),
              {"prompt": "a cat", "model": "demo", "version": "NibbleStudio 0.9", "lora_list": lora_list})  # fmt: skip
    return path


def test_a_lora_file_saved_over_since_the_image_was_made_is_said(qtbot, bare_window, tmp_path):
    """The one row of the image's file name, its file another LoRA now: on at the image's strength, as the LoRA of
    that name (as of several rows none with the hash), and said once its contents were searched, off the Qt
    thread; the file the image was made with back, the drop says nothing."""
    controller = bare_window.controller
    shown = []
    controller.error.connect(shown.append)
    te = text_encoder_lora(tmp_path / "te.safetensors")
    (entry,) = controller.loras.add_files([te], enabled=False)[0]
    made_with, digest = te.read_bytes(), read_lora(te).short_hash
    png = _our_png(tmp_path / "made.png", [{"name": "te", "file": "te.safetensors", "strength": 0.7, "hash": digest}])
    text_encoder_lora(te, seed=5)  # another LoRA saved over it

    drop_file(bare_window.prompt_panel, png)
    loras_restored(qtbot, controller.loras)
    assert entry.enabled and entry.strength == 0.7
    qtbot.waitUntil(lambda: bool(shown))
    assert [e.message for e in shown] == [
        f"The image used the LoRA 'te' with the hash {digest}, which none of the LoRA files of that name listed here "
        f"has: {te} is on instead, and new images may differ."]  # fmt: skip
    assert entry.enabled and controller.loras.requests() == [(str(te), 0.7)]

    shown.clear()
    te.write_bytes(made_with)
    controller.loras.set_enabled(entry, False)
    drop_file(bare_window.prompt_panel, png)
    loras_restored(qtbot, controller.loras)
    assert entry.enabled
    qtbot.waitUntil(lambda: controller.loras.hash_search._search is None)  # settled, with nothing to say
    assert [e.message for e in shown if "LoRA" in e.message] == []


def test_a_file_saved_over_is_said_though_the_panel_changed_while_it_was_hashed(qtbot, bare_window, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    """The user sets another row's strength while the image's LoRA file is hashed (every one-row reuse reads the
    whole file: seconds for 100-300 MB): the notice that the file is another LoRA now was lost, the row left on
    unsaid. It comes still; a row the user switched off or removed meanwhile is their choice, and not said."""
    hashing = _Hashing(monkeypatch, hold=True)
    controller = bare_window.controller
    shown = []
    controller.error.connect(shown.append)
    te = text_encoder_lora(tmp_path / "te.safetensors")
    other = shutil.copy(EXAMPLE, tmp_path / "other.safetensors")
    entry, _other = controller.loras.add_files([te, other], enabled=False).added
    digest = read_lora(te).short_hash
    png = _our_png(tmp_path / "made.png", [{"name": "te", "file": "te.safetensors", "strength": 0.7, "hash": digest}])
    text_encoder_lora(te, seed=5)  # another LoRA saved over it

    def drop_and(touch) -> list[str]:
        """The image dropped, ``touch`` done while its LoRA file is hashed: what was said once the search ended."""
        shown.clear()
        hashing.hold()
        entry.hashes = None  # its file is read again: the search is held there
        drop_file(bare_window.prompt_panel, png)
        loras_restored(qtbot, controller.loras)
        hashing.held()
        touch()
        hashing.release()
        assert controller.loras.hash_search._search is None  # settled
        return [e.message for e in shown]

    assert drop_and(lambda: bare_window.lora_panel.row_for("other").slider.setValue(50)) == [
        f"The image used the LoRA 'te' with the hash {digest}, which none of the LoRA files of that name listed here "
        f"has: {te} is on instead, and new images may differ."]  # fmt: skip
    assert controller.loras.requests() == [(str(te), 0.7)]  # the user's strength of 'other' kept, it off

    assert drop_and(lambda: bare_window.lora_panel.row_for("te").enabled.click()) == []
    assert controller.loras.requests() == []
    assert drop_and(lambda: bare_window.lora_panel.row_for("te").remove_button.click()) == []
    assert entry not in controller.loras.entries


def test_a_file_an_image_names_is_added_only_if_it_is_a_usable_lora(qtbot, bare_window, tmp_path):
    """A PNG (any program can write one) naming an SDXL LoRA and /etc/passwd by their paths: neither is added (each
    was, kept in the settings for good), each is named with why; a FLUX.1 LoRA it names is added, switched on."""
    controller = bare_window.controller
    shown = []
    controller.error.connect(shown.append)
    sdxl = sdxl_like(tmp_path / "sdxl-style.safetensors")
    flux = shutil.copy(EXAMPLE, tmp_path / "flux-style.safetensors")
    rows = [e.path for e in controller.loras.entries]
    png = _our_png(tmp_path / "old.png", [{"name": "sdxl-style", "file": str(sdxl), "strength": 0.8},
                                          {"name": "passwd", "file": "/etc/passwd", "strength": 0.8},
                                          {"name": "flux-style", "file": str(flux), "strength": 0.6}])  # fmt: skip

    drop_file(bare_window.prompt_panel, png)
    loras_restored(qtbot, controller.loras)
    assert [e.path for e in controller.loras.entries] == [*rows, flux]
    assert controller.loras.requests() == [(str(flux), 0.6)]
    said = [e.message for e in shown]
    assert len(said) == 2, said
    assert said[0].startswith(f"The image used the LoRA 'sdxl-style', which was not added to the LoRA panel: {sdxl} "
                              "is not a LoRA that can be used: ")  # fmt: skip
    assert "SDXL" in said[0] and said[0].endswith(". New images are made without it.")
    assert said[1].startswith("The image used the LoRA 'passwd', which was not added to the LoRA panel: /etc/passwd "
                              "is not a LoRA that can be used: ")  # fmt: skip
    bare_window.close()
    assert [s.path for s in bare_window.controller.settings.loras] == [str(p) for p in [*rows, flux]]
