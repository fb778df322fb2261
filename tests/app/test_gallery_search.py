"""Searching the gallery and the prompt history: what a user types finds what they see, whatever its case,
script or spacing, and SQL's wildcards are plain characters."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import gallery_images, generate_one, open_window, pane_text, window_without_engine

PROMPTS = ["Äpfel im Baum", "straße bei Nacht", "multi\nline prompt", "100% sure", "a_b", "back\\slash",
           "it's \"quoted\"", "a fox 🦊 asleep", "ＦＵＬＬ width"]  # fmt: skip


def _found(store: Store, search: str) -> tuple[list[str], list[str]]:
    return [r.prompt for r in store.images(search)], [p.prompt for p in store.prompts(search)]


def test_search_folds_case_of_any_script_and_white_space(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    for i, prompt in enumerate(PROMPTS):
        store.add_image(f"{i}.png", {"prompt": prompt}, created=i)
        store.record_prompt(prompt, when=i)
    cases = {
        "äpfel": "Äpfel im Baum",  # was: nothing (SQLite's LIKE folds ASCII letters only)
        "ÄPFEL IM": "Äpfel im Baum",
        "STRASSE": "straße bei Nacht",  # full case folding: ß is ss
        "multi line": "multi\nline prompt",  # the history list shows the line break as a space
        "  sure  ": "100% sure",  # stray spaces at the ends
        "%": "100% sure",
        "_": "a_b",
        "\\": "back\\slash",
        "'s \"q": 'it\'s "quoted"',
        "🦊": "a fox 🦊 asleep",
        "full": "ＦＵＬＬ width",
    }
    for search, prompt in cases.items():
        assert _found(store, search) == ([prompt], [prompt]), search
    assert _found(store, "   ") == _found(store, "")  # only spaces: no filter
    assert len(store.images("")) == len(PROMPTS)


def test_history_keeps_one_entry_for_a_prompt_typed_with_spaces_at_its_ends(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    store.record_prompt("a cat", when=1)
    store.record_prompt("a cat \n", " blurry", when=2)
    store.record_prompt("  a cat", "blurry", when=3)
    assert [(p.prompt, p.negative_prompt, p.uses) for p in store.prompts()] == [
        ("a cat", "blurry", 2),
        ("a cat", "", 1),
    ]


def test_a_new_image_shows_under_the_search_that_finds_it_after_a_restart(qtbot, data_root):
    data = resolve_data_dir(data_root)
    Store(data.database).close()  # a gallery that has its database: new pictures in it are imported silently
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16)), {"prompt": "Ölgemälde eines Hafens"})
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    panel.search.setText("ölgemälde ")
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["Ölgemälde eines Hafens"]
    # An image made while the search is on (added to the list, not read back from the database): the same rule.
    write_png(data.images / "d" / "1.png", Image.new("RGB", (16, 16)), {"prompt": "ÖLGEMÄLDE\neines Schiffs"})
    gallery.add("d/1.png", {"prompt": "ÖLGEMÄLDE\neines Schiffs"})
    shown = [gallery.record(r).prompt for r in range(gallery.rowCount())]
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)  # what the database finds for the same search
    assert (
        shown
        == [gallery.record(r).prompt for r in range(gallery.rowCount())]
        == ["ÖLGEMÄLDE\neines Schiffs", "Ölgemälde eines Hafens"]
    )
    window.history_panel.search.setText("HAFEN")
    qtbot.keyClick(window.history_panel.search, Qt.Key.Key_Return)
    window.controller.history.add("ein Hafen bei Nacht", "")
    assert window.controller.history.rowCount() == 1


def test_a_word_typed_into_a_search_field_searches_once_typing_pauses(qtbot, data_root):
    data = resolve_data_dir(data_root)
    for i, prompt in enumerate(("a harbour at night", "a hare in the snow", "a fox")):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": prompt})
    window = open_window(qtbot, data_root)
    window.controller.history.add("a harbour at night", "")
    for field, model in ((window.gallery_panel.search, window.controller.gallery),
                         (window.history_panel.search, window.controller.history)):  # fmt: skip
        searches: list[int] = []  # the rows each search found
        model.modelReset.connect(lambda found=searches, model=model: found.append(model.rowCount()))
        qtbot.keyClicks(field, "harb")  # was: a search of the whole database per letter
        assert searches == []
        qtbot.waitUntil(lambda: searches == [1], timeout=2000)  # noqa: B023 - used in this turn only
        field.clear()  # emptied: the whole list again, at once
        assert searches[-1] == model.rowCount() > 0 and len(searches) == 2


def test_a_search_keeps_the_selected_image_it_shows_and_clears_the_pane_of_one_it_hides(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red cat", "a blue dog", "a green owl"])
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    buttons = (panel.reuse_button, panel.copy_button, panel.delete_button, panel.favorite_button,
               panel.save_button, panel.folder_button)  # fmt: skip

    def search(text: str) -> list[str]:
        panel.search.setText(text)
        qtbot.keyClick(panel.search, Qt.Key.Key_Return)
        return [gallery.record(row).prompt for row in range(gallery.rowCount())]

    # An image the search still shows stays selected, the pane describing it (it was: no image selected).
    panel.select_row(2)  # "a red cat", the oldest
    assert search("cat") == ["a red cat"]
    assert panel.selected_rows() == [0] == [panel.view.currentIndex().row()]
    assert pane_text(qtbot, panel).startswith("Prompt: a red cat")
    assert all(button.isEnabled() for button in buttons)
    assert search("") == ["a green owl", "a blue dog", "a red cat"] and panel.selected_rows() == [2]
    # One it hides: none selected, and the pane and its buttons say so. The pane said "Prompt: a green owl" and
    # Reuse settings, Copy prompt, Delete, ★ Favorite, Save as and Open folder stayed enabled, doing nothing.
    panel.select_row(0)  # "a green owl"
    assert search("cat") == ["a red cat"] and panel.selected_rows() == []
    assert "green owl" not in pane_text(qtbot, panel)
    for button in buttons:
        assert not button.isEnabled(), button.text()
    # The same with the "★ only" view switched on.
    search("")
    panel.select_row(1)
    described = pane_text(qtbot, panel)
    panel.favorites_only.setChecked(True)
    assert gallery.rowCount() == 0 and panel.selected_rows() == []
    assert pane_text(qtbot, panel) != described and not panel.reuse_button.isEnabled()


def test_with_several_images_selected_the_pane_and_its_buttons_follow_the_one_clicked_last(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red cat", "a blue dog", "a green owl"])
    window = window_without_engine(qtbot, data)
    panel, view, gallery = window.gallery_panel, window.gallery_panel.view, window.controller.gallery
    window.activateWindow()
    panel.select_row(1)  # "a blue dog"
    cat = view.visualRect(gallery.index(2)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, cat)
    assert panel.selected_rows() == [1, 2]
    # Was: the pane described "a blue dog" still, and Copy prompt copied it: the topmost selected row's.
    assert pane_text(qtbot, panel).startswith("Prompt: a red cat")
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == "a red cat"
    # Shift+Right from the owl: the selection runs on to the dog, which is described (was: the owl).
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(gallery.index(0)).center())
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert panel.selected_rows() == [0, 1]
    assert pane_text(qtbot, panel).startswith("Prompt: a blue dog")


def test_a_search_finds_its_words_in_any_order_and_a_quoted_phrase_as_typed(qtbot, data_root):
    """A search was one phrase: "cat castle" found "a cat castle" but not "a castle with a cat", as a gallery's search
    box is expected to. Each word is now found anywhere, in any order; "quotes" keep a phrase. The same rule in the
    database's search, in the rows added while a search is on, and in the history (all the words in the prompt, or
    all in the negative prompt: never some in each)."""
    data = resolve_data_dir(data_root)
    prompts = ("a castle with a cat", "a cat castle", "a dog castle", "cat")
    for i, prompt in enumerate(prompts):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": prompt})
    window = open_window(qtbot, data_root)
    gallery, history = window.controller.gallery, window.controller.history
    for prompt in prompts:
        history.add(prompt, "")
    history.add("a castle", "a cat")  # one word in the prompt, the other in the negative prompt: not found
    history.add("portrait", "a cat in a castle")  # both in the negative prompt: found

    def shown(model, field, search: str) -> set[str]:
        field.setText(search)
        qtbot.keyClick(field, Qt.Key.Key_Return)
        return {model.record(r).prompt for r in range(model.rowCount())}

    search = window.gallery_panel.search
    assert shown(gallery, search, "castle CAT") == {"a castle with a cat", "a cat castle"}
    assert shown(gallery, search, '"cat castle"') == {"a cat castle"}
    assert shown(gallery, search, '"castle with" cat') == {"a castle with a cat"}
    shown(gallery, search, "cat castle")
    gallery.add("d/9.png", {"prompt": "castle of the cat king"})  # made while the search is on: the same rule
    gallery.add("d/8.png", {"prompt": "a cat"})
    assert {gallery.record(r).prompt for r in range(gallery.rowCount())} == {
        "a castle with a cat", "a cat castle", "castle of the cat king"}  # fmt: skip
    field = window.history_panel.search
    assert shown(history, field, "cat castle") == {"a castle with a cat", "a cat castle", "portrait"}
    assert shown(history, field, '"a cat castle"') == {"a cat castle"}


def _search(qtbot, panel, text: str) -> list[str]:
    """``text`` typed (or pasted) into the gallery's search field and Return pressed: the prompts then listed."""
    panel.search.setText(text)
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    gallery = panel.controller.gallery
    return [gallery.record(row).prompt for row in range(gallery.rowCount())]


