"""A dropped image's LoRA found by its hash, but left off because the panel changed while the files were read, is
said: with two versions of one name (v1/ink, v2/Ink) v1 was on from the drop, the search found the image's hash in
v2, a strength set meanwhile kept v2 off (no late switch, by design) and, the hash being "found", nothing was said:
v1 stayed on, the wrong version, and new images differed without a word."""

from __future__ import annotations

from tests.app.gui import refs_restored
from tests.app.test_foreign_loras import _a1111_hash, _Hashing, _two_versions


def test_the_version_found_but_left_off_is_said(qtbot, tmp_path, monkeypatch):
    hashing = _Hashing(monkeypatch, hold=True)
    state = _two_versions(tmp_path, "other")
    other, old, new = state.entries
    said: list = []
    refs_restored(qtbot, state, [{"name": "ink", "strength": 0.6, "hash": _a1111_hash(new.path)}],
                  lambda *a: said.append(a))  # fmt: skip
    hashing.held()
    state.set_strength(other, 0.3)  # the user touches the panel while the files are read
    hashing.release()
    assert old.enabled and not new.enabled  # no late switch: the user's panel stays as they left it
    assert len(said) == 1 and said[0][0] == [] and len(said[0][1]) == 1, said
    notice = said[0][1][0]
    assert str(new.path) in notice and "has the hash the image used for the LoRA 'ink'" in notice
    assert f"{old.path} is on instead" in notice and "new images may differ" in notice


def test_nothing_is_said_when_the_user_switched_the_lora_off(qtbot, tmp_path, monkeypatch):
    hashing = _Hashing(monkeypatch, hold=True)
    state = _two_versions(tmp_path)
    old, new = state.entries
    said: list = []
    refs_restored(qtbot, state, [{"name": "ink", "strength": 0.6, "hash": _a1111_hash(new.path)}],
                  lambda *a: said.append(a))  # fmt: skip
    hashing.held()
    state.set_enabled(old, False)  # the user's choice: no ink at all
    hashing.release()
    assert not old.enabled and not new.enabled
    assert said == [([], [])]
