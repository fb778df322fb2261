"""SQLite store for gallery entries and prompt history (WAL, schema version in ``PRAGMA user_version``).

Only the GUI thread uses the connection. A PNG is always on disk before its row is committed (the worker
writes the file, the GUI thread inserts the row), so a crash can leave a file without a row but never a row
pointing at a half-written file; ``app.reconcile`` repairs the first case at start-up.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from app.valid_text import storable

log = logging.getLogger(__name__)

# Each entry upgrades the schema from version i to i + 1. Never edit a shipped entry: append a new one.
_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,          -- relative to the images folder
            prompt TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}', -- JSON: the generation settings
            created REAL NOT NULL,
            favorite INTEGER NOT NULL DEFAULT 0,
            missing INTEGER NOT NULL DEFAULT 0,
            trashed INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX images_created ON images (created DESC, id DESC)",
        """CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            prompt TEXT NOT NULL,
            negative_prompt TEXT NOT NULL DEFAULT '',
            uses INTEGER NOT NULL DEFAULT 1,
            last_used REAL NOT NULL,
            UNIQUE (prompt, negative_prompt)
        )""",
    ],
    # When an image went to the trash: undo brings back the latest first, also after a restart.
    ["ALTER TABLE images ADD COLUMN trashed_at REAL"],
    # What searches compare (``search_key``), stored: computed per row on every query, a search of 10,000 long
    # prompts took 40-100 ms a keystroke. A prompt's key joins its prompt's and negative prompt's with a line
    # break, which no key holds (white space is one space in them), so a search never matches across the two.
    [
        "ALTER TABLE images ADD COLUMN search_key TEXT NOT NULL DEFAULT ''",
        "UPDATE images SET search_key = search_key(prompt)",
        "ALTER TABLE prompts ADD COLUMN search_key TEXT NOT NULL DEFAULT ''",
        "UPDATE prompts SET search_key = prompt_key(prompt, negative_prompt)",
    ],
    # The file's size and SHA-256 (NULL: not known), by which start-up tells a picture the user renamed or moved
    # inside the images folder: the missing entry takes the file over (favorite and id kept) instead of a second,
    # starless entry (``app.reconcile``).
    [
        "ALTER TABLE images ADD COLUMN file_size INTEGER",
        "ALTER TABLE images ADD COLUMN file_sha256 TEXT",
    ],
    # A re-import of the images folder after a lost database (``app.store_recovery``), while it is not finished:
    # the stars and the history read back from the lost one were held in memory only, and a quit or a crash during
    # the import (which runs while the window is in use) lost them for the images not imported yet, for good.
    # ``recovery`` holds one row while it runs (also with nothing read back: the pictures' prompts still go to the
    # history); ``recovered_prompts`` the (prompt, negative prompt) of the history read back: an image of one of
    # those adds no entry. All three are emptied once the import has ended (``end_recovery``).
    [
        "CREATE TABLE recovery (id INTEGER PRIMARY KEY CHECK (id = 1))",
        "CREATE TABLE recovered_favorites (path TEXT PRIMARY KEY)",
        "CREATE TABLE recovered_prompts (prompt TEXT NOT NULL, negative_prompt TEXT NOT NULL, "
        "PRIMARY KEY (prompt, negative_prompt))",
    ],
    # The history cleared during such a re-import: the images imported after it give no prompt back (each gave
    # its own, and a history the user had just cleared filled up again as the import went on). An entry removed
    # then goes into ``recovered_prompts`` instead (``remove_prompts``).
    ["ALTER TABLE recovery ADD COLUMN history_cleared INTEGER NOT NULL DEFAULT 0"],
    # Searches fold accents (``search_key``): every stored key computed again, or "cafe" found the images made
    # after the update only. In the upgrade's one commit: a failure leaves the database as it was, at this schema.
    [
        "UPDATE images SET search_key = search_key(prompt)",
        "UPDATE prompts SET search_key = prompt_key(prompt, negative_prompt)",
    ],
    # Searches spell the Latin letters that have no accent to fold as they are typed without them
    # (``_SPELLED_OUT``: "smorrebrod" finds "smørrebrød"): every stored key computed again, as for schema 7.
    [
        "UPDATE images SET search_key = search_key(prompt)",
        "UPDATE prompts SET search_key = prompt_key(prompt, negative_prompt)",
    ],
    # The gallery's search finds an image by its seed and its model's name too (``image_key``, ``seed_of``): the
    # seed stored apart (a whole-number term finds it exactly, never as part of another seed's digits), the model's
    # name in the key after the prompt's. Computed for every row in the upgrade's one commit, as for schema 7.
    [
        "ALTER TABLE images ADD COLUMN seed INTEGER",  # NULL: none a search can find
        "UPDATE images SET search_key = image_key(prompt, settings), seed = image_seed(settings)",
    ],
    # The import takes the date a picture's settings give (``created``, ``app.image_dates.import_date``); before,
    # it took its file's time, and a gallery copied without its file times stayed listed in the order it was copied.
    # ``import_dates`` holds one row until the rows dated so are dated again, once, after the window shows
    # (``dates_to_check``, ``app.import_dates``); a new database (no rows yet) has none to date.
    [
        "CREATE TABLE import_dates (id INTEGER PRIMARY KEY CHECK (id = 1))",
        "INSERT INTO import_dates (id) SELECT 1 WHERE EXISTS (SELECT 1 FROM images)",
    ],
    # A negative seed, and one the settings give as a decimal or as its text ("12345.0", from another program's
    # metadata), is a seed a search finds (``seed_of``): every row's stored again, in the upgrade's one commit.
    ["UPDATE images SET seed = image_seed(settings)"],
    # A seed past SQLite's integers (ComfyUI's go to 2**64 - 1) is a seed a search finds too (``_as_stored``: its
    # digits stored as a BLOB): every row's stored again, as for schema 11.
    ["UPDATE images SET seed = image_seed(settings)"],
]
SCHEMA_VERSION = len(_MIGRATIONS)

# The statements of ``_MIGRATIONS`` that compute stored search values again, and what each sets (``_STORED``). An
# upgrade runs none of them in its steps: it computes each value they set once, after all its steps' other
# statements (``_recomputed``). Every one is computed with this version's functions, which are the ones registered,
# whichever step names it, so once is what the last of them would have left; an upgrade from schema 7 computed the
# images' keys three times (about 1.4 s more at 30,000 rows). A new step that computes a stored value again writes
# one of these statements (or adds its own here).
_RECOMPUTES: dict[str, tuple[str, ...]] = {
    "UPDATE images SET search_key = search_key(prompt)": ("image key",),
    "UPDATE prompts SET search_key = prompt_key(prompt, negative_prompt)": ("prompt key",),
    "UPDATE images SET search_key = image_key(prompt, settings), seed = image_seed(settings)": ("image key", "seed"),
    "UPDATE images SET seed = image_seed(settings)": ("seed",),
}
# Each stored search value: its table, and the assignment that computes it as this version does.
_STORED: dict[str, tuple[str, str]] = {
    "image key": ("images", "search_key = image_key(prompt, settings)"),
    "seed": ("images", "seed = image_seed(settings)"),
    "prompt key": ("prompts", "search_key = prompt_key(prompt, negative_prompt)"),
}


def _recomputed(values: set[str]) -> list[str]:
    """The statements that compute the stored search ``values`` (of ``_STORED``) for every row, one per table."""
    tables = dict.fromkeys(table for table, _ in _STORED.values())
    return [f"UPDATE {table} SET {', '.join(sets)}" for table in tables
            if (sets := [assign for value, (of, assign) in _STORED.items() if of == table and value in values])]


@dataclass(slots=True)
class ImageRecord:
    """A gallery row. ``stored_settings`` is the row's settings text as stored (or a dict, for a record made
    from settings in hand), parsed on first use of ``settings`` (the metadata pane, Reuse): parsing every row's
    JSON on each reload made a search of 30,000 images take 1.3 s and held a dict per row that nothing read
    (searches compare stored keys, not settings). The parsed dict is a cache beside it, left out of ``==``:
    replacing the text by it made two records of one row unequal once one had been read."""

    id: int
    path: str
    prompt: str
    stored_settings: str | dict[str, Any]
    created: float
    favorite: bool
    missing: bool
    _parsed: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def settings(self) -> dict[str, Any]:
        """The generation settings; {} for stored text that is no JSON object."""
        if self._parsed is None:
            self._parsed = self._read_settings()
        return self._parsed

    def search_fields(self) -> tuple[str, StoredSeed | None]:
        """The search key and the seed stored for the row (``image_key``, ``seed_of``), computed again from its
        prompt and settings; the settings parsed for them are not kept (``settings`` says why)."""
        settings = self._read_settings() if self._parsed is None else self._parsed
        return image_key(self.prompt, settings), seed_of(settings)

    def _read_settings(self) -> dict[str, Any]:
        stored = self.stored_settings
        return _settings(stored) if isinstance(stored, str) else stored


@dataclass(slots=True)
class PromptRecord:
    id: int
    prompt: str
    negative_prompt: str
    uses: int
    last_used: float


@dataclass
class Recovery:
    """A re-import after a lost database, not finished (``Store.recovery``): what the images imported give back."""

    favorites: set[str]  # paths of the images starred in it (the prompts it gives back: ``prompts_to_recover``)


def history_order(record: PromptRecord) -> tuple[float, int]:
    """Where ``record`` goes in the history's order, as ``Store.prompts`` sorts: newest first, then the latest
    added."""
    return -record.last_used, -record.id


# What a lost database's salvage (``app.store_recovery.salvage``) read back: its history, its favorites' paths.
Salvaged = tuple[list[PromptRecord], set[str]]


def search_key(text: str) -> str:
    """``text`` as searches compare it: Unicode case folding ("Ä" finds "ä", "STRASSE" finds "straße", which
    SQLite's LIKE folds for ASCII only), compatibility forms unified (NFKC: a composed and a decomposed "é",
    full-width letters), accents folded (``_AccentFold``: "cafe" finds "café", "uber" "Über", "smorrebrod"
    "smørrebrød"), and any run of white space one space, none at the ends (a prompt's line break is a space in the
    history list, where the user reads what to type; a stray space typed or pasted finds nothing). The stored keys
    are computed with it: where it changes, a migration computes them again (``_MIGRATIONS``)."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().translate(_ACCENTS).split())


