"""The Models panel's state as a unit (``ModelListState``): what a pick or a move of the highlight does, what the
rows say, and when Remove acts. The library under it is the real ``ModelLibrary``; its links to the engine thread
are recorded instead of sent (no engine: the answers the engine would give are handed in by the test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.engine_errors import EngineError
from app.generation_state import PromptState
from app.memory_state import MemoryState
from app.model_library import LibraryLinks, ModelLibrary
from app.model_list_state import ModelListState, ModelRow, Pick
from gpu.library import ModelEntry

FACTS = SimpleNamespace(defaults={})  # a usable entry's facts: only their defaults are read here


def _entries(mine_usable: bool = True, mine_missing: bool = True) -> list[ModelEntry]:
    mine = ModelEntry("mine", Path("/models/mine.safetensors"), False, FACTS if mine_usable else None,
                      problem="" if mine_usable else "/models/mine.safetensors: no such file",
                      missing=mine_missing)  # fmt: skip
    return [ModelEntry("demo", Path("/res/demo"), True, FACTS), ModelEntry("demo-int4", Path("/res/d4"), True, FACTS),
            mine]


class Engine:
    """What the library asked of the engine thread, and what it told the user."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []
        self.said: list[Any] = []

    def links(self) -> LibraryLinks:
        def ask(what: str) -> Any:
            return lambda *args: self.asked.append((what, args))

        return LibraryLinks(describe=ask("describe"), read=ask("read"), add=ask("add"), remove=ask("remove"),
                            owe_add=ask("owe_add"), owe_remove=ask("owe_remove"), changed=ask("changed"),
                            info_changed=ask("info_changed"), add_ended=ask("add_ended"), say=self.said.append,
                            tell=lambda _text: None)  # fmt: skip

    def asks(self, what: str) -> list[Any]:
        return [args for w, args in self.asked if w == what]


@dataclass
class World:
    library: ModelLibrary
    engine: Engine
    prompt: PromptState  # its model is the model of the next jobs
    state: ModelListState


@pytest.fixture
def world() -> World:
    """A library whose engine is ready with demo, demo-int4 and mine (usable), demo in use."""
    engine, prompt = Engine(), PromptState()
    prompt.model = "demo"
    library = ModelLibrary(prompt, MemoryState(), lambda: None, engine.links(), None)
    library.on_engine_ready(_entries())
    library.select_at_start(jobs_idle=True)
    return World(library, engine, prompt, library.list_state)


def _info(name: str) -> Any:
    return SimpleNamespace(name=name, kind="svdq", architecture="flux", precision="int4", size_bytes=1 << 20,
                           est_vram_bytes=None, est_ram_bytes=None, memory_policy=None, defaults={},
                           execution_path="PyTorch reference on CPU (why)",
                           execution_summary="PyTorch reference on CPU")


def test_rows_and_the_model_in_use(world):
    lib, state = world.library, world.state
    assert state.rows == (ModelRow("demo  (built-in)", "demo", "/res/demo"),
                          ModelRow("demo-int4  (built-in)", "demo-int4", "/res/d4"),
                          ModelRow("mine", "mine", "/models/mine.safetensors"))  # fmt: skip
    assert state.highlighted == "demo" and not state.removable  # a built-in model cannot be removed
    lib.on_described(_info("demo"))
    assert state.details.startswith("Model: demo\n") and state.runs_on == "Runs on: PyTorch reference on CPU"
    assert state.runs_on_tip == "PyTorch reference on CPU (why)"


def test_a_usable_model_picked_is_selected_and_removable(world):
    engine, state = world.engine, world.state
    assert state.pick("mine") is Pick.SELECTED
    assert state.highlighted == "mine" and state.removable  # a model of the user's can be removed
    assert state.details == "Reading model…" and state.runs_on == ""
    assert engine.asks("describe")[-1][0] == "mine"
    state.remove()
    assert engine.asks("remove") == [("mine",)]


def test_the_current_model_picked_again_changes_nothing(world):
    lib, engine, state = world.library, world.engine, world.state
    lib.on_described(_info("demo"))
    described = len(engine.asks("describe"))
    assert state.highlight("demo") is Pick.CURRENT and state.pick("demo") is Pick.CURRENT
    assert len(engine.asks("describe")) == described  # not read again: that reset size, steps and guidance
    assert state.details.startswith("Model: demo\n") and not state.removable


