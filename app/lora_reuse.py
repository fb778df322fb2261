"""An image's LoRAs matched to the LoRA panel's rows, for "reuse settings" and dropped images
(``LoraHashSearch.restore_used``, ``restore_refs``): the LoRAs it names (``ImageRef``), the rows each may be
(``Match``), the strengths it gives them, and the search of the rows' contents for the short hashes it recorded
(``HashSearch``, ``search_hashes``), which runs on a thread of its own. The rows are switched on by the state."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from app.lora_entry import LoraEntry, fit_strength
from app.lora_files_read import FilesRead, file_names, given_path, is_named
from app.lora_header import FileRead, read_stamp
from gpu.lora.metadata import MAX_STRENGTH, content_hashes
from gpu.lora.refs import finite

log = logging.getLogger(__name__)

# Told once an image's LoRAs are settled (``LoraHashSearch.restore_refs``, ``restore_used``): (the names of those
# not in the panel, a sentence for each other thing not restored as saved among the LoRAs the search found).
RefsSettled = Callable[[list[str], list[str]], None]


def told_nothing(missing: list[str], notices: list[str]) -> None:
    """The ``RefsSettled`` of a caller of ``restore_used`` that gives none: what a search found is not said."""


# What the panel sets for jobs (``LoraState.panel_state``): each row's id, on or off, strength and text strength
PanelState = tuple[tuple[int, bool, float, float | None], ...]

# (strength, text strength: None for "the same") a row is switched on at, by the row's id (``LoraState.switch_to``)
Wanted = dict[int, tuple[float, float | None]]


@dataclass
class ImageRef:
    """One LoRA an image names: its name (a file stem; for one of our images, that of the row found for it), short
    hash ("" for none) and entry (``lora_refs`` of another program's image, ``lora_list`` of ours)."""

    name: str
    digest: str
    item: dict[str, Any]


class Match(NamedTuple):
    """An image's LoRAs (``refs``) matched to the panel's rows: ``now``: a ref's index -> the row switched on at the
    drop; ``jobs``: a ref's index -> the rows whose contents are searched for its hash, in order."""

    refs: list[ImageRef]
    now: dict[int, LoraEntry]
    jobs: dict[int, list[LoraEntry]]


@dataclass
class HashSearch:
    """The search of the listed files' contents for the LoRAs of one dropped image (``LoraHashSearch.restore_refs``,
    ``restore_used``). ``jobs``: a ref's index -> the rows to hash for it, in order; ``now``: the rows switched on
    at the drop; ``panel``: the panel right after the drop (``LoraState.panel_state``), so that a change made meanwhile
    is seen."""

    refs: list[ImageRef]
    now: dict[int, LoraEntry]
    jobs: dict[int, list[LoraEntry]]
    panel: PanelState
    settled: RefsSettled
    cancel: threading.Event = field(default_factory=threading.Event)


def image_strengths(name: str, item: dict[str, Any], notices: list[str]) -> tuple[float, float | None]:
    """(strength, text strength: None for "the same") an image gives the LoRA ``name`` in ``item`` (a ``lora_list``
    or ``lora_refs`` entry: any program may have written it): one that is no number is 1.0 (the strength) or the
    same (the text strength), one beyond what the engine applies is clamped to it; each said in ``notices``."""
    said, text_said = item.get("strength", 1.0), item.get("text_strength")
    strength, text = finite(said), None if text_said is None else finite(text_said)
    if strength is None:
        strength = 1.0
        notices.append(
            f"The image's strength for the LoRA '{name}' is no number ({str(said)[:40]}); it is used at 1.0."
        )
    if text is None and text_said is not None:
        notices.append(
            f"The image's text strength for the LoRA '{name}' is no number ({str(text_said)[:40]}); "
            "its CLIP/T5 parts are used at its strength."
        )
    for what, value in (("strength", strength), ("text strength", text)):
        if value is not None and abs(value) > MAX_STRENGTH:
            notices.append(f"The image's {what} {value:g} for the LoRA '{name}' is beyond the {-MAX_STRENGTH:g} to "
                           f"{MAX_STRENGTH:g} this app applies; it is used at {fit_strength(value):g}.")  # fmt: skip
    return strength, text


def first_usable(rows: list[LoraEntry], files: FilesRead) -> LoraEntry:
    """Of the rows an image's LoRA may be (one name listed in several folders), the one switched on at the drop until
    the hash search settles which: the first whose file can be used now (as ``files`` read it), or the first when
    none can (``wanted_strengths`` then says why it stays off). One row is taken as it is: ``wanted_strengths``
    looks at its header anyway."""
    if len(rows) == 1:
        return rows[0]
    return next((e for e in rows if not files.read(e.path).header.problem), rows[0])


def short_hash(item: dict[str, Any]) -> str:
    """The short hash an image's LoRA entry gives (``hash``), lower case; "" for none (or one too short to tell
    files apart: any program may have written it)."""
    digest = item.get("hash")
    return digest.lower() if isinstance(digest, str) and len(digest) >= 8 else ""


def rows_for_file(entries: list[LoraEntry], path: Path, add: Callable[[Path], LoraEntry | str],
                  files: FilesRead) -> list[LoraEntry] | str:  # fmt: skip
    """The rows of ``entries`` an image's LoRA file ``path`` may be: the listed one at that path, first, then the
    others listed under its file name (its file may have been saved over since: the image's hash tells); else those
    listed under the same file name whose file is there, in the panel's order; else the file, added (``add``: its
    row, or why it was not added, returned then); [] for none. A bare file name (what images record since they no
    longer carry the folder) is looked up by name only: resolved, it named a file in whatever folder the app was
    started from, which was then added. Every file is as ``files`` found it (``look_used``), on a thread."""
    given = given_path(path)
    resolved = files.resolved(given) if given is not None else None
    names = file_names(path)
    named = [e for e in entries if is_named(e.path, names) and files.is_file(e.path)]
    for e in entries:
        if resolved is not None and e.resolved == resolved:
            return [e, *(n for n in named if n is not e)] if files.is_file(e.path) else []
    if named:
        return named
    if given is None or not files.is_file(given):
        return []
    added = add(given)
    return added if isinstance(added, str) else [added]


def match_by_file(used: Any, find: Callable[[Path], list[LoraEntry] | str], notices: list[str],
                  files: FilesRead) -> Match:  # fmt: skip
    """The LoRAs of one of our images (``lora_list``: ``used``) matched to the rows ``find`` gives for each one's
    file (``rows_for_file``): the rows of a ref with a hash, one or several, are searched by contents (one tells
    whether the file is still the image's). Each entry that names no LoRA, or no file here, is said in
    ``notices``, and so is each file ``find`` did not add (why, as it says). ``files``: the files, as a thread
    looked at them (``look_used``)."""
    refs: list[ImageRef] = []
    now: dict[int, LoraEntry] = {}
    jobs: dict[int, list[LoraEntry]] = {}
    for item in used if isinstance(used, list) else [used]:
        if not isinstance(item, dict):
            notices.append(
                f"The image's list of LoRAs holds an entry that names no LoRA ({str(item)[:80]}); it was skipped."
            )
            continue
        try:
            rows = find(Path(str(item.get("file", ""))))
        except (OSError, ValueError):  # e.g. a NUL byte in the name: no such file can exist
            rows = []
        if isinstance(rows, str):
            notices.append(f"The image used the LoRA '{item.get('name', '?')}', which was not added to the LoRA "
                           f"panel: {rows} New images are made without it.")  # fmt: skip
            continue
        if not rows:
            notices.append(
                f"The image used the LoRA '{item.get('name', '?')}' ({item.get('file', '?')}), "
                "which is not here any more; new images are made without it."
            )
            continue
        ref = ImageRef(rows[0].name, short_hash(item), item)
        if ref.digest:  # one row too: its file may have been saved over since (another LoRA of that name)
            jobs[len(refs)] = rows
        now[len(refs)] = first_usable(rows, files)
        refs.append(ref)
    return Match(refs, now, jobs)


def match_by_stem(refs: Any, entries: list[LoraEntry], notices: list[str], files: FilesRead) -> Match:
    """The LoRAs of another program's image (``lora_refs``: ``refs``) matched to the rows of ``entries`` by file
    stem, in any case: a ref with a hash and no row of its stem, or several, is searched by contents (among all
    rows, or those of its stem). Each entry that names no LoRA is said in ``notices``. ``files``: the rows' files, as
    a thread looked at them (those of ``rows_of_stems``)."""
    refs_read: list[ImageRef] = []
    for ref in refs if isinstance(refs, list) else [refs]:
        name = str(ref.get("name") or "").strip() if isinstance(ref, dict) else ""
        if not name:
            notices.append(f"The image's list of LoRAs holds an entry that names no LoRA ({str(ref)[:80]}); "
                           "it was skipped.")  # fmt: skip
            continue
        refs_read.append(ImageRef(name, short_hash(ref), ref))
    now: dict[int, LoraEntry] = {}
    jobs: dict[int, list[LoraEntry]] = {}
    for index, ref in enumerate(refs_read):
        folded = ref.name.casefold()
        named = [e for e in entries if e.path.stem.casefold() == folded and files.is_file(e.path)]
        if named:
            now[index] = first_usable(named, files)
        if ref.digest and len(named) != 1:
            jobs[index] = named or list(entries)
    return Match(refs_read, now, jobs)


def wanted_strengths(refs: list[ImageRef], rows: dict[int, LoraEntry], notices: list[str],
                     refused: Callable[[LoraEntry, FileRead], None], files: FilesRead,
                     said: set[int] | None = None) -> Wanted:  # fmt: skip
    """``LoraState.switch_to``'s argument for ``refs`` matched to ``rows`` (ref index -> row): a row whose file
    cannot be used now (as ``files`` read it, on a thread) is left off, shown so by ``refused``
    (``LoraState.show_refused``) and said in ``notices``, as is a strength outside the engine's range; for the refs
    in ``said`` only, where given (the others were said at the drop)."""
    wanted: Wanted = {}
    for index, entry in rows.items():
        ref, told = refs[index], notices if said is None or index in said else []
        read = files.read(entry.path)
        if read.header.problem:  # replaced since by another model's LoRA, or damaged: every job would fail on it
            refused(entry, read)  # its row kept the old file's info, as if it were fine
            told.append(f"The image used the LoRA '{ref.name}' ({entry.path}), which cannot be used now: "
                        f"{read.header.problem}; new images are made without it.")  # fmt: skip
            continue
        wanted[id(entry)] = image_strengths(entry.name, ref.item, told)
    return wanted


def entry_hashes(entry: LoraEntry) -> tuple[str, ...]:
    """``content_hashes`` of the entry's file, kept until the file changes; () when it cannot be read."""
    from gpu.errors import UserError

    stamp = read_stamp(entry.path)
    if entry.hashes is None or entry.hashes[0] != stamp:
        try:
            entry.hashes = (stamp, content_hashes(entry.path))
        except (OSError, UserError):  # gone, or no safetensors file: found by name, if at all
            entry.hashes = (stamp, ())
    return entry.hashes[1]


def search_hashes(search: HashSearch) -> dict[int, LoraEntry]:
    """On the search's thread: for each LoRA of ``search.jobs``, the first of its rows whose file has its hash
    (ref index -> row); it stops at the next file once ``search.cancel`` is set."""
    found: dict[int, LoraEntry] = {}
    try:
        for index, rows in search.jobs.items():
            for entry in rows:
                if search.cancel.is_set():
                    return found
                if any(h.startswith(search.refs[index].digest) for h in entry_hashes(entry)):
                    found[index] = entry
                    break
    except Exception:  # a LoRA is never left pending for good: what was found until then is used
        log.exception("looking for an image's LoRAs by their hash failed")
    return found


def unmatched_hashes(search: HashSearch, found: dict[int, LoraEntry], rows_on: set[int] | None = None) -> list[str]:
    """A sentence for each LoRA of ``search`` whose rows (several of its name, or the one: its file saved over
    since) all lack its hash (``found`` is what the search found): the row switched on at the drop stays on, as the
    LoRA of that name (new images may differ: said); one left off at the drop as unusable now was said then, and is
    not said again. ``rows_on``, where
    given (the user changed the panel while the files were hashed): the ids of the rows on now; a LoRA whose row is
    not among them (switched off or removed meanwhile) is not said."""
    notices: list[str] = []
    for index in search.jobs.keys() & search.now.keys() - found.keys():
        ref, row = search.refs[index], search.now[index]
        if rows_on is not None and id(row) not in rows_on:  # the user's choice since: no news to them
            continue
        # Left off at the drop, said to be unusable now (``wanted_strengths``): that its hash differs too repeated it
        if not row.enabled:
            continue
        notices.append(f"The image used the LoRA '{ref.name}' with the hash {ref.digest}, which none of the LoRA "
                       f"files of that name listed here has: {row.path} is on instead, and new images may "
                       "differ.")  # fmt: skip
    return notices


def found_left_off(search: HashSearch, found: dict[int, LoraEntry], rows_on: set[int]) -> list[str]:
    """A sentence for each LoRA of ``search`` whose file with the image's hash was found but left off, since the
    user changed the panel while the files were read (``rows_on``: the ids of the rows on now), while the row of
    its name switched on at the drop, another version, is on instead. A LoRA whose drop row the user switched off or
    removed meanwhile is not said (their choice), nor one with no row on at the drop (a renamed file: nothing of it
    was on, nothing is lost)."""
    notices: list[str] = []
    for index, row in found.items():
        ref, first = search.refs[index], search.now.get(index)
        if id(row) in rows_on or first is None or id(first) not in rows_on:
            continue
        notices.append(f"{row.path} has the hash the image used for the LoRA '{ref.name}' ({ref.digest}), but the "
                       f"LoRA panel changed while the files were read, so it was not switched on: {first.path} is "
                       "on instead, and new images may differ. Switch it on to make the image again.")  # fmt: skip
    return notices
