from __future__ import annotations

import json
import sqlite3

import pytest

from app.settings import SETTINGS_VERSION, LastJob, LoraSetting, Settings, load_settings, save_settings
from app.store import SCHEMA_VERSION, Store, search_key


def test_store_images_and_search(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    assert store.schema_version == SCHEMA_VERSION
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add_image("a.png", {"prompt": "a red fox", "seed": 1}, created=1)
    store.add_image("b.png", {"prompt": "100% blue_sky", "seed": 2}, created=2)
    assert [r.path for r in store.images()] == ["b.png", "a.png"]  # newest first
    assert [r.path for r in store.images("fox")] == ["a.png"]
    assert [r.path for r in store.images("100%")] == ["b.png"]
    assert store.images("_") == store.images("blue_")  # LIKE wildcards are escaped
    rid = store.images("fox")[0].id
    store.set_favorites([rid], True)
    assert [r.path for r in store.images(favorites_only=True)] == ["a.png"]
    store.set_trashed(rid, True)
    assert [r.path for r in store.images()] == ["b.png"]
    store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    assert reopened.image(rid).settings == {"prompt": "a red fox", "seed": 1}


def test_prompt_history_dedup(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    store.record_prompt("cat", when=1)
    store.record_prompt("dog", when=2)
    store.record_prompt("cat", when=3)
    store.record_prompt("   ")
    history = store.prompts()
    assert [(p.prompt, p.uses) for p in history] == [("cat", 2), ("dog", 1)]
    assert [p.prompt for p in store.prompts("do")] == ["dog"]
    store.clear_prompts()
    assert store.prompts() == []


def test_prompts_removed_come_back_as_they_were_stored_merged_with_those_recorded_since(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    for prompt, when in (("cat", 1), ("owl", 2), ("fox", 2), ("cat", 3)):
        store.record_prompt(prompt, when=when)
    before = [(p.prompt, p.uses, p.last_used) for p in store.prompts()]
    assert before == [("cat", 2, 3), ("fox", 1, 2), ("owl", 1, 2)]
    removed = store.remove_prompts([p.id for p in store.prompts()])
    assert [(p.prompt, p.uses, p.last_used) for p in removed] == before and store.prompts() == []
    store.record_prompt("cat", when=4)  # used again before the undo
    store.restore_prompts(removed)
    # owl and fox, used at the same time, in their order
    assert [(p.prompt, p.uses, p.last_used) for p in store.prompts()] == [("cat", 3, 4), *before[1:]]


def test_store_refuses_newer_schema(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    try:
        Store(path)
    except RuntimeError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("expected RuntimeError")


def test_settings_roundtrip_and_migration(tmp_path):
    path = tmp_path / "settings.json"
    assert load_settings(path) == Settings()
    settings = Settings(window_geometry="abc", last_job=LastJob(prompt="hi", seed=7, seed_locked=True))
    save_settings(path, settings)
    assert load_settings(path) == settings
    path.write_text(json.dumps({"version": 1, "prompt": "old", "steps": 9, "bogus": 1, "seed": "x"}))
    migrated = load_settings(path)
    assert migrated.version == SETTINGS_VERSION
    assert migrated.last_job.prompt == "old" and migrated.last_job.steps == 9 and migrated.last_job.seed == 0
    path.write_text("{not json")
    assert load_settings(path) == Settings()


def test_saved_loras_of_any_shape_load_without_raising(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 2, "loras": [1, {"path": 5}, {"enabled": True},
                                                        {"path": "/x.safetensors", "strength": "abc"}]}))
    assert load_settings(path).loras == [LoraSetting("/x.safetensors")]


def test_reconcile_imports_only_real_pngs(tmp_path):
    from PIL import Image

    from app.data_dir import DataDir
    from app.reconcile import reconcile

    data = DataDir(tmp_path).create()
    day = data.images / "2026-11-21"
    day.mkdir()
    Image.new("RGB", (8, 8)).save(day / "real.png")
    (day / "empty.png").write_bytes(b"")
    (day / "noise.png").write_bytes(b"not a png at all")
    (day / "folder.png").mkdir()
    store = Store(data.database)
    report = reconcile(store, data)
    assert report.imported == 1 and [r.path for r in store.images()] == ["2026-11-21/real.png"]
    assert (day / "empty.png").exists() and (day / "noise.png").exists()  # left alone, not deleted


def test_reconcile_skips_a_killed_writes_temp_folder(tmp_path, monkeypatch):
    """A kill between writing an image and renaming it into place leaves atomic_path's private folder
    (``.<name>.<random>.tmp/new.png``) in the images folder. Its PNG is complete, but it is no gallery image:
    it was imported as ``…/.<name>.<random>.tmp/new.png``, a row pointing into a hidden scratch folder."""
    from PIL import Image

    import gpu.atomic
    from app.data_dir import DataDir
    from app.reconcile import reconcile
    from gpu.generation.png_metadata import write_png

    class Killed(BaseException):
        pass

    def killed(*_args: object) -> None:
        raise Killed

    data = DataDir(tmp_path).create()
    day = data.images / "2026-11-21"
    write_png(day / "kept.png", Image.new("RGB", (8, 8)), {"prompt": "kept"})
    with monkeypatch.context() as m:  # as after kill -9: no rename, and no finally removing the folder
        m.setattr(gpu.atomic.os, "replace", killed)
        m.setattr(gpu.atomic.shutil, "rmtree", lambda *_a, **_k: None)
        try:
            write_png(day / "killed.png", Image.new("RGB", (8, 8)), {"prompt": "killed"})
        except Killed:
            pass
    assert [p.name for p in day.rglob("*.png")].count("new.png") == 1  # the scratch PNG is there, complete
    store = Store(data.database)
    report = reconcile(store, data)
    assert [r.path for r in store.images()] == ["2026-11-21/kept.png"] and report.imported == 1


def test_deletions_stay_apart_in_the_trash_even_on_a_clock_that_has_not_moved(tmp_path, monkeypatch):
    """Undo brings back one delete action whole, told apart by its shared ``trashed_at``: two actions in the
    same clock tick (Windows' clock moves in steps of about 16 ms) or after the clock was set back must not
    merge into one."""
    import time

    store = Store(tmp_path / "db.sqlite3")
    ids = [store.add_image(f"{i}.png", {"prompt": str(i)}, created=i).id for i in range(5)]
    monkeypatch.setattr(time, "time", lambda: 1000.0)
    for group in ([ids[3]], [ids[0], ids[4]]):  # same tick
        when = store.next_trash_time()
        for image_id in group:
            store.set_trashed(image_id, True, when=when)
    monkeypatch.setattr(time, "time", lambda: 900.0)  # set back
    when = store.next_trash_time()
    store.set_trashed(ids[1], True, when=when)
    store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    assert [[r.path for r in batch] for batch in reopened.trash_batches()] == [["3.png"], ["0.png", "4.png"],
                                                                              ["1.png"]]


def test_an_older_database_gets_stored_search_keys_and_searches_stay_fast(tmp_path):
    import random

    from app.store import _MIGRATIONS

    path = tmp_path / "db.sqlite3"
    db = sqlite3.connect(path)  # a database of schema 2, before the keys were stored
    for statement in (s for migration in _MIGRATIONS[:2] for s in migration):
        db.execute(statement)
    words = "a lighthouse on the rocky coast at dusk with waves crashing under stormy sky".split()
    rng = random.Random(0)
    prompts = [" ".join(rng.choices(words, k=60)) + f" shot{i}" for i in range(10000)]  # 60-word prompts
    db.executemany("INSERT INTO images (path, prompt, created) VALUES (?, ?, ?)",
                   [(f"{i}.png", prompt, i) for i, prompt in enumerate(prompts)])  # fmt: skip
    db.executemany("INSERT INTO prompts (prompt, negative_prompt, last_used) VALUES (?, ?, ?)",
                   [(prompt, f"Blurry\nno. {i}!", i) for i, prompt in enumerate(prompts)])  # fmt: skip
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images("SHOT9999")] == ["9999.png"]
    assert [p.negative_prompt for p in store.prompts('"blurry no. 42!"')] == ["Blurry\nno. 42!"]
    assert store.prompts("shot42 blurry") == []  # never across the prompt and the negative prompt
    store.add_image("new.png", {"prompt": "Ölgemälde"})
    store.record_prompt("x", "ÖLGEMÄLDE")
    assert [len(store.images("ölgemälde")), len(store.prompts("ölgemälde"))] == [1, 1]
    # Was: about 0.4 s, the key computed for every row of every query. Counted, not timed (a loaded CI machine
    # took 0.25 s against a 0.2 s bound): the queries compare the stored keys, computing none per row.
    calls: list[str] = []
    store._db.create_function("search_key", 1, lambda text: calls.append(text) or search_key(text))
    store._db.create_function("prompt_key", 2, lambda p, n: calls.append(p) or f"{search_key(p)}\n{search_key(n)}")
    for search in ("shot1234", "lighthouse shot77", "nothing like it", "shot9"):
        store.images(search)
        store.prompts(search)
    assert len(calls) <= 8, len(calls)  # at most the search text itself, once per query


def test_two_records_of_a_row_are_equal_whether_or_not_their_settings_were_read(tmp_path):
    """Reading ``settings`` replaced the stored text by its parsed dict, and ``==`` compared the two: a record
    whose settings the metadata pane had shown no longer equalled the same row read again."""
    store = Store(tmp_path / "db.sqlite3")
    record = store.add_image("a.png", {"prompt": "a red fox", "seed": 1}, created=1)
    assert record.settings == {"prompt": "a red fox", "seed": 1}
    again = store.image(record.id)
    assert again == record and record == again
    assert store.images() == [record] and again.settings == record.settings and again == record
    store.set_favorites([record.id], True)
    assert store.image(record.id) != record  # what the row holds still counts
    store.close()


def _old_key(text: str) -> str:
    """A search key as schema 6 computed it: case folded, accents kept."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _old_seed(settings: str) -> int | None:
    """A row's seed as schemas 9 and 10 stored it: a whole number that is no decimal, not negative (and as schema 11
    did for such a seed: it stored no seed past SQLite's integers either)."""
    seed = json.loads(settings).get("seed")
    return seed if type(seed) is int and 0 <= seed < 2**63 else None


def _old_database(path, version: int, image: str, prompt: tuple[str, str], settings: dict | None = None) -> None:
    """A database of schema ``version`` holding the image of the prompt ``image`` (and the further ``settings``) and
    the history entry ``prompt``, their stored search keys as that schema computed them: before schema 8 as schema 6
    did (``_old_key``), from it as now; from schema 9 the image's key with its model's name, and its seed as
    schemas 9 and 10 stored it (``_old_seed``; schema 11's for a whole number that is not negative)."""
    from app.store import _MIGRATIONS, _prompt_key, _stored_image_key

    db = sqlite3.connect(path)
    db.create_function("search_key", 1, _old_key if version < 8 else search_key)
    db.create_function("prompt_key", 2, (lambda p, n: f"{_old_key(p)}\n{_old_key(n)}") if version < 8 else _prompt_key)
    db.create_function("image_key", 2, _stored_image_key)
    db.create_function("image_seed", 1, _old_seed)
    for statement in (s for migration in _MIGRATIONS[:version] for s in migration):
        db.execute(statement)
    db.execute("INSERT INTO images (path, prompt, settings, search_key, created) VALUES ('a.png', ?1, ?2, "
               f"{'search_key(?1)' if version < 9 else 'image_key(?1, ?2)'}, 1)",
               (image, json.dumps({"prompt": image, **(settings or {})})))  # fmt: skip
    if version >= 9:
        db.execute("UPDATE images SET seed = image_seed(settings)")
    db.execute("INSERT INTO prompts (prompt, negative_prompt, search_key, last_used) "
               "VALUES (?1, ?2, prompt_key(?1, ?2), 1)", prompt)  # fmt: skip
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


def _schema_6_database(path) -> None:
    """A database of schema 6, its stored search keys as that version computed them (case folded, accents kept)."""
    _old_database(path, 6, "Un Café", ("el señor", "Über"))


def test_a_database_of_the_previous_schema_finds_its_images_by_words_typed_without_accents(tmp_path):
    """The keys stored before searches folded accents held "café": "cafe" found nothing in an existing gallery
    (only in images made after the update). The upgrade computes every stored key again."""
    path = tmp_path / "db.sqlite3"
    _schema_6_database(path)
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images("cafe")] == ["a.png"]
    assert [p.prompt for p in store.prompts("senor")] == ["el señor"]
    assert [p.prompt for p in store.prompts("uber")] == ["el señor"]  # the negative prompt's key too
    assert store.prompts("senor uber") == []  # still never across the prompt and the negative prompt


