"""Review R64: gallery defects proven as strict xfail tests (each fails today for the reason its mark gives)."""

from __future__ import annotations

import sqlite3

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import gallery_images, window_without_engine


def _search(qtbot, panel, text: str) -> list[str]:
    """``text`` typed (or pasted) into the gallery's search field and Return pressed: the prompts then listed."""
    panel.search.setText(text)
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    gallery = panel.controller.gallery
    return [gallery.record(row).prompt for row in range(gallery.rowCount())]


@pytest.mark.xfail(
    strict=True,
    raises=sqlite3.OperationalError,
    reason="R64: a search of ~1000 words (a long prompt pasted) raises 'Expression tree too large'",
)
def test_a_long_prompt_pasted_into_the_search_finds_its_image(qtbot, data_root):
    """A user pastes a long prompt (a tag list, 1,000 words) into the gallery's search to find the images made
    with it. Each word is now one ``instr(...) > 0`` joined by AND (``Store.images``/``_where_found``): SQLite's
    expression tree is limited to a depth of 1,000, and the query raises instead of listing the image (the one
    ``instr`` of the whole phrase before F66 found it). The history's search fails the same way at ~500 words."""
    data = resolve_data_dir(data_root)
    long_prompt = ", ".join(f"tag{i}" for i in range(1000))
    gallery_images(data, [long_prompt, "a fox"])
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    panel.controller.gallery.set_filter(long_prompt)  # what the search field's Return (connect_search) calls
    assert _search(qtbot, panel, long_prompt) == [long_prompt]


@pytest.mark.xfail(strict=True, reason="R64: a phrase in full-width or typographic quotes is not taken as a phrase")
@pytest.mark.parametrize("quoted", ["＂cat castle＂", "“cat castle”"], ids=["full-width", "typographic"])
def test_a_phrase_in_full_width_or_typographic_quotes_is_a_phrase(qtbot, data_root, quoted):
    """The search folds full width ("ＦＵＬＬ" finds "full", README) but splits its "quoted phrases" on the ASCII
    quote before folding (``store.search_terms``): a phrase typed with an IME in full-width mode (＂…＂), or pasted
    with a notes app's typographic quotes (“…”), is split into words that keep the quote marks ('"cat', 'castle"')
    and finds nothing, where the user expects the phrase to find "a cat castle"."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a cat castle", "a castle with a cat"])
    window = window_without_engine(qtbot, data)
    assert _search(qtbot, window.gallery_panel, '"cat castle"') == ["a cat castle"]  # the ASCII quotes work
    assert _search(qtbot, window.gallery_panel, quoted) == ["a cat castle"]


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="R64: the pane raises OverflowError on a PNG whose created date is at the calendar's end",
)
def test_the_pane_describes_an_image_whose_created_date_cannot_be_shown_in_local_time(qtbot, data_root):
    """``image_dates.made_at`` catches OverflowError for a naive date it places in local time, but the pane's
    ``image_summary._created`` calls ``astimezone()`` again outside any try: a PNG whose ``created`` is
    "9999-12-31T23:59:59-14:00" (a damaged or hand-edited file, another tool's) makes describing it raise, the
    pane left describing the image selected before. (The import sorts it above every image made since, too.)"""
    data = resolve_data_dir(data_root)
    Store(data.database).close()
    settings = {"prompt": "a far future", "created": "9999-12-31T23:59:59-14:00"}
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16)), settings)
    store = Store(data.database)
    store.add_image("d/0.png", settings, created=1.0)
    store.close()
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    assert "Prompt: a far future" in panel.describe(panel.controller.gallery.record(0))
