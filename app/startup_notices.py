"""What the start-up checks and repairs tell the user: the notices the window shows once it is up (``AppController
.notices``): a check of the images folder that failed, images whose names are not valid text, a gallery database
lost or damaged, LoRAs of the last session that could not be switched on again, a models folder on a drive that is
unplugged."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from app.data_dir import DataDir
from app.engine_errors import EngineError
from app.reconcile import ReconcileReport, Recovery, check_folder
from app.store import Store
from app.store_recovery import OpenedStore
from app.wording import counted
from gpu.errors import named_few

if TYPE_CHECKING:
    from app.lora_state import NotRestored

log = logging.getLogger(__name__)


def check_images_folder(store: Store, data: DataDir) -> tuple[ReconcileReport, dict[str, str], EngineError | None]:
    """The images folder checked against the database, before the window shows: (the check's report, the new
    files it found, a notice when the check failed). The new files are imported once the window is up
    (``FolderImport``, ``MainWindow.start``): read before, a first start with 30,000 of them showed nothing for
    90 s, as if hung. A failed check gives an empty report and no new files: the next start finds them."""
    try:
        report, new = check_folder(store, data)
    except (sqlite3.Error, OSError) as exc:  # e.g. a full disk: the app still starts, with what is there
        log.exception("start-up gallery check failed")
        return ReconcileReport(), {}, EngineError("notice", "The gallery could not be checked against the images "
                                                  f"folder {data.images}: {exc}.",
                                                  "Some images may be missing from the gallery until the next "
                                                  "start.")  # fmt: skip
    return report, new, None


def database_notices(data: DataDir, opened: OpenedStore, recovery: Recovery | None, report: ReconcileReport
                     ) -> list[EngineError]:  # fmt: skip
    """What the start with the database ``opened`` has to say: the images of ``report`` whose names are not valid
    text, a database that was missing or damaged (``recovery``: what the re-import gives back from it)."""
    notices = []
    if report.unnamed:
        unnamed = report.unnamed
        notices.append(EngineError(
            "notice", f"{counted(len(unnamed), 'image')} in {data.images} could not be added to the gallery: "
            f"{'its name is' if len(unnamed) == 1 else 'their names are'} not valid text "
            f"({named_few(unnamed)}).", "Rename the files (any name of letters and digits); they are added "
            "at the next start. They were left as they are."))
    if opened.damaged_copy is None and (opened.rebuilt or opened.journals):
        notices.append(no_database_notice(data, opened.rebuilt, opened.journals))
    elif opened.damaged_copy is not None:
        favorites = len(recovery.favorites) if recovery is not None else 0
        notices.append(EngineError(
            "notice",
            f"The gallery database was damaged ({opened.damage}). It was kept as {opened.damaged_copy} and "
            f"a new one was started: the images in {data.images} are imported into it again (the status bar "
            f"says how far), with the {counted(favorites, 'favorite')} and the "
            f"{counted(len(opened.store.prompts()), 'prompt')} of the history read back from the damaged one.",
            "Prompts that never made an image, and the trash's undo list, may be missing.",
        ))  # fmt: skip
    return notices


def models_away_notice(data: DataDir) -> EngineError | None:
    """What to say of a start whose models folder is on a drive that is unplugged (``DataDir.models_away``): the
    app runs without it, and uses it again once the drive is back. None when the folder could be used."""
    if not data.models_away:
        return None
    return EngineError(
        "notice", f"The models folder cannot be reached: {data.models_away}. The built-in models work; the models "
        "kept there are listed as missing, and no quantized model can be saved there until it is back.",
        "Plug in or mount the drive the link leads to: its models can be picked again at once, and the models "
        "folder is searched for new models again at the next start.")  # fmt: skip


def lora_not_restored_notice(said: NotRestored) -> EngineError:
    """A LoRA of the last session not restored as saved (a file that could not be switched on again, a strength
    that is no number), as ``LoraState.restore`` says it."""
    return EngineError("notice", said.text, said.hint)


def no_database_notice(data: DataDir, pictures: bool, journals: list[Path]) -> EngineError:
    """What to say of a start with no gallery database though one was used before: ``pictures`` in the images
    folder (often a gallery copied to a new computer without it: nothing lost, so no alarm), ``journals`` it left,
    kept aside (``OpenedStore.journals``). Only a -wal or -journal may hold changes: a -shm is an index SQLite
    makes again, kept aside with them but never named as data."""
    name = data.database.name
    changes = [p.name for p in journals if not p.name.startswith(f"{name}-shm.")]
    kept = f"was kept aside as {' and '.join(p.name for p in journals)}"
    if changes:
        kept += f" ({' and '.join(changes)} may hold the database's latest changes)"
    if pictures:
        said = (f"No gallery database was found at {data.database}, though {data.images} holds pictures (copied in "
                "without it, or the database was deleted). They are being added to a new gallery (the status bar "
                "says how far) and the prompt history is filled from their prompts.")  # fmt: skip
        if journals:
            said += f" What the database left beside it {kept}."
        hint = (f"If you have the {name} that goes with them (the old computer's data folder, a backup), quit Nibble "
                f"Studio and put it at {data.database} to get its stars and history back")  # fmt: skip
    else:
        said = (f"No gallery database was found at {data.database}, only what it left beside it (the database was "
                f"deleted, or lost in a crash). A new gallery was started; what the database left {kept}.")  # fmt: skip
        hint = (f"If the deleted {name} can be found (the recycle bin, a backup), quit Nibble Studio and put it at "
                f"{data.database} to get its stars and prompt history back")  # fmt: skip
    wal = next((p for p in journals if p.name.startswith(f"{name}-wal.")), None)
    if wal is not None:
        hint += (f"; if it is the very file that went missing (from the recycle bin), also rename {wal.name} back to "
                 f"{name}-wal beside it")  # fmt: skip
    return EngineError("notice", said, hint + ".")