@pytest.mark.parametrize("version", [3, 6, 7, 8, 10, 11])
def test_an_upgrade_that_fails_leaves_the_previous_database_as_it_was(tmp_path, monkeypatch, version):
    """A failure while the keys are computed again (here: a key that cannot be computed) rolls the whole upgrade
    back: the database stays at the previous schema, which that version still opens, and the next start upgrades it."""
    import app.store

    path = tmp_path / "db.sqlite3"
    _old_database(path, version, "Un Smørrebrød Café", ("el señor", "Über"), {"seed": 42, "model": "flux-dev"})
    db = sqlite3.connect(path)
    before = list(db.iterdump())
    db.close()

    def failing(prompt: str, negative_prompt: str) -> str:
        raise ValueError("a key that cannot be computed")

    monkeypatch.setattr(app.store, "_prompt_key", failing)
    monkeypatch.setattr(app.store, "_stored_image_key", lambda prompt, settings: failing(prompt, settings))
    monkeypatch.setattr(app.store, "_stored_seed", lambda settings: failing(settings, ""))
    with pytest.raises(sqlite3.Error):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == version
    assert list(db.iterdump()) == before  # its tables, rows and stored keys as they were
    db.close()
    monkeypatch.undo()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images("cafe smorrebrod 42 flux")] == ["a.png"]


