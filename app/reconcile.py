"""Start-up reconciliation of the images folder with the database, after a crash or manual file changes.

A PNG without a row (the app died between writing the file and committing the row, or the user copied it
in) is imported from its own metadata; a folder or a file without the PNG signature is not an image and is left
alone (not imported, not touched). A row whose file is gone is kept and flagged ``missing`` so the user
sees what was lost instead of silently forgetting it; it is un-flagged if the file comes back.

A delete or an undo interrupted between moving the file and committing its row is finished the safe way: an
image whose row is not in the trash but whose file is comes back into the gallery; a trashed row whose file was
already moved back is taken out of the trash. A file copied in under the name of an image in the trash is
imported, and the trashed image is renamed so that both can be seen (never overwritten on undo).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.data_dir import DataDir
from app.image_files import is_png, png_files, read_image_settings, relative, rename_in_trash, restore_from_trash
from app.store import Store

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    imported: int = 0
    missing: int = 0
    found_again: int = 0
    repaired: int = 0  # deletes / undos interrupted half-way, finished
    unnamed: list[str] = field(default_factory=list)  # PNGs not imported: their names are no valid text (shown)


def _finish_interrupted_moves(store: Store, data: DataDir, on_disk: dict[str, object]) -> int:
    repaired = 0
    in_trash_folder = {p.relative_to(data.trash).as_posix() for p in png_files(data.trash) if p.is_file()}
    for rel, (row_id, _missing, trashed) in store.all_paths().items():
        in_trash = rel in in_trash_folder
        if not trashed and rel not in on_disk and in_trash and is_png(data.trash / rel):
            # deleted, but the app died before the row said so: the deletion never happened
            rel_back = restore_from_trash(data, rel)
            on_disk[rel_back] = data.images / rel_back
            repaired += 1
        elif trashed and rel in on_disk and not in_trash:  # brought back, but the row was not updated: finish
            store.set_trashed(row_id, False)
            repaired += 1
        elif trashed and rel in on_disk:  # another image now has the trashed one's name: give the trashed a new one
            store.set_path(row_id, rename_in_trash(data, rel))
    return repaired


def _valid_name(rel: str) -> bool:
    """False for a name that is no valid text: on Linux a file name is any bytes, and one in another encoding
    (an old Latin-1 archive unpacked as is) reaches Python with surrogate escapes, which the database (UTF-8)
    refuses. Such a file is left where it is and named to the user, instead of stopping the start-up."""
    try:
        rel.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_name(path: Path) -> str:
    """``path`` for a message or the log, whatever bytes its name has (undecodable ones shown as "�")."""
    return os.fsencode(path).decode("utf-8", "replace")


def _hidden(data: DataDir, path: Path) -> bool:
    # Not only hidden files: a write killed before its rename leaves its complete PNG in atomic_path's hidden
    # scratch folder (".<name>.<random>.tmp/new.png"), which is no gallery image.
    return any(part.startswith(".") for part in path.relative_to(data.images).parts)


def reconcile(store: Store, data: DataDir) -> ReconcileReport:
    report = ReconcileReport()
    on_disk = {relative(data, p): p for p in png_files(data.images) if not _hidden(data, p) and is_png(p)}
    for rel in [rel for rel in on_disk if not _valid_name(rel)]:
        report.unnamed.append(shown_name(on_disk.pop(rel)))
        log.warning("not imported, its name is no valid text: %s", report.unnamed[-1])
    report.repaired = _finish_interrupted_moves(store, data, on_disk)
    rows = store.all_paths()
    for rel, path in sorted(on_disk.items()):
        if rel in rows:
            continue
        settings = read_image_settings(path) or {}
        store.add_image(rel, settings, created=path.stat().st_mtime)
        report.imported += 1
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