# The Combining Diacritical Marks block: the accents of Latin, Greek and Cyrillic letters, which a search folds.
# Other scripts' marks (Japanese dakuten, Devanagari and Thai vowel signs, Hebrew points) lie in their own blocks
# and are letters there: "が" is not "か", never folded.
_FOLDED_MARKS = range(0x0300, 0x0370)
# Letters written with one of those marks that are letters of their own, not a letter with an accent: Cyrillic
# "й" (short i; "мой" is not "мои"), Ukrainian "ї" and Belarusian "ў". Russian "ё" is folded: commonly written "е".
_LETTERS_OF_THEIR_OWN = frozenset("йїў")
# Latin letters with no decomposition to take a mark off, as they are commonly typed on a keyboard without them
# ("Łódź" is "Lodz", "Guðrún" "Gudrun", "Þingvellir" "Thingvellir"), case folded: a capital one is folded to these
# first (and "ß", "ẞ" are "ss" by case folding itself). The letters only, never a mark of another script.
_SPELLED_OUT = {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th", "ı": "i"}


class _AccentFold(dict[int, str]):
    """``str.translate``'s table that folds accents (see ``search_key``, which applies it after case folding):
    each character without its marks of ``_FOLDED_MARKS`` (by compatibility decomposition, NFKD: "ở" is "o" with
    two), a lone mark of them dropped, then spelled as ``_SPELLED_OUT`` says ("ǿ" is "ø" with an accent, so "o"),
    every other character kept. Filled as characters are first met: computed once each, the loop over the text
    stays in C (a migration folds every stored prompt)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        decomposed = unicodedata.normalize("NFKD", char)
        if char in _LETTERS_OF_THEIR_OWN or not any(ord(mark) in _FOLDED_MARKS for mark in decomposed):
            bare = char  # the composed form NFKC gave: "が" stays one character
        else:  # what is left composed again: a mark of another block on the letter stays on it
            bare = unicodedata.normalize("NFC", "".join(c for c in decomposed if ord(c) not in _FOLDED_MARKS))
        folded = "".join(_SPELLED_OUT.get(c, c) for c in bare)
        self[code] = folded
        return folded


_ACCENTS = _AccentFold()


def search_terms(text: str) -> list[str]:
    """The terms a search of ``text`` asks for, each as ``search_key`` compares it: its words, each found anywhere
    in a text and in any order ("cat castle" finds "a castle with a cat": the whole search was one phrase, which
    found nothing there), and a "quoted phrase" as one term, its words together and in that order. [] for a blank
    search, which finds everything."""
    terms: list[str] = []
    # Quotes as typed anywhere: full-width ones (an East-Asian input method's, which NFKC makes plain) and
    # typographic ones (pasted from a notes app or a web page)
    plain = unicodedata.normalize("NFKC", str(text)).translate(_QUOTES)
    for i, part in enumerate(plain.split('"')):
        key = search_key(part)
        terms += [key] if i % 2 else key.split()  # odd parts lie inside quotes (an unclosed one runs to the end)
    return list(dict.fromkeys(term for term in terms if term))  # each once: a pasted prompt repeats its words


def found(terms: list[str], key: str, seed: StoredSeed | None = None) -> bool:
    """Whether every one of a search's ``terms`` (``search_terms``) is in the search key ``key`` of a text, or is the
    number ``seed`` (``_seed_term``; an image's: ``seed_of``; None for a text that has none, a history entry's)."""
    return all(term in key or (seed is not None and _seed_term(term) == seed) for term in terms)


def image_found(terms: list[str], record: ImageRecord) -> bool:
    """Whether a search of ``terms`` finds the image ``record``, as ``Store.images`` finds its row."""
    return not terms or found(terms, *record.search_fields())


def _seed_term(term: str) -> StoredSeed | None:
    """The seed a search term finds, as the ``seed`` column holds it (``_as_stored``): a whole number in ASCII digits
    (a term is in NFKC: full-width digits typed are these), a leading minus too ("-42": another program's seeds may
    be negative), past SQLite's integers too (ComfyUI's seeds go to 2**64 - 1); else None. A number written with
    leading zeros ("007", "00", "-042", "-0") is text only: a seed is never written so (the pane says "Seed: 7"), and
    "agent 007" listed the images of seed 7 too."""
    if len(term) > _SEED_DIGITS or not _SEED_TERM.fullmatch(term) or term == "-0":
        return None  # a long run of digits is never given to ``int``: from 4,300 digits it raises
    return _as_stored(int(term))


# A seed as the ``seed`` column holds it (``_as_stored``)
StoredSeed = int | bytes


def _as_stored(seed: int) -> StoredSeed | None:
    """``seed`` as the ``seed`` column holds it and a search term's number is compared with it: an integer where
    SQLite's hold it (the engine's seeds, 0 to 2**63 - 1, among them); past them (ComfyUI's go to 2**64 - 1) its
    digits as a BLOB, which the column's INTEGER affinity keeps as it is (their text it would store as an inexact
    REAL, and Python's sqlite3 binds no such int) and ``=`` compares exactly, never equal to an integer (the same
    64 bits as a signed number: "-1" is no 18446744073709551615); None for one longer than a term can be."""
    if -(2**63) <= seed < 2**63:
        return seed
    # ``str`` is asked only of a seed as short as a term (of a huge one it may raise)
    return str(seed).encode("ascii") if -(10 ** (_SEED_DIGITS - 1)) < seed < 10**_SEED_DIGITS else None


_SEED_TERM = re.compile(r"-?(?:0|[1-9][0-9]*)")
# A seed stored as text: its digits, a leading minus, and a decimal point with only zeros after it ("12345.0")
_SEED_TEXT = re.compile(r"-?[0-9]+(?:\.0*)?")
_SEED_DIGITS = len(str(-(2**63)))  # the longest a seed is written: a term or a text past it is none


_QUOTES = str.maketrans(dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb", '"'))  # “ ” „ ‟ « »


def _where_found(terms: list[str], key: str = "search_key", seed: str | None = None) -> tuple[str, list[Any]]:
    """The SQL condition that finds the rows whose ``key`` (a column, or an expression of one) holds every one of
    ``terms``, or whose column ``seed`` (where given) is a term's number (``_seed_term``), as ``found`` finds them;
    and its parameters, in order."""
    conditions: list[str] = []
    params: list[Any] = []
    for term in terms:
        number = None if seed is None else _seed_term(term)
        if number is None:
            conditions.append(f"instr({key}, ?) > 0")
            params.append(term)
        else:
            conditions.append(f"(instr({key}, ?) > 0 OR {seed} = ?)")
            params += [term, number]
    return _all_of(conditions), params


def _all_of(conditions: list[str]) -> str:
    """``conditions`` (at least one) joined by AND as a balanced tree: a chain of one AND per word was an expression
    as deep as the search is long, which SQLite refuses from 1,000 (a long prompt pasted into the search)."""
    if len(conditions) == 1:
        return conditions[0]
    half = len(conditions) // 2
    return f"({_all_of(conditions[:half])} AND {_all_of(conditions[half:])})"


def image_key(prompt: str, settings: dict[str, Any]) -> str:
    """The stored ``search_key`` of a gallery image: its prompt's key, a line break, its model's name's (as the
    settings name it): a word finds it in either, a "quoted phrase" never runs from one into the other (no key of
    a text holds a line break)."""
    model = settings.get("model")
    return f"{search_key(prompt)}\n{search_key('' if model is None else model)}"


def seed_of(settings: dict[str, Any]) -> StoredSeed | None:
    """The seed stored for an image of ``settings`` (its row's ``seed``, ``_as_stored``), which a whole-number
    search term finds (``_seed_term``): a whole number, negative too, as the settings give it: a number (another
    program's metadata may give 12345.0) or its digits as text ("-42", "12345.0"); else None (none, a fraction,
    True, one longer than a term can be)."""
    seed = settings.get("seed")
    if isinstance(seed, float):
        seed = int(seed) if seed.is_integer() else None  # neither inf nor nan is
    elif isinstance(seed, str):
        text = seed.strip()
        whole = len(text) <= 2 * _SEED_DIGITS and _SEED_TEXT.fullmatch(text)  # ``int`` is given no long digit run
        seed = int(text.partition(".")[0]) if whole else None
    return _as_stored(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None


# A prompt history entry's stored key is its prompt's key, a line break, its negative prompt's (``_prompt_key``): its
# two parts, for a search that finds all its words in one of them, never some in each
_PROMPT_PART = "substr(search_key, 1, instr(search_key, char(10)) - 1)"
_NEGATIVE_PART = "substr(search_key, instr(search_key, char(10)) + 1)"


def _prompt_key(prompt: str, negative_prompt: str) -> str:
    """The stored ``search_key`` of a prompt history entry: of both texts, a search finds either."""
    return f"{search_key(prompt)}\n{search_key(negative_prompt)}"


def prompt_of(settings: dict[str, Any]) -> str:
    """The prompt stored for an image of ``settings``: a PNG from elsewhere may hold "prompt": null, which is no
    prompt, not the text "None"."""
    return "" if settings.get("prompt") is None else str(settings["prompt"])


def _stored_image_key(prompt: str, settings: str) -> str:
    """``image_key`` of a row (its settings as stored), for the migration that computes them."""
    return image_key(prompt, _settings(settings))


def _stored_seed(settings: str) -> StoredSeed | None:
    """``seed_of`` a row's settings as stored, for the migration that computes them."""
    return seed_of(_settings(settings))


def _settings(text: str) -> dict[str, Any]:
    """A row's stored settings; {} for text that is no JSON object. A lone surrogate in them (a row an earlier
    version stored: JSON's "\\ud83d" reads as one) is U+FFFD here, as new rows store it (``_stored_settings``): the
    stored text is left as it is, and its key, the metadata pane and Reuse get valid text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return storable(parsed) if _escapes_lone_surrogate(text) else parsed


# A surrogate's JSON escape. Stored settings are ASCII (``json.dumps``): a surrogate is in them only so, and the
# settings of a row without a lone one are not walked (a migration reads every row's).
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
# What JSON text escapes that is no lone surrogate yet reads as one above: an escaped backslash (a Windows path's
# "C:\\users\\ud83d") and a pair of surrogates, which is one character (an emoji: ``json.dumps`` writes each so).
# Taken out left to right, each backslash left begins an escape.
_NO_LONE_SURROGATE = re.compile(r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _escapes_lone_surrogate(text: str) -> bool:
    """Whether the JSON ``text`` holds a lone surrogate's escape ("\\ud83d", half an emoji). Rows with a whole emoji
    were walked for one and their settings written out twice: 30,000 added in 1.45 s instead of 1.0 s."""
    return bool(_ESCAPED_SURROGATE.search(text)) and bool(_ESCAPED_SURROGATE.search(_NO_LONE_SURROGATE.sub("", text)))


def _stored_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(``settings`` as a row stores them, their JSON text): each lone surrogate in their text U+FFFD
    (``app.valid_text``), which SQLite refused with UnicodeEncodeError (the image was not added to the gallery)."""
    text = json.dumps(settings)
    if _escapes_lone_surrogate(text):
        settings = storable(settings)
        text = json.dumps(settings)
    return settings, text


class UpgradeFailed(sqlite3.OperationalError):
    """The upgrade of a database of an earlier schema (``version``) to this version's failed, in its one commit: the
    database is as it was. ``reason``: why, in words (``Store._why_failed``). Its SQLite error code is the one of the
    error behind it (``app.store_recovery`` tells a damaged file, or one it may not write, by it)."""

    def __init__(self, version: int, reason: str, cause: sqlite3.Error) -> None:
        super().__init__(reason)
        self.version, self.reason = version, reason
        self.sqlite_errorcode = getattr(cause, "sqlite_errorcode", None)


# What SQLite says of a function of ours that raised, and of one whose arguments Python could not make text of
_FUNCTION_RAISED = "user-defined function raised exception"


class Store:
    def __init__(self, path: Path, recovering: Salvaged | None = None) -> None:
        """``recovering``: the database replaces a lost one, whose images are imported again; what was read back
        from it is kept in the same commit as the schema (see ``_migrate``)."""
        self.path = Path(path)
        # isolation_level=None: we open transactions explicitly, so each write is one atomic commit.
        self._db = sqlite3.connect(self.path, isolation_level=None)
        # The stored keys are written with these (by the writes and by the migration that fills an older
        # database's). If ``search_key``, ``image_key`` or ``seed_of`` ever changes, a new migration must recompute
        # them: searches compare against what is stored.
        self._function_error: Exception | None = None  # what one of them raised last (``_kept_error``)
        for name, arguments, function in (("search_key", 1, search_key), ("prompt_key", 2, _prompt_key),
                                          ("image_key", 2, _stored_image_key), ("image_seed", 1, _stored_seed)):
            self._db.create_function(name, arguments, self._kept_error(function), deterministic=True)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate(recovering)
        except BaseException:
            self._db.close()  # a damaged file is moved aside next: no handle may stay open on it
            raise

    def close(self) -> None:
        self._db.close()

    def _kept_error(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` as SQLite calls it, keeping what it raises: SQLite says only "user-defined function raised
        exception", and a failed upgrade names the real cause (``_why_failed``)."""

        def call(*args: Any) -> Any:
            try:
                return function(*args)
            except Exception as exc:
                self._function_error = exc
                raise

        return call

    def _why_failed(self, exc: sqlite3.Error) -> str:
        """Why a statement that computes stored values failed with ``exc``, in words: what our function raised; the
        text of a row that Python could not read (SQLite's words are the same then, and no function of ours ran);
        else SQLite's own words."""
        if (raised := self._function_error) is not None:
            return f"the search key of one of its rows could not be computed ({type(raised).__name__}: {raised})"
        if str(exc) == _FUNCTION_RAISED:
            return "the search key of one of its rows could not be computed: the row holds text that is not valid " \
                "UTF-8 (written by another program)"  # fmt: skip
        return str(exc)

    def check(self) -> None:
        """Raises ``sqlite3.DatabaseError`` if the file is damaged. ``quick_check`` reads each page once (fast at
        gallery sizes): damage is better found at start-up, where it can be repaired, than mid-session."""
        result = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        if result != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(result[:3])}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self, recovering: Salvaged | None) -> None:
        """Every upgrade in one commit, and a recovery with them: a database started in place of a lost one never
        exists without the stars and history read back from it (a crash in between lost them, and the next start
        took it for a healthy one)."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"The gallery database {self.path} was written by a newer Nibble Studio (schema {version})."
            )
        if version == SCHEMA_VERSION and recovering is None:
            return
        self._function_error = None
        try:
            self._upgrade(version, recovering)
        except sqlite3.Error as exc:
            if version == 0:  # a new database: none to upgrade
                raise
            log.error("upgrading the gallery database %s from schema %d failed", self.path, version,
                      exc_info=self._function_error or exc)  # fmt: skip
            raise UpgradeFailed(version, self._why_failed(exc), exc) from exc

    def _upgrade(self, version: int, recovering: Salvaged | None) -> None:
        """``_migrate``'s one commit, from the schema ``version``."""
        with self._transaction():
            values: set[str] = set()  # the stored search values the steps compute again: once, after them
            for index in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[index]:
                    if statement in _RECOMPUTES:
                        values.update(_RECOMPUTES[statement])
                    else:
                        self._db.execute(statement)
            for statement in _recomputed(values):
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if recovering is not None:
                prompts, favorites = recovering
                self._merge_prompts(prompts)
                self._db.execute("INSERT OR IGNORE INTO recovery (id) VALUES (1)")
                self._db.executemany("INSERT OR IGNORE INTO recovered_favorites (path) VALUES (?)",
                                     [(path,) for path in favorites])  # fmt: skip
                # stripped, as ``_merge_prompts`` puts them in the history and ``prompts_to_recover`` compares them
                self._db.executemany("INSERT OR IGNORE INTO recovered_prompts (prompt, negative_prompt) VALUES (?, ?)",
                                     [(p.prompt.strip(), p.negative_prompt.strip()) for p in prompts])  # fmt: skip

    def recovery(self) -> Recovery | None:
        """The re-import after a lost database that has not ended (begun at this start, or cut short by a quit or a
        crash at an earlier one); None when there is none."""
        if self._db.execute("SELECT 1 FROM recovery").fetchone() is None:
            return None
        return Recovery({path for (path,) in self._db.execute("SELECT path FROM recovered_favorites")})

    def prompts_to_recover(self, records: list[PromptRecord]) -> list[PromptRecord]:
        """Those of ``records`` (the prompts of images imported again in a recovery, their texts stripped) that go
        back into the history: none once the user has cleared it during the recovery, else those neither read back
        from the lost database nor removed by the user since (``recovered_prompts``). Asked of the database at each
        batch, not of what it held when the import began: what the user forgets meanwhile stays forgotten, also
        through a restart."""
        cleared = self._db.execute("SELECT history_cleared FROM recovery").fetchone()
        if cleared is not None and cleared[0]:
            return []
        return [r for r in records if self._db.execute(
            "SELECT 1 FROM recovered_prompts WHERE prompt = ? AND negative_prompt = ?",
            (r.prompt, r.negative_prompt)).fetchone() is None]  # fmt: skip

    def end_recovery(self) -> None:
        """The re-import after a lost database has ended: every image is back, with its star and prompt."""
        with self._transaction():
            for table in ("recovery", "recovered_favorites", "recovered_prompts"):
                self._db.execute(f"DELETE FROM {table}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # ---- images -------------------------------------------------------------------------------------------

    def add_image(
        self,
        rel_path: str,
        settings: dict[str, Any],
        created: float | None = None,
        file_size: int | None = None,
        file_sha256: str | None = None,
    ) -> ImageRecord:
        """``file_size``, ``file_sha256``: the file's, where known (``app.image_files.file_fingerprint``)."""
        self.add_images([(rel_path, settings, time.time() if created is None else created, file_size, file_sha256)])
        row = self._db.execute(
            "SELECT id, path, prompt, settings, created, favorite, missing FROM images WHERE path = ?",
            (rel_path,),
        ).fetchone()
        return self._image(row)

    def add_images(
        self,
        images: Iterable[tuple[str, dict[str, Any], float, int | None, str | None]],
        favorites: Container[str] = (),
        prompts: Iterable[PromptRecord] = (),
    ) -> None:
        """Rows of (path, settings, created, file size, file SHA-256), in one commit: importing a folder took a
        commit, each with its disk sync, per image (minutes for a very large folder after a damaged database).
        A row left at a path (its file missing, or gone from the trash) now stands for the new file; the gallery's
        add gives a deleted one another name first (``app.trash_names.clear_trash_name``), to be brought back by Undo.

        ``favorites``: the paths among them that are starred; ``prompts``: merged into the history
        (``_merge_prompts``). Both for a re-import after a damaged database, in the same commit as the rows:
        an import cut short never leaves an image without the star or the history entry it came back with."""
        rows = [(path, *_stored_settings(settings), *facts) for path, settings, *facts in images]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO images (path, prompt, settings, created, file_size, file_sha256, favorite, search_key, "
                "seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET missing = 0, trashed = 0, trashed_at = NULL, "
                "favorite = excluded.favorite, prompt = excluded.prompt, search_key = excluded.search_key, "
                "seed = excluded.seed, settings = excluded.settings, created = excluded.created, "
                "file_size = excluded.file_size, file_sha256 = excluded.file_sha256",
                [(path, prompt_of(settings), text, created, size, sha, int(path in favorites),
                  image_key(prompt_of(settings), settings), seed_of(settings))
                 for path, settings, text, created, size, sha in rows],
            )  # fmt: skip
            self._merge_prompts(prompts)

    def images(self, search: str = "", favorites_only: bool = False) -> list[ImageRecord]:
        query = "SELECT id, path, prompt, settings, created, favorite, missing FROM images WHERE trashed = 0"
        params: list[Any] = []
        if terms := search_terms(search):  # in the prompt or the model's name, or the seed (``image_found``)
            where, found_params = _where_found(terms, seed="seed")
            query += f" AND {where}"
            params += found_params
        if favorites_only:
            query += " AND favorite = 1"
        query += " ORDER BY created DESC, id DESC"
        return [self._image(row) for row in self._db.execute(query, params)]

    def image(self, image_id: int) -> ImageRecord | None:
        row = self._db.execute(
            "SELECT id, path, prompt, settings, created, favorite, missing FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        return self._image(row) if row else None

    def images_at(self, paths: Iterable[str]) -> list[ImageRecord]:
        """The rows in the gallery (not in the trash) at ``paths``, in no particular order."""
        wanted = list(paths)
        found: list[ImageRecord] = []
        for start in range(0, len(wanted), 500):  # an older SQLite takes at most 999 parameters a statement
            chunk = wanted[start : start + 500]
            found += [self._image(row) for row in self._db.execute(
                "SELECT id, path, prompt, settings, created, favorite, missing FROM images "
                f"WHERE trashed = 0 AND path IN ({', '.join('?' * len(chunk))})", chunk)]  # fmt: skip
        return found

    def has_path(self, path: str) -> bool:
        """Whether a row (in the gallery, missing, or in the trash) holds ``path``: paths are unique."""
        return self._db.execute("SELECT 1 FROM images WHERE path = ?", (path,)).fetchone() is not None

    def trashed_at(self, path: str) -> int | None:
        """The id of the row in the trash that holds ``path`` (as written), if one does."""
        row = self._db.execute("SELECT id FROM images WHERE path = ? AND trashed = 1", (path,)).fetchone()
        return None if row is None else row[0]

    def watched_paths(self) -> tuple[set[str], set[str]]:
        """(the paths of the gallery's entries with a file: neither in the trash nor flagged missing; the paths of the
        entries in the trash), for each look of the images folder's watch (``app.folder_watch``): a file at neither
        is new, or a missing entry's back; an entry of the first whose file is not found is gone. On the Qt thread:
        43 ms at 30,000 rows, as ``SELECT path`` alone (34 ms) nearly, ``all_paths`` 106 ms (this 2-core machine)."""
        with_file = {path for (path,) in self._db.execute("SELECT path FROM images WHERE trashed = 0 AND missing = 0")}
        return with_file, {path for (path,) in self._db.execute("SELECT path FROM images WHERE trashed = 1")}

    def all_paths(self) -> dict[str, tuple[int, bool, bool]]:
        """path -> (id, missing, trashed) for every row, for start-up reconciliation."""
        rows = self._db.execute("SELECT path, id, missing, trashed FROM images")
        return {path: (row_id, bool(missing), bool(trashed)) for path, row_id, missing, trashed in rows}

    def file_facts(self, ids: Iterable[int]) -> dict[int, tuple[dict[str, Any], int | None, str | None]]:
        """id -> (settings, file size, file SHA-256) of those of the rows ``ids`` whose file size is known (the
        hash may not be: None)."""
        wanted = set(ids)
        rows = self._db.execute(
            "SELECT id, settings, file_size, file_sha256 FROM images WHERE trashed = 0 AND file_size IS NOT NULL"
        )
        return {rid: (_settings(text), size, sha) for rid, text, size, sha in rows if rid in wanted}

    def fingerprints(self, ids: Iterable[int]) -> dict[int, tuple[int | None, str | None]]:
        """id -> (file size, file SHA-256) stored for those of the rows ``ids`` that are there (``stored_fingerprint``
        of many, in one read)."""
        wanted = list(ids)
        found: dict[int, tuple[int | None, str | None]] = {}
        for start in range(0, len(wanted), 500):  # at most 999 parameters a statement (``images_at``)
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"SELECT id, file_size, file_sha256 FROM images WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((rid, (size, sha)) for rid, size, sha in rows)
        return found

    def stored_fingerprint(self, image_id: int) -> tuple[int | None, str | None]:
        """(file size, file SHA-256) stored for the row ``image_id``, in the gallery or in the trash: None where
        not known (an image imported before its hash was stored, or a row that is gone)."""
        row = self._db.execute("SELECT file_size, file_sha256 FROM images WHERE id = ?", (image_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def unsized(self) -> dict[str, int]:
        """path -> id of the rows in the gallery whose file size is not known (added by an earlier version)."""
        rows = self._db.execute("SELECT path, id FROM images WHERE file_size IS NULL AND trashed = 0")
        return dict(rows.fetchall())

    def dates_to_check(self) -> list[tuple[int, str, float, str]] | None:
        """The gallery's rows whose date may be the file time an earlier version's import took (schema 10's step):
        (id, path, created, settings as stored) of those whose file is there and whose settings name a
        ``created``; None once they have been dated again (``end_import_dates``)."""
        if self._db.execute("SELECT 1 FROM import_dates").fetchone() is None:
            return None
        return self._db.execute("SELECT id, path, created, settings FROM images WHERE trashed = 0 AND missing = 0 "
                                """AND instr(settings, '"created"') > 0""").fetchall()  # fmt: skip

    def set_dates(self, dates: Iterable[tuple[int, float]]) -> None:
        """(id, created) pairs, in one commit."""
        with self._transaction():
            self._db.executemany("UPDATE images SET created = ? WHERE id = ?", [(c, i) for i, c in dates])

    def end_import_dates(self) -> None:
        """The rows ``dates_to_check`` gave have all been dated again: it says None from now on."""
        with self._transaction():
            self._db.execute("DELETE FROM import_dates")

    def set_file_sizes(self, sizes: Iterable[tuple[int, int]]) -> None:
        """(id, size) pairs, in one write."""
        with self._transaction():
            self._db.executemany("UPDATE images SET file_size = ? WHERE id = ?", [(s, i) for i, s in sizes])

    def take_over(self, moves: Iterable[tuple[int, str, int, str]]) -> None:
        """(id, path, file size, file SHA-256): each row (its file missing) now stands for the file at ``path``,
        the same picture renamed or moved by the user; its favorite, date and id stay. One commit."""
        with self._transaction():
            self._db.executemany(
                "UPDATE images SET path = ?2, missing = 0, file_size = ?3, file_sha256 = ?4 WHERE id = ?1", moves
            )

    def set_favorites(self, ids: Iterable[int], favorite: bool) -> None:
        """Stars (or unstars) the rows ``ids`` in one commit, 500 a statement: one UPDATE per image was 10,000
        statements for a gallery selected whole and starred."""
        wanted = list(ids)
        with self._transaction():
            for start in range(0, len(wanted), 500):  # an older SQLite takes at most 999 parameters a statement
                chunk = wanted[start : start + 500]
                self._db.execute(f"UPDATE images SET favorite = ? WHERE id IN ({', '.join('?' * len(chunk))})",
                                 [int(favorite), *chunk])  # fmt: skip

    def set_trashed(
        self,
        image_id: int,
        trashed: bool,
        path: str | None = None,
        when: float | None = None,
        missing: bool | None = None,
    ) -> None:
        """``path``: the name the file came back under, when another file had taken its old one. ``when``: the
        time of the delete action (``next_trash_time``), the same for every image it moved, which is what lets
        one Undo bring that action back whole, also after a restart (``trash_batches``). ``missing``: set with
        it, in the same commit (an image brought back whose file was gone from the trash); None keeps it."""
        self.set_trashed_many([(image_id, path, missing)], trashed, when)

    def set_trashed_many(
        self, images: Iterable[tuple[int, str | None, bool | None]], trashed: bool, when: float | None = None
    ) -> None:
        """``set_trashed`` for many images, (id, path, missing) each, in one commit: one per image (each with its
        disk sync) froze the window 4.4 s for a delete of 500 images and 2.1 s for their Undo."""
        when = time.time() if when is None else when
        with self._transaction():
            self._db.executemany(
                "UPDATE images SET trashed = ?, trashed_at = ?, path = COALESCE(?, path), "
                "missing = COALESCE(?, missing) WHERE id = ?",
                [(int(trashed), when if trashed else None, path, None if missing is None else int(missing), image_id)
                 for image_id, path, missing in images],
            )  # fmt: skip

    def next_trash_time(self) -> float:
        """A ``trashed_at`` for a new delete action: now, or just after the latest one in the trash if the clock
        has not moved on (a coarse clock, or one set back), so that two actions never share a time and merge."""
        latest = self._db.execute("SELECT MAX(trashed_at) FROM images WHERE trashed = 1").fetchone()[0]
        now = time.time()
        return now if latest is None or now > latest else latest + 1e-3

    def set_path(self, image_id: int, path: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE images SET path = ? WHERE id = ?", (path, image_id))

    def trash_batches(self) -> list[list[ImageRecord]]:
        """Images in the trash, one list per delete action (the images of one share its ``trashed_at``), the
        latest action last (the top of the undo stack). A row without a time (a database of an early version)
        is an action of its own."""
        batches: list[list[ImageRecord]] = []
        previous: float | None = None
        for *row, trashed_at in self._db.execute(
            "SELECT id, path, prompt, settings, created, favorite, missing, trashed_at FROM images "
            "WHERE trashed = 1 ORDER BY trashed_at IS NOT NULL, trashed_at, id"
        ):
            if not batches or trashed_at is None or trashed_at != previous:
                batches.append([])
            batches[-1].append(self._image(tuple(row)))
            previous = trashed_at
        return batches

    def forget_trashed(self) -> int:
        """Drops every row of an image in the trash (Empty trash); returns how many."""
        with self._transaction():
            return self._db.execute("DELETE FROM images WHERE trashed = 1").rowcount

    def set_missing(self, ids: Iterable[int], missing: bool) -> None:
        with self._transaction():
            self._db.executemany("UPDATE images SET missing = ? WHERE id = ?", [(int(missing), i) for i in ids])

    @staticmethod
    def _image(row: tuple) -> ImageRecord:
        row_id, path, prompt, settings, created, favorite, missing = row
        return ImageRecord(row_id, path, prompt, settings, created, bool(favorite), bool(missing))

    # ---- prompt history -----------------------------------------------------------------------------------

    def record_prompt(self, prompt: str, negative_prompt: str = "", when: float | None = None) -> PromptRecord | None:
        """Counts a use of the prompt and returns its entry as counted (None for an empty prompt, not recorded).
        Spaces and line breaks at its ends are dropped: they change nothing the model sees, and "a cat" and
        "a cat " were two entries of the history that looked the same.

        The entry is read back by its texts, through their unique index, in the same transaction: looked up with
        ``prompts(text)`` it cost a scan of every entry (7-14 ms with 20,000 prompts, at every Generate). Not with
        ``RETURNING``: that needs SQLite 3.35, and a Python 3.10+ may link an older one (RHEL 9's: 3.34)."""
        prompt, negative_prompt = storable(prompt).strip(), storable(negative_prompt).strip()  # see ``_merge_prompts``
        if not prompt:
            return None
        when = time.time() if when is None else when
        with self._transaction():
            self._db.execute(
                "INSERT INTO prompts (prompt, negative_prompt, search_key, last_used) "
                "VALUES (?1, ?2, prompt_key(?1, ?2), ?3) "
                "ON CONFLICT (prompt, negative_prompt) DO UPDATE SET uses = uses + 1, last_used = excluded.last_used",
                (prompt, negative_prompt, when),
            )
            row = self._db.execute(
                "SELECT id, prompt, negative_prompt, uses, last_used FROM prompts "
                "WHERE prompt = ? AND negative_prompt = ?",
                (prompt, negative_prompt),
            ).fetchone()
        return PromptRecord(*row)

    def prompts(self, search: str = "") -> list[PromptRecord]:
        query = "SELECT id, prompt, negative_prompt, uses, last_used FROM prompts"
        params: list[Any] = []
        if terms := search_terms(search):  # texts only: an entry has no seed or model (a number: in the text)
            in_prompt, prompt_params = _where_found(terms, _PROMPT_PART)
            in_negative, negative_params = _where_found(terms, _NEGATIVE_PART)
            query += f" WHERE ({in_prompt}) OR ({in_negative})"
            params += prompt_params + negative_params
        query += " ORDER BY last_used DESC, id DESC"
        return [PromptRecord(*row) for row in self._db.execute(query, params)]

    def remove_prompts(self, ids: Iterable[int]) -> list[PromptRecord]:
        """Forgets the entries ``ids``; returns them as they were stored, in the history's order (newest first),
        read in the same commit: what ``restore_prompts`` puts back when the user undoes the removal (a row of the
        history list may be older than the entry, e.g. its use count). During a recovery their texts go into
        ``recovered_prompts``, in the same commit: the images still to import give them back no more (a text kept
        there until the recovery ends is in the history read back, or in an image's settings, already)."""
        wanted = list(ids)
        removed: list[PromptRecord] = []
        with self._transaction():
            for start in range(0, len(wanted), 500):  # an older SQLite takes at most 999 parameters a statement
                chunk = wanted[start : start + 500]
                removed += [PromptRecord(*row) for row in self._db.execute(
                    "SELECT id, prompt, negative_prompt, uses, last_used FROM prompts "
                    f"WHERE id IN ({', '.join('?' * len(chunk))})", chunk)]  # fmt: skip
            self._db.executemany(
                "INSERT OR IGNORE INTO recovered_prompts (prompt, negative_prompt) "
                "SELECT prompt, negative_prompt FROM prompts WHERE id = ? AND EXISTS (SELECT 1 FROM recovery)",
                [(i,) for i in wanted],
            )
            self._db.executemany("DELETE FROM prompts WHERE id = ?", [(i,) for i in wanted])
        removed.sort(key=history_order)
        return removed

    def restore_prompts(self, records: list[PromptRecord]) -> None:
        """Puts back entries ``remove_prompts`` returned, in one commit, merged with any of the same texts recorded
        since (their uses added up). Oldest first: entries used at the same time keep their order, which falls
        to the id, and the one added last gets the highest. Removed during a recovery, they stay in
        ``recovered_prompts``: the images still to import do not add their uses to the entries brought back."""
        with self._transaction():
            self._merge_prompts(reversed(records))

    def _merge_prompts(self, records: Iterable[PromptRecord]) -> None:
        """Adds prompts back (those of images re-imported after a lost database), merging with what is there,
        inside the caller's transaction. A lone surrogate in them is U+FFFD (``app.valid_text``), as in the rows."""
        texts = ((storable(r.prompt).strip(), storable(r.negative_prompt).strip(), r) for r in records)
        self._db.executemany(
            "INSERT INTO prompts (prompt, negative_prompt, search_key, uses, last_used) "
            "VALUES (?1, ?2, prompt_key(?1, ?2), ?3, ?4) "
            "ON CONFLICT (prompt, negative_prompt) DO UPDATE SET uses = uses + excluded.uses, "
            "last_used = MAX(last_used, excluded.last_used)",
            [(prompt, negative_prompt, r.uses, r.last_used) for prompt, negative_prompt, r in texts if prompt],
        )

    def clear_prompts(self) -> None:
        """Forgets every entry; during a recovery, the images still to import give no prompt back (in the same
        commit: ``prompts_to_recover``)."""
        with self._transaction():
            self._db.execute("DELETE FROM prompts")
            self._db.execute("UPDATE recovery SET history_cleared = 1")


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # After some errors (disk full, I/O) SQLite has already rolled back by itself; a second ROLLBACK would
        # fail and hide the real error ("cannot rollback - no transaction is active").
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