@pytest.mark.parametrize("version", [3, 6, 7, 8, 10, 11])
def test_an_upgrade_of_several_steps_computes_each_stored_key_once(tmp_path, monkeypatch, version):
    """Schemas 3, 7, 8 and 9 each computed every stored search key again, and 11 every seed: an upgrade from
    schema 7 or older computed the images' keys two or three times (about 1.4 s more at 30,000 rows). Each row's
    key and seed are now computed once, after the steps' other statements: each text folded once, none for an
    upgrade that changes only the seeds; what the upgraded database finds is the same."""
    import app.store

    path = tmp_path / "db.sqlite3"
    _old_database(path, version, "Un Smørrebrød", ("el señor", "Über"), {"seed": 42.0, "model": "Flux-Dev"})
    folded: list[str] = []
    seeds: list[str] = []
    real_key, real_seed = app.store.search_key, app.store._stored_seed
    monkeypatch.setattr(app.store, "search_key", lambda text: folded.append(text) or real_key(text))
    monkeypatch.setattr(app.store, "_stored_seed", lambda settings: seeds.append(settings) or real_seed(settings))
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    images, prompts = ["Flux-Dev", "Un Smørrebrød"], ["el señor", "Über"]  # the texts of each table's keys
    assert sorted(folded) == sorted({3: images + prompts, 6: images + prompts, 7: images + prompts, 8: images}.get(
        version, []))  # fmt: skip
    assert len(seeds) == 1
    monkeypatch.undo()
    assert [r.path for r in store.images("smorrebrod flux 42")] == ["a.png"]
    assert [p.prompt for p in store.prompts("senor")] == ["el señor"]
    store.close()


