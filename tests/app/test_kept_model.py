"""The model kept for the user in the saved settings (``ModelLibrary.kept_fields``) while its file cannot be opened:
what the notices name, and what picking it once its file is back restores. State objects alone (no window): the
library's entries are what the engine lists, a usable one with its defaults, an unusable one with its problem."""

from __future__ import annotations

from types import SimpleNamespace

from app.generation_state import PromptState
from app.memory_state import MemoryState
from app.model_library import LibraryLinks, ModelLibrary

DEFAULTS = {"steps": 4, "width": 512, "height": 512, "guidance": 3.5}


def _entry(name: str, usable: bool, builtin: bool = False) -> SimpleNamespace:
    facts = SimpleNamespace(defaults=DEFAULTS) if usable else None
    return SimpleNamespace(name=name, facts=facts, problem="its file is not there", path=f"/m/{name}",
                           builtin=builtin, missing=not usable)


def _library(said: list) -> tuple[ModelLibrary, PromptState]:
    """A library whose last session's model 'mine' (3 steps, 256x256) cannot be opened at the start."""
    links = LibraryLinks(describe=lambda *a: None, read=lambda *a: None, add=lambda *a: None, remove=lambda *a: None,
                         owe_add=lambda *a: None, owe_remove=lambda *a: None, changed=lambda *a: None,
                         info_changed=lambda *a: None, add_ended=lambda *a: None, say=said.append,
                         tell=lambda *a: None)
    prompt = PromptState()
    prompt.model, prompt.steps, prompt.width, prompt.height = "mine", 3, 256, 256
    library = ModelLibrary(prompt, MemoryState(), lambda: None, links, None)
    library.on_engine_ready([_entry("demo", True, True), _entry("other", True), _entry("mine", False)])
    library.select_at_start(True)
    assert prompt.model == "demo" and library.kept_fields()["model"] == "mine"
    return library, prompt


def test_the_kept_model_picked_once_its_file_is_back_comes_with_the_fields_kept_for_it(qapp):
    """The start's notice says to plug the drive in and pick the model again: doing so in the session gave it its
    defaults (4 steps, 512x512) and dropped the size and steps the settings had kept for it, which a restart
    would have restored."""
    library, prompt = _library([])
    library.on_library([_entry("demo", True, True), _entry("other", True), _entry("mine", True)])  # plugged in
    library.list_state.pick("mine")
    assert (prompt.model, prompt.steps, prompt.width, prompt.height) == ("mine", 3, 256, 256)
    assert library.kept_fields() == {}


def test_a_fallback_gone_in_turn_names_the_model_still_kept(qapp):
    """The model selected in place of the kept one went missing in turn: the notice said the fields of the model
    that went missing would be saved, where those of the kept one are."""
    said: list = []
    library, prompt = _library(said)
    library.on_library([_entry("demo", False, True), _entry("other", True), _entry("mine", False)])
    assert prompt.model == "other" and library.kept_fields()["model"] == "mine"
    assert "rather than those of 'mine'" in said[-1].hint, said[-1].hint
