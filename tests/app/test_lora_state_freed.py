"""A LoRA state let go of is destroyed at once, on the Qt thread: its folder scan and hash search reach it through
their Qt parent, not Python attributes. A reference cycle (state -> collaborator -> state) kept a parentless state
alive until a garbage collection, which may run on any thread and destroy the Qt object there (app/background.py's
rule: a thread never holds the last reference to a Qt object)."""

from __future__ import annotations

import gc
import threading
import weakref

from app.lora_state import LoraState

_refs: list[weakref.ref] = []  # outlive the test: each callback says on which thread its state went


def test_a_lora_state_let_go_of_is_destroyed_at_once_on_the_qt_thread(qapp):
    state = LoraState()  # no parent: the Python reference owns it
    assert state.folder_scan.parent() is state and state.hash_search.parent() is state
    threads: list[threading.Thread] = []
    _refs.append(weakref.ref(state, lambda _: threads.append(threading.current_thread())))
    gc.collect()
    gc.disable()  # no collection meanwhile, which would hide a cycle
    try:
        del state
        assert threads == [threading.main_thread()]  # at once, with its last reference: no cycle left for a collection
    finally:
        gc.enable()