def _finds(qtbot, panel, cases: dict[str, set[str]]) -> None:
    """Each search of ``cases`` typed into the gallery's search lists the prompts it names."""
    for search, expected in cases.items():
        assert set(_search(qtbot, panel, search)) == expected, search


def test_a_long_prompt_pasted_into_the_search_finds_its_image(qtbot, data_root):
    """A user pastes a long prompt (a tag list, 1,000 words) into the gallery's search to find the images made
    with it. Each word was one ``instr(...) > 0`` in a chain of ANDs (``Store.images``/``_where_found``): SQLite
    refuses an expression deeper than 1,000, and the query raised instead of listing the image; the history's
    search (its terms asked twice) failed from ~500 words (R64)."""
    data = resolve_data_dir(data_root)
    long_prompt = ", ".join(f"tag{i}" for i in range(1000))
    gallery_images(data, [long_prompt, "a fox"])
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    assert _search(qtbot, panel, f"{long_prompt} {long_prompt}") == [long_prompt]  # pasted twice: one term each
    history = panel.controller.history
    history.add(long_prompt, "")
    history.add("a fox", "")
    window.history_panel.search.setText(long_prompt)  # its terms asked of the prompt and of the negative prompt
    qtbot.keyClick(window.history_panel.search, Qt.Key.Key_Return)
    assert [history.record(row).prompt for row in range(history.rowCount())] == [long_prompt]


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