def test_a_database_of_schema_7_finds_its_images_by_the_letters_typed_for_those_without_an_accent(tmp_path):
    """The keys stored before searches spelled "ø" as "o" (and "ł", "æ", ...) held them as they are: "smorrebrod"
    found only the images made after the update. The upgrade computes every stored key again."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, 7, "Smørrebrød", ("Œuvre", "Ærø"))
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images("smorrebrod")] == ["a.png"]
    assert [p.prompt for p in store.prompts("oeuvre")] == ["Œuvre"]
    assert [p.prompt for p in store.prompts("aero")] == ["Œuvre"]  # the negative prompt's key too
    store.close()


def test_a_database_of_schema_8_finds_its_images_by_seed_and_model_name(tmp_path):
    """The rows stored before the search looked at seeds and models' names had neither: typed, the seed or the
    model's name of an image in an existing gallery found nothing. The upgrade stores every row's seed and puts its
    model's name in its key."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, 8, "a red fox", ("a red fox", ""), {"seed": 1234567, "model": "Flux-Dev SVDQ"})
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    for search in ("1234567", "flux", "svdq fox", "dev 1234567"):
        assert [r.path for r in store.images(search)] == ["a.png"], search
    for search in ("123456", "12345678", "fox 7"):  # a seed found whole, never as part of its digits
        assert store.images(search) == [], search
    store.close()