@pytest.mark.parametrize("missing, word", [(True, "missing"), (False, "cannot be used")])
def test_an_unusable_model_is_looked_at_again_then_refused(world, missing, word):
    lib, engine, state = world.library, world.engine, world.state
    lib.on_library(_entries(mine_usable=False, mine_missing=missing))
    assert state.rows[2].text == f"mine  ({word})" and state.rows[2].tip.startswith("/models/mine.safetensors: ")

    assert state.highlight("mine") is Pick.SHOWN  # the keys passing over it: shown, its file not looked at
    assert engine.asks("read") == [] and world.prompt.model == "demo"
    assert state.highlighted == "mine" and state.removable
    assert state.details == f"mine: {word}. New images use demo. Press Enter to look at its file again."

    assert state.pick("mine") is Pick.LOOKING  # Enter: the list read again first (a drive back?)
    assert state.details == "mine: looking at its file again…" and engine.asks("read") == [(1,)]
    assert state.pick("mine") is Pick.WAITING  # a second pick meanwhile: not refused at once
    lib.on_library_read(1, _entries(mine_usable=False, mine_missing=missing))  # still unusable: refused
    assert len(engine.said) == 1 and "'mine' cannot be used" in engine.said[0].message
    assert world.prompt.model == "demo" and state.highlighted == "mine" and state.removable  # kept, for Remove
    assert state.details.startswith(f"mine: {word}.")


def test_an_unusable_model_whose_file_is_back_is_selected(world):
    lib, engine, state = world.library, world.engine, world.state
    lib.on_library(_entries(mine_usable=False))
    assert state.pick("mine") is Pick.LOOKING
    lib.on_library_read(1, _entries())
    assert world.prompt.model == state.highlighted == "mine" and engine.said == []


def test_going_back_to_the_model_in_use_drops_the_look(world):
    lib, state = world.library, world.state
    lib.on_library(_entries(mine_usable=False))
    assert state.pick("mine") is Pick.LOOKING
    assert state.highlight("demo") is Pick.CURRENT
    assert not lib.is_rechecking("mine") and state.highlighted == "demo" and not state.removable
    lib.on_library_read(1, _entries())  # its file back, after the user left it: decides nothing
    assert world.prompt.model == "demo"


def _facts_of(state: ModelListState, name: str) -> bool:
    """Whether the details show ``name``'s facts, with the path that runs it."""
    return state.details.startswith(f"Model: {name}\n") and state.runs_on == "Runs on: PyTorch reference on CPU"


@pytest.mark.parametrize("then", ["removed", "back"])
def test_the_highlight_back_on_the_model_in_use_shows_its_facts(world, then):
    """A missing model highlighted, then Remove (the list comes without it) or the list comes unasked with its file
    back: the highlight goes back to the model in use, and so do the details. They kept "mine: missing. New images
    use demo. Press Enter to look at its file again." under 'demo', with no "Runs on" line."""
    lib, state = world.library, world.state
    lib.on_described(_info("demo"))
    lib.on_library(_entries(mine_usable=False))
    assert state.highlight("mine") is Pick.SHOWN and state.details.startswith("mine: missing.")
    if then == "removed":
        state.remove()
        lib.on_library(_entries()[:2])
    else:
        lib.on_library(_entries())
    assert state.highlighted == "demo" and not state.removable
    assert _facts_of(state, "demo")


def test_a_model_selected_while_another_is_highlighted_shows_its_own_state(world):
    """A missing model highlighted, then another selected by the library (a model added is selected): the
    highlight goes to it, and the details say it is being read, not the missing one's message."""
    lib, state = world.library, world.state
    lib.on_described(_info("demo"))
    lib.on_library(_entries(mine_usable=False))
    assert state.highlight("mine") is Pick.SHOWN
    lib.on_model_added("demo-int4", 1)
    assert world.prompt.model == state.highlighted == "demo-int4" and state.details == "Reading model…"
    lib.on_described(_info("demo-int4"))
    assert _facts_of(state, "demo-int4")


DAMAGED = EngineError("user", "the model file /models/mine.safetensors is damaged", "Add the model again.")


def test_a_model_whose_facts_cannot_be_read_is_refused_and_the_one_before_stays_in_use(world):
    """A usable model picked whose describe fails (not its file away for a moment): it stayed selected for the next
    jobs, which failed on it too, and the panel said "Reading model…" for good. The model described before it is
    selected again, said with the error; the refused one stays highlighted with why, for Remove or another try."""
    lib, engine, state = world.library, world.engine, world.state
    lib.on_described(_info("demo"))
    assert state.pick("mine") is Pick.SELECTED
    lib.on_describe_failed(engine.asks("describe")[-1][1], DAMAGED)
    assert world.prompt.model == "demo" and engine.asks("describe")[-1][0] == "demo"
    assert [e.message for e in engine.said] == ["The model file /models/mine.safetensors is damaged. 'demo' is "
                                                "selected instead."]  # fmt: skip
    refusal = ("mine: The model file /models/mine.safetensors is damaged. New images use demo. Press Enter to try "
               "it again, or Remove to take it off the list.")  # fmt: skip
    assert state.highlighted == "mine" and state.removable and state.details == refusal and state.runs_on == ""
    lib.on_described(_info("demo"))  # the fallback's facts: kept for when the highlight comes back to it
    lib.on_library(_entries())  # a list after a job: the refusal stays under the refused model
    assert state.highlighted == "mine" and state.details == refusal
    assert state.highlight("demo") is Pick.CURRENT and _facts_of(state, "demo")
    assert state.pick("mine") is Pick.SELECTED and state.details == "Reading model…"  # tried again
    assert world.prompt.model == "mine" and engine.asks("describe")[-1][0] == "mine"