def test_a_search_typed_without_accents_finds_the_accented_prompt_and_no_other_scripts_letter(qtbot, data_root):
    """A user types "cafe" on a keyboard without accents: the image of "un café à Paris" was not found ("Über",
    "señor", Greek "καφές" alike). Latin and Greek marks are folded, as is Russian "ё" (commonly written "е"); a
    letter of its own is kept apart: Cyrillic "й" is no "и", Japanese "が" no "か", a Devanagari vowel sign no
    bare consonant. Typed with its accent, a word still finds its image."""
    data = resolve_data_dir(data_root)
    prompts = ["un café à Paris", "Über den Wolken", "el señor del castillo", "ένας καφές", "ёлка в снегу",
               "мой дом", "мои книги", "ねこが", "ねこか", "कि", "क", "phở bò", "a cafe sign"]  # fmt: skip
    gallery_images(data, prompts)
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    cases = {
        "cafe": {"un café à Paris", "a cafe sign"},  # was: only "a cafe sign"
        "CAFÉ": {"un café à Paris", "a cafe sign"},
        "uber": {"Über den Wolken"},
        "senor": {"el señor del castillo"},
        "καφες": {"ένας καφές"},
        "елка": {"ёлка в снегу"},
        "pho bo": {"phở bò"},
        "мои": {"мои книги"},
        "мой": {"мой дом"},
        "ねこが": {"ねこが"},
        "ねこか": {"ねこか"},
        "कि": {"कि"},
        "a paris": {"un café à Paris"},
    }
    _finds(qtbot, panel, cases)
    # The history's search by the same rule, and an image made while a search is on.
    history = panel.controller.history
    history.add("un café noir", "")
    history.add("un thé", "")
    window.history_panel.search.setText("cafe")
    qtbot.keyClick(window.history_panel.search, Qt.Key.Key_Return)
    assert [history.record(row).prompt for row in range(history.rowCount())] == ["un café noir"]
    _search(qtbot, panel, "creme brulee")
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), {"prompt": "Crème Brûlée"})
    panel.controller.gallery.add("d/new.png", {"prompt": "Crème Brûlée"})
    assert _search(qtbot, panel, "creme brulee") == ["Crème Brûlée"]


