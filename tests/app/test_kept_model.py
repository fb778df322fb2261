"""The model kept for the user in the saved settings (``ModelLibrary.kept_fields``) while its file cannot be opened:
what the notices name, what picking it once its file is back restores, and what a model picked and refused at its
first reading leaves of it. State objects alone (no window): the
library's entries are what the engine lists, a usable one with its defaults, an unusable one with its problem."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.engine_errors import EngineError
from app.generation_state import PromptState
from app.memory_state import MemoryState
from app.model_library import ModelLibrary
from gpu.library import ModelEntry
from tests.app.test_model_list_state import Engine, _info

DEFAULTS = {"steps": 4, "width": 512, "height": 512, "guidance": 3.5}


def _entry(name: str, usable: bool, builtin: bool = False) -> ModelEntry:
    facts = SimpleNamespace(defaults=DEFAULTS) if usable else None
    return ModelEntry(name, Path(f"/m/{name}"), builtin, facts, problem="its file is not there", missing=not usable)


def _library(said: list, start: list | None = None) -> tuple[ModelLibrary, PromptState]:
    """A library whose last session's model 'mine' (3 steps, 256x256) cannot be opened at the start (``start``: the
    library's entries then; by default two others that open)."""
    engine = Engine()
    engine.said = said
    prompt = PromptState()
    prompt.model, prompt.steps, prompt.width, prompt.height = "mine", 3, 256, 256
    library = ModelLibrary(prompt, MemoryState(), lambda: None, engine.links(), None)
    library.on_engine_ready(start or [_entry("demo", True, True), _entry("other", True), _entry("mine", False)])
    library.select_at_start(True)
    assert library.kept_fields()["model"] == "mine"
    return library, prompt


def test_the_kept_model_picked_once_its_file_is_back_comes_with_the_fields_kept_for_it(qapp):
    """The start's notice says to plug the drive in and pick the model again: doing so in the session gave it its
    defaults (4 steps, 512x512) and dropped the size and steps the settings had kept for it, which a restart
    would have restored."""
    library, prompt = _library([])
    assert prompt.model == "demo"
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


def test_the_kept_model_back_as_the_fallback_or_with_no_fallback_is_kept_no_more(qapp):
    """The kept model back, selected in place of a fallback gone missing: it was kept still, the notice told the
    user to pick it to save its own fields rather than its own, and later edits were replaced by the kept ones at
    the quit. The same with no fallback at all: its file back, it stayed kept for the session."""
    said: list = []
    library, prompt = _library(said)
    library.on_library([_entry("demo", False, True), _entry("mine", True), _entry("other", True)])
    assert (prompt.model, prompt.steps, prompt.width) == ("mine", 3, 256)
    assert library.kept_fields() == {} and "To keep working" not in said[-1].hint, said[-1].hint
    alone, prompt = _library([], [_entry("demo", False, True), _entry("mine", False)])  # none opens: 'mine' stays
    assert prompt.model == "mine"
    # its file looked at again at the start (the list read again): it is back
    alone.on_library_read(alone._reads, [_entry("demo", False, True), _entry("mine", True)])
    prompt.steps = 12
    assert alone.kept_fields() == {}


@pytest.mark.parametrize("refused_by", ["list", "describe"])
def test_a_model_refused_at_its_first_reading_leaves_the_model_kept_and_the_fields_set_since(qapp, refused_by):
    """(R54) 'demo' in use in place of the kept 'mine'; 'other' picked (listed usable), and refused once the engine
    reads it: its file cut short since the list (the list read again says so), or its facts not read (a describe
    failure on a file there). 'demo' came back with its own defaults over the user's fields; and, refused by the
    list, 'other', never opened, became the model kept for the user; refused by its describe, 'mine' was kept no
    more. Now 'demo' comes back as it was, with the field the user set since the pick, and 'mine' is still kept."""
    said: list = []
    library, prompt = _library(said)
    library.on_described(_info("demo"))  # it opens
    prompt.steps, prompt.width = 6, 320  # the user's, on 'demo'
    library.list_state.pick("other")
    assert (prompt.model, prompt.steps) == ("other", 4) and library.kept_fields() == {}
    prompt.width = 384  # set since the pick
    if refused_by == "list":
        broken = ModelEntry("other", Path("/m/other"), False, None, problem="a damaged copy", missing=False)
        library.on_library([_entry("demo", True, True), broken, _entry("mine", False)])
        assert said[-1].message == "The model 'other' cannot be used: a damaged copy. 'demo' stays selected."
    else:
        pick = library._asked[0]  # the number of the last describe asked: the pick's
        library.on_describe_failed(pick, EngineError("user", "the model 'other' is damaged"))
        assert said[-1].message == "The model 'other' is damaged. 'demo' is selected instead."
    assert (prompt.model, prompt.steps, prompt.width) == ("demo", 6, 384)
    assert library.kept_fields()["model"] == "mine"  # was: 'other', or none
