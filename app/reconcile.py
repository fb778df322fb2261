"""Start-up reconciliation of the images folder with the database, after a crash or manual file changes.

A PNG without a row (the app died between writing the file and committing the row, or the user copied it
in) is imported from its own metadata; a folder or a file without the PNG signature is not an image and is left
alone (not imported, not touched). A row whose file is gone is kept and flagged ``missing`` so the user
sees what was lost instead of silently forgetting it; it is un-flagged if the file comes back. A new file that is
the picture of such a row, renamed or moved inside the images folder by the user, takes that row over (its favorite
and id kept) instead of being imported as a second entry: the same size and bytes (SHA-256) as the row stored, or,
for a row stored without a hash (imported ones: hashing a whole folder at every import would slow the start-up), the
same size and the same non-empty settings text. A file that fits several rows, or a row several files, is imported
as it is: two different pictures are never merged.

A delete or an undo interrupted between moving the file and committing its row is finished the safe way: an
image whose row is not in the trash but whose file is comes back into the gallery; a trashed row whose file was
already moved back is taken out of the trash. A file copied in under the name of an image in the trash is
imported, and the trashed image is renamed so that both can be seen (never overwritten on undo).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.data_dir import DataDir
from app.image_files import (
    file_fingerprint,
    is_png,
    png_paths,
    read_image_settings,
    rename_in_trash,
    restore_from_trash,
)
from app.store import Store

log = logging.getLogger(__name__)

# Images imported per commit: one commit (and disk sync) per image made re-importing a large folder slow; a crash
# loses at most the batch's rows, whose files are imported again at the next start.
_IMPORT_BATCH = 500


@dataclass
class ReconcileReport:
    imported: int = 0
    missing: int = 0
    found_again: int = 0
    repaired: int = 0  # deletes / undos interrupted half-way, finished
    moved: int = 0  # missing entries whose picture was found under another name, and took it over
    unnamed: list[str] = field(default_factory=list)  # PNGs not imported: their names are no valid text (shown)


def _finish_interrupted_moves(store: Store, data: DataDir, rows: dict[str, tuple[int, bool, bool]],
                              on_disk: dict[str, str]) -> int:  # fmt: skip
    """Finishes the deletes and undos a crash cut short (see the module's text); ``rows``: ``store.all_paths()``."""
    repaired = 0
    in_trash_folder = png_paths(data.trash)
    for rel, (row_id, _missing, trashed) in rows.items():
        in_trash = rel in in_trash_folder
        if not trashed and rel not in on_disk and in_trash and is_png(data.trash / rel):
            # deleted, but the app died before the row said so: the deletion never happened
            rel_back = restore_from_trash(data, rel)
            on_disk[rel_back] = os.path.join(data.images, rel_back)
            repaired += 1
        elif trashed and rel in on_disk and not in_trash:  # brought back, but the row was not updated: finish
            store.set_trashed(row_id, False)
            repaired += 1
        elif trashed and rel in on_disk:  # another image now has the trashed one's name: give the trashed a new one
            store.set_path(row_id, rename_in_trash(data, rel, taken=store.has_path))
    return repaired


def _same_picture(
    fingerprint: tuple[int, str], settings: dict[str, Any] | None, row: tuple[dict[str, Any], int | None, str | None]
) -> bool:
    """Whether a file (its size and hash, and its settings when read) is the picture of a row (``file_facts``)."""
    row_settings, size, sha = row
    if fingerprint[0] != size:
        return False
    if sha is not None:
        return fingerprint[1] == sha
    return bool(settings) and settings == row_settings  # no settings text: nothing to tell two pictures apart


def _take_over_moved(store: Store, new: dict[str, str], gone: set[int]) -> set[str]:
    """Gives each row of ``gone`` (not in the trash, its file not found) the file of ``new`` that is its picture,
    renamed or moved (see the module's text for how that is known); returns the files taken over. Only files of a
    size some row has are read: a start-up with hundreds of new files and missing rows stays a matter of stats."""
    facts = store.file_facts(gone)
    by_size: dict[int, list[int]] = {}
    for rid, (_settings, size, _sha) in facts.items():
        if size is not None:
            by_size.setdefault(size, []).append(rid)
    found: dict[str, tuple[list[int], tuple[int, str]]] = {}
    for rel, path in new.items():
        try:
            rids = by_size.get(os.stat(path).st_size)
        except OSError:
            continue
        if not rids or (fingerprint := file_fingerprint(Path(path))) is None:
            continue
        settings = read_image_settings(Path(path)) if any(facts[rid][2] is None for rid in rids) else None
        same = [rid for rid in rids if _same_picture(fingerprint, settings, facts[rid])]
        if same:
            found[rel] = (same, fingerprint)
    claims = Counter(rid for rids, _fingerprint in found.values() for rid in rids)
    moves = [(rids[0], rel, size, sha) for rel, (rids, (size, sha)) in found.items()
             if len(rids) == 1 and claims[rids[0]] == 1]  # fmt: skip
    if moves:
        store.take_over(moves)
    for rid, rel, _size, _sha in moves:
        log.info("image %d was renamed or moved to %s: its entry follows it", rid, rel)
    return {rel for _rid, rel, _size, _sha in moves}


def _valid_name(rel: str) -> bool:
    """False for a name that is no valid text: on Linux a file name is any bytes, and one in another encoding
    (an old Latin-1 archive unpacked as is) reaches Python with surrogate escapes, which the database (UTF-8)
    refuses. Such a file is left where it is and named to the user, instead of stopping the start-up."""
    try:
        rel.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_name(path: str | Path) -> str:
    """``path`` for a message or the log, whatever bytes its name has (undecodable ones shown as "�")."""
    return os.fsencode(path).decode("utf-8", "replace")


def _learn_sizes(store: Store, on_disk: dict[str, str]) -> None:
    """Stores the file size of the rows an earlier version added without one (once: a stat each), so that
    such a picture, renamed later, is still known by its size and settings."""
    sizes = []
    for rel, rid in store.unsized().items():
        try:
            sizes.append((rid, os.stat(on_disk[rel]).st_size))
        except (KeyError, OSError):
            continue
    if sizes:
        store.set_file_sizes(sizes)


def reconcile(store: Store, data: DataDir) -> ReconcileReport:
    report = ReconcileReport()
    rows = store.all_paths()
    # The PNG signature is read only of files without a row: opening every file (30,000 at every start) took most
    # of the start-up. A file with a row is its picture, whatever is in it now (the gallery says "unreadable").
    on_disk = {rel: path for rel, path in png_paths(data.images).items() if rel in rows or is_png(path)}
    for rel in [rel for rel in on_disk if not _valid_name(rel)]:
        report.unnamed.append(shown_name(on_disk.pop(rel)))
        log.warning("not imported, its name is no valid text: %s", report.unnamed[-1])
    report.repaired = _finish_interrupted_moves(store, data, rows, on_disk)
    rows = store.all_paths()
    new = {rel: path for rel, path in on_disk.items() if rel not in rows}
    gone = {rid for rel, (rid, _missing, trashed) in rows.items() if not trashed and rel not in on_disk}
    moved = _take_over_moved(store, new, gone) if new and gone else set()
    report.moved = len(moved)
    if len(new) > len(moved):  # a first start with a folder of images reads each: it can take minutes
        log.info("importing %d new image(s) found in the images folder", len(new) - len(moved))
    imports = []
    for rel, path in sorted(new.items()):
        if rel not in moved:
            stat = os.stat(path)
            imports.append((rel, read_image_settings(Path(path)) or {}, stat.st_mtime, stat.st_size, None))
    for start in range(0, len(imports), _IMPORT_BATCH):
        store.add_images(imports[start : start + _IMPORT_BATCH])
        report.imported += len(imports[start : start + _IMPORT_BATCH])
    _learn_sizes(store, on_disk)
    rows = store.all_paths()  # the rows taken over have their new paths
    now_missing = [
        rid for rel, (rid, missing, trashed) in rows.items() if not trashed and not missing and rel not in on_disk
    ]
    back = [rid for rel, (rid, missing, trashed) in rows.items() if missing and rel in on_disk]
    if now_missing:
        store.set_missing(now_missing, True)
    if back:
        store.set_missing(back, False)
    report.missing = len(now_missing)
    report.found_again = len(back)
    return report