def test_letters_without_an_accent_to_fold_are_found_by_the_letters_typed_for_them(qtbot, data_root):
    """A user types "smorrebrod" or "lodz" on a keyboard without "ø" or "ł": nothing was found, those letters
    having no Unicode decomposition for the accent folding to take apart. A small table spells them with the
    letters typed for them (ø o, ł l, đ and ð d, æ ae, œ oe, þ th, dotless ı i; ß is ss by case folding), in the
    gallery, in an image made while the search is on, and in the history; typed as they are, they still find."""
    data = resolve_data_dir(data_root)
    prompts = ["smørrebrød på bordet", "Łódź at night", "Đorđe and Guðrún", "Þingvellir", "Ærø harbour",
               "Œuvre complète", "Straße", "KIRMIZI ışık", "a cafe sign"]  # fmt: skip
    gallery_images(data, prompts)
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    _finds(qtbot, panel, {"smorrebrod": {"smørrebrød på bordet"}, "SMØRREBRØD": {"smørrebrød på bordet"},
                          "lodz": {"Łódź at night"}, "dorde gudrun": {"Đorđe and Guðrún"},
                          "thingvellir": {"Þingvellir"}, "aero": {"Ærø harbour"}, "oeuvre": {"Œuvre complète"},
                          "strasse": {"Straße"}, "isik": {"KIRMIZI ışık"}, "cafe": {"a cafe sign"}})  # fmt: skip
    history, field = panel.controller.history, window.history_panel.search
    for prompt, negative_prompt in (("a plate of smørrebrød", ""), ("a plate of cheese", "blurry, Łódź"),
                                    ("a plate", "")):  # fmt: skip
        history.add(prompt, negative_prompt)
    assert _shown(qtbot, field, history, "smorrebrod") == {"a plate of smørrebrød"}
    assert _shown(qtbot, field, history, "lodz") == {"a plate of cheese"}
    _search(qtbot, panel, "aeroskobing")
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), {"prompt": "Ærøskøbing"})
    gallery = panel.controller.gallery
    gallery.add("d/new.png", {"prompt": "Ærøskøbing"})  # listed at once, as the database then finds it
    listed = [gallery.record(row).prompt for row in range(gallery.rowCount())]
    assert listed == ["Ærøskøbing"] == _search(qtbot, panel, "aeroskobing")


def _shown(qtbot, field, model, text: str) -> set[str]:
    """``text`` typed into the search ``field`` and Return pressed: the prompts ``model`` then lists."""
    field.setText(text)
    qtbot.keyClick(field, Qt.Key.Key_Return)
    return {model.record(row).prompt for row in range(model.rowCount())}


