"""Text that is no valid Unicode in an image's settings: a lone surrogate (JSON's "\\ud83d", half an emoji, as
JavaScript front ends write it; a byte of a Latin-1 file name, as Python holds it). The database takes UTF-8 text
only: the store makes each lone surrogate U+FFFD where text enters it (its rows and its history, and so their search
keys) and in the settings it reads back (an earlier version's rows, whose keys an upgrade computes)."""

from __future__ import annotations

import sqlite3

import pytest

from app.store import SCHEMA_VERSION, Store
from app.valid_text import storable
from tests.app.test_store import _old_database


def test_the_store_keeps_text_holding_half_an_emoji_as_valid_text(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    record = store.add_image("a.png", {"prompt": "a cat \ud83d", "negative_prompt": "\udc00blur", "model": "m\udce9",
                                       "seed": 7})  # was: UnicodeEncodeError, the image not in the gallery
    assert record.prompt == "a cat \ufffd"
    assert record.settings == {"prompt": "a cat \ufffd", "negative_prompt": "\ufffdblur", "model": "m\ufffd", "seed": 7}
    assert store.images("cat m\ufffd 7") == [record]
    entry = store.record_prompt("a dog \ud83d", "\udc80")  # was: UnicodeEncodeError
    assert (entry.prompt, entry.negative_prompt) == ("a dog \ufffd", "\ufffd")
    assert [p.prompt for p in store.prompts("dog")] == ["a dog \ufffd"]


@pytest.mark.parametrize("version", [3, 8])
def test_an_older_database_whose_settings_hold_half_an_emoji_is_upgraded_and_nothing_lost(tmp_path, version):
    """An earlier version stored such settings (their JSON escapes it) and keyed the prompt only; the upgrade that
    puts the model's name in the key failed on it, and the app refused to start at every try."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, version, "a cat", ("a dog", ""), {"model": "flux \ud83d", "seed": 3})
    stored = sqlite3.connect(path).execute("SELECT settings FROM images").fetchone()[0]
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    [record] = store.images("cat flux")
    assert record.settings["model"] == "flux \ufffd"  # shown and reused as valid text
    assert store.images("3") == [record]
    assert store._db.execute("SELECT settings FROM images").fetchone()[0] == stored  # the row as it was stored


def test_settings_holding_whole_emoji_are_stored_and_read_without_being_walked(tmp_path, monkeypatch):
    """Stored settings are JSON with its escapes (``json.dumps``): a whole emoji is a pair of surrogate escapes
    ("\\ud83d\\ude00"), a Windows path's "\\ud83d" an escaped backslash and letters. Each such row was walked for
    lone surrogates and its settings written out twice: adding 30,000 images with an emoji took 1.45 s instead of
    1.0 s, and each row's settings read back walked again. Only a lone surrogate's escape is one to replace."""
    import app.store

    walked: list = []
    monkeypatch.setattr(app.store, "storable", lambda value: walked.append(value) or storable(value))
    store = Store(tmp_path / "db.sqlite3")
    settings = {"prompt": "a cat 😀 at C:\\users\\ud83d\\\\ud83d", "model": "m🐈", "seed": 1}
    record = store.add_image("a.png", settings)
    assert store.image(record.id).settings == settings and record.prompt == settings["prompt"]
    assert walked == []
    # a lone one after an escaped backslash, or before a whole emoji, is still replaced
    record = store.add_image("b.png", {"prompt": "C:\\\ud83d and \udc00😀"})
    assert record.prompt == "C:\\\ufffd and \ufffd😀" and store.images("c:\\\ufffd") == [record]
