"""Start-up reconciliation of the images folder with the database, after a crash or manual file changes.

A PNG without a row (the app died between writing the file and committing the row, or the user copied it
in) is imported from its own metadata; a folder or a file without the PNG signature is not an image and is left
alone (not imported, not touched). A row whose file is gone is kept and flagged ``missing`` so the user
sees what was lost instead of silently forgetting it; it is un-flagged if the file comes back.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.data_dir import DataDir
from app.image_files import is_png, read_image_settings, relative
from app.store import Store


@dataclass
class ReconcileReport:
    imported: int = 0
    missing: int = 0
    found_again: int = 0


def reconcile(store: Store, data: DataDir) -> ReconcileReport:
    report = ReconcileReport()
    on_disk = {relative(data, p): p for p in data.images.rglob("*.png") if not p.name.startswith(".") and is_png(p)}
    rows = store.all_paths()
    for rel, path in sorted(on_disk.items()):
        if rel in rows:
            continue
        settings = read_image_settings(path) or {}
        store.add_image(rel, settings, created=path.stat().st_mtime)
        report.imported += 1
    now_missing = [rid for rel, (rid, missing, trashed) in rows.items() if not trashed and not missing
                   and rel not in on_disk]
    back = [rid for rel, (rid, missing, trashed) in rows.items() if missing and rel in on_disk]
    if now_missing:
        store.set_missing(now_missing, True)
    if back:
        store.set_missing(back, False)
    report.missing = len(now_missing)
    report.found_again = len(back)
    return report