def test_a_seed_or_a_model_name_typed_into_the_gallery_search_finds_its_images(qtbot, data_root):
    """A user types the seed of a picture they liked (the pane shows it), or the name of the model they made it
    with, into the gallery's search: only a prompt holding those characters was found. A whole number now finds the
    images of that seed exactly (1234567 is no 12345678), and still the prompts that hold it; a model's name, or part
    of it, finds its images as a word of the prompt would. The same rule for an image made while a search is on and
    for what an Undo says the search hides. The history, whose prompts hold neither, finds a number in their text."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    made = [("a red fox", 1234567, "flux-dev-svdq"), ("a blue owl", 12345678, "demo"),
            ("seed 1234567 in words", 99, "demo"), ("a cat", 7, "Ærø Schnell")]  # fmt: skip
    for i, (prompt, seed, model) in enumerate(made):
        settings = {"prompt": prompt, "seed": seed, "model": model}
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), settings)
        store.add_image(f"d/{i}.png", settings, created=float(i))
    store.close()
    window = open_window(qtbot, data_root)
    panel, gallery, history = window.gallery_panel, window.controller.gallery, window.controller.history
    cases = {
        "1234567": {"a red fox", "seed 1234567 in words"},  # was: the prompt that holds it only
        '"1234567"': {"a red fox", "seed 1234567 in words"},
        "１２３４５６７８": {"a blue owl"},  # full-width digits, as an input method types them
        "123456": {"seed 1234567 in words"},  # part of a seed finds no seed; the prompt's text still
        "demo": {"a blue owl", "seed 1234567 in words"},  # was: nothing
        "DEV": {"a red fox"},
        "owl demo": {"a blue owl"},
        "fox demo": set(),
        "aero schnell 7": {"a cat"},
        '"svdq a red"': set(),  # a phrase never runs from the prompt on into the model's name
    }
    _finds(qtbot, panel, cases)
    # made while a search for the model's name is on: listed at once, as the database then finds it
    _shown(qtbot, panel.search, gallery, "demo")
    saved = generate_one(qtbot, window.controller)
    assert saved.settings["model"] == "demo"
    listed = {gallery.record(row).prompt for row in range(gallery.rowCount())}
    assert listed == _shown(qtbot, panel.search, gallery, "dem") == {"a blue owl", "seed 1234567 in words",
                                                                       "a red circle"}
    assert _shown(qtbot, panel.search, gallery, str(saved.settings["seed"])) >= {"a red circle"}
    # An Undo under the search of a seed: the image back is in sight, and said so (was: "hidden by the search")
    said: list[str] = []
    window.controller.status_message.connect(said.append)
    assert _shown(qtbot, panel.search, gallery, "12345678") == {"a blue owl"}
    panel.select_row(0)
    panel.delete_selected()
    said.clear()
    panel.undo_button.click()
    assert said == ["1 image brought back from the trash."]
    assert {gallery.record(row).prompt for row in range(gallery.rowCount())} == {"a blue owl"}
    history.add("a fox, seed 1234567", "")
    history.add("a fox", "")
    assert _shown(qtbot, window.history_panel.search, history, "1234567") == {"a fox, seed 1234567"}
    assert _shown(qtbot, window.history_panel.search, history, "demo") == set()


def test_a_number_typed_with_leading_zeros_finds_no_seed(qtbot, data_root):
    """A user looks for the prompt "agent 007": the images of seed 7 were listed too (and "00" listed those of seed
    0), the term read as the number it spells, while a seed is never written with a leading zero (the pane shows
    "Seed: 7"). A number with leading zeros is now text only, in the gallery's search and in an image made while it
    is on; "0" itself still finds seed 0."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    made = [("agent 007 in a tuxedo", 123), ("a red fox", 7), ("a blue owl", 0), ("a cat", 100)]
    for i, (prompt, seed) in enumerate(made):
        settings = {"prompt": prompt, "seed": seed, "model": "demo"}
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), settings)
        store.add_image(f"d/{i}.png", settings, created=float(i))
    store.close()
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    _finds(qtbot, panel, {"007": {"agent 007 in a tuxedo"},  # was: "a red fox" too (seed 7)
                          "00": {"agent 007 in a tuxedo"},  # was: "a blue owl" too (seed 0)
                          "７": {"a red fox", "agent 007 in a tuxedo"}, "0": {"a blue owl", "agent 007 in a tuxedo"},
                          "100": {"a cat"}})  # fmt: skip
    _search(qtbot, panel, "007")
    settings = {"prompt": "a grey wolf", "seed": 7, "model": "demo"}
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), settings)
    panel.controller.gallery.add("d/new.png", settings)  # made while the search is on: the same rule
    gallery = panel.controller.gallery
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["agent 007 in a tuxedo"]