def test_a_model_whose_facts_cannot_be_read_with_none_to_use_instead():
    """The only model that opens cannot be described: it stays in use (none other opens), refused with why; picked
    again, it is described again, its fields kept."""
    engine, prompt = Engine(), PromptState()
    prompt.model = "mine"
    library = ModelLibrary(prompt, MemoryState(), lambda: None, engine.links(), None)
    facts = SimpleNamespace(defaults={"steps": 28})
    library.on_engine_ready([ModelEntry("mine", Path("/models/mine.safetensors"), False, facts)])
    library.select_at_start(jobs_idle=True)
    state = library.list_state
    library.on_describe_failed(engine.asks("describe")[-1][1], DAMAGED)
    assert prompt.model == state.highlighted == "mine" and [e.message for e in engine.said] == [DAMAGED.message]
    assert state.details == ("mine: The model file /models/mine.safetensors is damaged. Press Enter to try it again, "
                             "or Remove to take it off the list.")  # fmt: skip
    prompt.steps = 7
    assert state.pick("mine") is Pick.SELECTED and state.details == "Reading model…"
    assert engine.asks("describe")[-1][0] == "mine" and prompt.steps == 7  # not its 28 again


def test_the_start_up_model_whose_facts_cannot_be_read_gives_way_to_the_first_that_opens(world):
    """The model of the last session cannot be described at start-up (none described before it): the first other
    model that opens is used; a built-in one is not offered to Remove."""
    lib, engine, state = world.library, world.engine, world.state
    lib.on_describe_failed(engine.asks("describe")[-1][1], EngineError("user", "the model 'demo' is damaged"))
    assert world.prompt.model == "demo-int4" and "'demo-int4' is selected instead" in engine.said[0].message
    assert state.highlighted == "demo" and not state.removable
    assert state.details == "demo: The model 'demo' is damaged. New images use demo-int4. Press Enter to try it again."


def test_an_add_is_said_pending_till_the_engine_answers_it_however_it_ends(world):
    """(R54) An add waits behind the jobs queued before it: nothing said so, and the click looked lost. Now
    ``adding`` names the files till each add ends: added, added already, or refused."""
    lib, state = world.library, world.state
    first = lib.add_model("/models/mine.safetensors")
    assert state.adding == "Adding 'mine.safetensors'…"  # no job ahead of it
    second, third = lib.add_model("/res/d4"), lib.add_model("/models/broken")
    assert state.adding == "Adding 'mine.safetensors', 'd4', 'broken'…"
    lib.on_model_added("mine", first)
    lib.on_already_in_library("demo-int4", second)
    assert state.adding == "Adding 'broken'…"
    lib.on_add_failed(third, EngineError("user", "not a model"))
    assert state.adding == ""


def test_a_removal_is_pending_till_the_engine_answers_and_asked_once(world):
    """The engine takes a model off after the jobs queued before it: meanwhile the row and the panel say so and
    Remove is greyed on it; asked again, it is not sent again (the engine refused the second as "not user-added").
    A removal that failed (its dialog says why) is no longer pending: Remove acts on the model again."""
    lib, engine, state = world.library, world.engine, world.state
    assert state.pick("mine") is Pick.SELECTED
    state.remove()
    assert state.rows[2] == ModelRow("mine  (removing…)", "mine", "/models/mine.safetensors")
    assert not state.removable and state.removing == "Removing 'mine'…"  # no job ahead of it
    lib.remove_model("mine")
    assert engine.asks("remove") == [("mine",)]
    lib.on_library(_entries())  # a list read before the removal was taken up: still pending
    assert state.rows[2].text == "mine  (removing…)" and not state.removable
    lib.on_removal_ended("mine")  # failed: the list as it was
    assert state.rows[2].text == "mine" and state.removable and state.removing == ""
    state.remove()
    assert engine.asks("remove") == [("mine",), ("mine",)]