def test_a_seed_is_stored_as_the_settings_give_it_when_a_search_can_find_it(tmp_path):
    """An image's seed, as our settings give it (a number) or another program's (its digits as text, a decimal, a
    negative number), is found by the whole number typed; a seed no whole number typed is (none, a fraction, not a
    number, past SQLite's integers) is no seed, and a long run of digits typed is no seed either (``int`` refuses
    more than 4,300 digits). Negative ones and decimals were no seed: "-5" and "12345" found nothing."""
    store = Store(tmp_path / "db.sqlite3")
    seeds = {"int": 5, "text": " 5 ", "negative": -5, "negative text": "-5", "decimal": 5.0, "decimal text": "5.00",
             "none": None, "bool": True, "float": 5.5, "fraction text": "5.5", "inf": float("inf"), "huge": 2**70,
             "huge decimal": 1e30, "largest": 2**63 - 1, "smallest": -(2**63), "long text": "9" * 5000}  # fmt: skip
    for name, seed in seeds.items():
        store.add_image(f"{name}.png", {"prompt": name, "seed": seed}, created=1)
    assert sorted(r.prompt for r in store.images("5")) == ["decimal", "decimal text", "int", "text"]
    assert sorted(r.prompt for r in store.images("-5")) == ["negative", "negative text"]
    assert [r.prompt for r in store.images(str(2**63 - 1))] == ["largest"]
    assert [r.prompt for r in store.images(str(-(2**63)))] == ["smallest"]
    assert [r.prompt for r in store.images("1")] == []  # True is no seed 1
    assert store.images("9" * 5000) == store.images("-" + "9" * 5000) == []
    store.close()


def test_a_database_of_schema_10_finds_negative_seeds_and_those_stored_as_decimals(tmp_path):
    """The rows stored before a negative seed or a decimal one (another program's 12345.0) was a seed had none: the
    upgrade stores every row's seed again."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, 10, "a red fox", ("a red fox", ""), {"seed": 12345.0, "model": "flux"})
    db = sqlite3.connect(path)
    db.execute("INSERT INTO images (path, prompt, settings, created) VALUES ('b.png', 'an owl', ?, 2)",
               (json.dumps({"prompt": "an owl", "seed": -42}),))  # fmt: skip
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images("12345")] == ["a.png"]
    assert [r.path for r in store.images("-42")] == ["b.png"]
    store.close()


def test_a_database_of_schema_11_finds_the_seeds_past_sqlites_integers(tmp_path):
    """Schema 11 stored no seed for one past SQLite's integers (ComfyUI's go to 2**64 - 1): the upgrade stores every
    row's seed again, and the number typed finds it, exactly (never "-1", the same 64 bits read as a signed
    number). Rows whose settings are damaged JSON or JSON null have none, and do not stop the upgrade."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, 11, "a red fox", ("a red fox", ""), {"seed": 2**64 - 1, "model": "flux"})
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO images (path, prompt, settings, created) VALUES (?, ?, ?, 2)",
                   [("b.png", "an owl", json.dumps({"seed": -1})), ("c.png", "a hen", '{"seed": 5'),
                    ("d.png", "a bat", "null")])  # fmt: skip
    db.commit()
    assert db.execute("SELECT seed FROM images WHERE path = 'a.png'").fetchone() == (None,)  # as schema 11 stored it
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [r.path for r in store.images(str(2**64 - 1))] == ["a.png"]
    assert [r.path for r in store.images("-1")] == ["b.png"]
    assert store.images("5") == store.images(str(2**64 - 2)) == []
    store.close()