def test_a_negative_seed_or_one_stored_as_a_decimal_is_found_by_the_whole_number_typed(qtbot, data_root):
    """Pictures from other programs put in the images folder: one made with a negative seed, one whose settings
    give its seed as a decimal (12345.0) or as such text. Typed as the pane shows them ("-42", "12345"), the seeds
    found nothing but prompts holding those characters. A whole number typed, a leading minus too, now finds the
    images of that seed whatever form it is stored in; "-042" and "-0", as "007", are text only. The same rule for
    an image added while the search is on."""
    data = resolve_data_dir(data_root)
    Store(data.database).close()  # a gallery that has its database: the pictures are imported at the start
    made = [("a red fox", -42), ("a blue owl", 12345.0), ("a grey cat", "12345.0"), ("a green frog", 42),
            ("agent -042", 3), ("a white hen", 0.0), ("a black bat", 12345.5)]  # fmt: skip
    for i, (prompt, seed) in enumerate(made):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": prompt, "seed": seed})
    panel = open_window(qtbot, data_root).gallery_panel
    _finds(qtbot, panel, {"-42": {"a red fox"},  # was: nothing
                          "42": {"a green frog", "agent -042"},  # no seed -42; the prompt "agent -042" holds it
                          "12345": {"a blue owl", "a grey cat"},  # was: nothing
                          "-042": {"agent -042"}, "-0": {"agent -042"}, "0": {"a white hen", "agent -042"},
                          "12345.5": set()})  # fmt: skip
    _search(qtbot, panel, "-7")
    settings = {"prompt": "a brown bear", "seed": -7.0}
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), settings)
    gallery = panel.controller.gallery
    gallery.add("d/new.png", settings)  # listed at once, as the database then finds it
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["a brown bear"] == _search(
        qtbot, panel, "-7")


def test_a_seed_past_sqlites_integers_is_found_by_the_whole_number_typed(qtbot, data_root):
    """ComfyUI's seeds go to 2**64 - 1, past SQLite's integers (2**63 - 1 at most): an image made with one (put in
    the images folder) was stored without a seed, and its seed typed as the pane shows it found nothing. It is
    found now, exactly: never by the number its 64 bits make as a signed one ("-1" is no 18446744073709551615), nor
    by another seed near it. The same rule for an image added while the search is on."""
    data = resolve_data_dir(data_root)
    Store(data.database).close()  # a gallery that has its database: the pictures are imported at the start
    made = [("a red fox", 2**64 - 1), ("a blue owl", str(2**64 - 1)), ("a grey cat", 2**63), ("a green frog", -1),
            ("a white hen", 2**63 - 1)]  # fmt: skip
    for i, (prompt, seed) in enumerate(made):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": prompt, "seed": seed})
    panel = open_window(qtbot, data_root).gallery_panel
    _finds(qtbot, panel, {str(2**64 - 1): {"a red fox", "a blue owl"},  # was: nothing
                          str(2**63): {"a grey cat"},  # was: nothing
                          "-1": {"a green frog"}, str(2**63 - 1): {"a white hen"},
                          str(2**64 - 2): set(), str(2**64): set()})  # fmt: skip
    _search(qtbot, panel, str(2**64 - 5))
    settings = {"prompt": "a brown bear", "seed": 2**64 - 5}
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), settings)
    gallery = panel.controller.gallery
    gallery.add("d/new.png", settings)  # listed at once, as the database then finds it
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["a brown bear"] == _search(
        qtbot, panel, str(2**64 - 5))
