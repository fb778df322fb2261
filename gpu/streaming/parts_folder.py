"""The parts folder of a quantize run (``OUT.safetensors.parts``) and what is known of it: its manifest, the files
the engine writes there (and what else goes with the folder: a file manager's), the checks that refuse a folder of
the user's or a link put there, its one deletion (only the engine's files, then the folder if empty), and what it
keeps for a run that resumes from it, in words. Whether a run resumes from it is ``gpu.streaming.resume``; the run
itself, which writes it, is ``gpu.streaming.engine`` (its blocks: ``gpu.streaming.block_loop``)."""

from __future__ import annotations

import json
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from gpu.atomic import SCRATCH_NAME, atomic_write_bytes, output_errors
from gpu.errors import OutputError, named_few
from gpu.output_folders import folder_problem
from gpu.paths import JUNCTION_TAG

MANIFEST = "manifest.json"
PARTS_SUFFIX = ".parts"  # OUT.safetensors -> OUT.safetensors.parts/, the unfinished run's folder
SAMPLES = "samples.safetensors"
ENGINE_VERSION = 2  # bump when the shard layout, manifest or sample recipe changes: old parts folders are discarded
# 2: per-file SHA-256 of the shards and samples in the manifest; the full settings kept for naming a mismatch


def parts_dir(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + PARTS_SUFFIX)


def read_manifest(parts: Path) -> dict:
    try:
        manifest = json.loads((parts / MANIFEST).read_bytes())
    except (OSError, ValueError):  # absent, unreadable, not UTF-8 or not JSON: nothing to resume
        return {}
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("done"), dict) else {}


def write_manifest(parts: Path, manifest: dict) -> None:
    atomic_write_bytes(parts / MANIFEST, json.dumps(manifest, indent=1).encode())


# The spilled block inputs under a parts folder: the preamble's outputs, then each block's (alternating). Nothing
# resumes from them (a resumed run propagates again through its finished blocks), so they go when no block needs
# them any more: at FLUX size they are GiBs that the final write needs, and a cancelled or failed run kept them.
SCRATCH_FOLDERS = ("act", "act0", "act1")


# Every file the engine writes into a parts folder, each a plain file only: its own, and safetensors' ".tmp<6
# random>" (save_file's scratch beside the path it is given, which a kill left in the parts folder while atomic
# writes wrote their temp file there; now inside atomic_path's private folders, gpu.atomic.SCRATCH_NAME). Besides
# these, its scratch folders: ``SCRATCH_FOLDERS`` by their exact names, ``SCRATCH_NAME`` and ``_OLD_SCRATCH``.
# Anything else is the user's (an "act7" folder too) and is never deleted. Matched whole (``fullmatch``): "$" also
# matches before a trailing newline, and "manifest.json\n" is a name a user's file can have.
_OWN_PARTS_FILE = re.compile(r"manifest\.json|samples\.safetensors|block-\d{4}\.safetensors|\.tmp\w{6}")

# What older builds' atomic writes left in a parts folder when killed, named ".<name>.<random>.tmp" (their mkstemp's
# and mkdtemp's prefix ".<name>."): first a temp file, then a scratch FOLDER holding the file being written and
# safetensors' scratch (until it was named ``SCRATCH_NAME``'s way). Either is the engine's, as a ``SCRATCH_NAME``
# folder is: a folder of that name goes with what it holds, a file, link or junction as itself. Counted as the
# user's (a plain file only, as the final names are), such a folder refused the whole parts folder: hours of blocks.
# Only their exact 8 random characters (tempfile's, as ``gpu.atomic.remove_stale_temps`` matches them): the folder goes
# with all it holds, and ".manifest.json.my-backup.tmp/" is a folder of the user's.
_OLD_SCRATCH = re.compile(r"\.(manifest\.json|samples\.safetensors|block-\d{4}\.safetensors)\.[a-z0-9_]{8}\.tmp")


# The files a finished block or the samples are kept in: what a run discarding the folder would lose.
_KEPT_FILE = re.compile(r"samples\.safetensors|block-\d{4}\.safetensors")

# What a file manager writes into any folder it shows (macOS Finder, Windows Explorer), compared in lower case as
# Windows names are: no file of the user's, so it neither hides the run nor keeps it from resuming, and goes with
# the folder.
OS_JUNK = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def _goes_with_the_folder(entry: Path) -> bool:
    """Whether the entry ``entry`` of a parts folder is the engine's or a file manager's, no file of the user's: by
    its name a scratch folder (``SCRATCH_FOLDERS``, ``SCRATCH_NAME``, ``_OLD_SCRATCH``; a link or file in its way
    goes as such, never followed), or a plain file of a name the engine (``_OWN_PARTS_FILE``) or a file manager
    (``OS_JUNK``) writes. Neither writes a folder, a link or a junction of such a name: one is the user's (a folder
    named "block-0001.safetensors" was deleted with everything in it), never deleted, and refuses the run up front."""
    name = entry.name
    if name in SCRATCH_FOLDERS or SCRATCH_NAME.fullmatch(name) or _OLD_SCRATCH.fullmatch(name):
        return True
    return bool(_OWN_PARTS_FILE.fullmatch(name) or name.lower() in OS_JUNK) and _plain_file(entry)


def _plain_file(entry: Path) -> bool:
    """Whether ``entry`` is a plain file by ``lstat`` (no folder, link or junction), or gone: nothing there then."""
    try:
        return stat.S_ISREG(entry.lstat().st_mode)
    except FileNotFoundError:
        return True


def foreign_entries(parts: Path) -> list[str]:
    """The names in the folder ``parts`` of what the engine does not write there (the user's files and folders),
    but for a file manager's own (``OS_JUNK``)."""
    with output_errors(parts):
        return sorted(p.name for p in parts.iterdir() if not _goes_with_the_folder(p))


def not_a_folder(parts: Path) -> str:
    """What is at ``parts`` where it is no folder of its own, by ``lstat``: "a symbolic link" (to a folder too: what
    is deleted through it is another folder's, another output's parts), or "a file"; "" for a folder, or nothing.
    The one rule of the run's first check, its check again before it replaces the folder, and every deletion."""
    try:
        status = parts.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return ""
    if stat.S_ISLNK(status.st_mode):
        return "a symbolic link"
    # A Windows junction is a folder to lstat, and what is deleted through it is its target's (gpu.paths.JUNCTION_TAG)
    if getattr(status, "st_reparse_tag", 0) == JUNCTION_TAG:
        return "a junction (a link to another folder)"
    return "" if stat.S_ISDIR(status.st_mode) else "a file"


def check_parts_folder(parts: Path) -> None:
    """OutputError unless ``parts`` is absent or a folder holding only what the engine writes there: the run
    deletes what the engine wrote there (``delete_parts``) when the settings differ (checked again just before)."""
    with output_errors(parts):
        in_the_way = not_a_folder(parts)
    if in_the_way:
        raise OutputError(f"{parts} is in the way: the quantizer keeps its resumable parts in a folder of that name",
                          "move or rename it, or choose another --out")  # fmt: skip
    if parts.is_dir():
        foreign = foreign_entries(parts)
        if foreign:
            raise OutputError(f"{parts} holds files the quantizer did not write ({named_few(foreign)}); "
                              "it would delete them with its parts folder",
                              "move them elsewhere, or choose another --out")  # fmt: skip


@dataclass(frozen=True)
class PartsLeft:
    """What stays of a parts folder ``delete_parts`` was asked to delete, and why (``words``)."""

    parts: Path
    not_a_folder: str = ""  # what is there instead ("a symbolic link", "a file"): nothing was deleted
    foreign: tuple[str, ...] = ()  # the user's files in it, which are never deleted
    why: str = ""  # why an entry of the engine's, or the folder, could not be deleted

    def words(self) -> str:
        if self.not_a_folder:
            return f"{self.parts} is not deleted: it is {self.not_a_folder} now, not the quantizer's folder"
        if self.foreign:
            own = f"nor could all of its own files there be ({self.why})" if self.why else "its own files there are"
            return (f"{self.parts} is kept: it holds files the quantizer did not write "
                    f"({named_few(list(self.foreign))}), which are not deleted; {own}")  # fmt: skip
        return f"{self.parts} could not be deleted ({self.why})"


def delete_parts(parts: Path) -> PartsLeft | None:
    """Deletes the parts folder ``parts`` as far as it is the engine's -> None once it is gone (or was gone already:
    what was asked), else what stays and why. The one deletion of a finished run, of a run replacing a folder made
    with other settings, and of ``delete_unfinished_run``; it raises only where ``parts`` cannot be looked at.

    Only what the engine writes there goes, one entry at a time, the manifest first (a folder half deleted is never
    taken as resumable), then the folder, only if it is empty. Each caller checked the folder before (as the run
    began, before the event that says the folder goes, under the output's lock), but caller code ran in between (a
    run of hours, the event's callback): rmtree deleted a file the user saved meanwhile, and a folder replaced by a
    symbolic link meanwhile had the files of the engine's names deleted in the link's target, another output's
    parts. Such a folder is not touched, and such files stay, with the folder."""
    instead = not_a_folder(parts)
    if instead:
        return PartsLeft(parts, not_a_folder=instead)
    own_gone = False
    try:
        if _goes_with_the_folder(parts / MANIFEST):
            (parts / MANIFEST).unlink(missing_ok=True)
        for entry in sorted(parts.iterdir()):
            if _goes_with_the_folder(entry):
                delete_entry(entry)
        own_gone = True
        parts.rmdir()  # refused while a file of the user's is in it, one saved a moment ago too
        return None
    except OSError as err:
        if not (parts.exists() or parts.is_symlink()):  # deleted meanwhile (another window): what was asked
            return None
        why = folder_problem(parts, err)
    try:
        foreign = tuple(foreign_entries(parts))
    except OutputError:
        foreign = ()
    return PartsLeft(parts, foreign=foreign, why="" if own_gone and foreign else why)


def delete_entry(entry: Path, ignore_errors: bool = False) -> None:
    """Deletes an entry of the engine's in a parts folder, if there: a scratch folder (spilled inputs, atomic writes'
    temps) with what it holds; a file, or a link or junction in a scratch folder's way, as itself (never what it
    leads to, ``not_a_folder``'s rule). The one rule of ``delete_parts`` and of the run's own scratch removal.
    ``ignore_errors``: a folder's files that cannot go are skipped, the others deleted (``shutil.rmtree``'s)."""
    if not_a_folder(entry) or not entry.is_dir():
        entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(entry, ignore_errors=ignore_errors)


def remove_finished_parts(parts: Path, out_path: Path) -> str:
    """Deletes the parts folder ``parts`` of a run whose model ``out_path`` is written and verified -> "" once it is
    gone, else what stays and why, in words (said, never raised: the model is complete and the run has finished).
    A file the user saved in it during the run, hours long for a big model, stays with the folder; a run on this
    output refuses that folder until they are moved (``check_parts_folder``)."""
    left = delete_parts(parts)
    if left is None:
        return ""
    if left.not_a_folder:
        return f"{left.words()}; {out_path.name} is complete"
    if left.foreign:
        return (f"{left.words()}. Move them elsewhere: a run into {out_path.name} refuses the folder while they are "
                "in it")  # fmt: skip
    return f"{left.words()}; {out_path.name} is complete, and the folder is of no use now: delete it yourself"


def parts_in_the_way(parts_folder: Path) -> str:
    """Why a run refuses ``parts_folder`` (a file or link of that name, a folder holding files the engine does not
    write there), in the words it refuses it with; "" when it does not."""
    try:
        check_parts_folder(parts_folder)
    except OutputError as err:
        return str(err)
    return ""


def has_manifest(parts_folder: Path) -> bool:
    """Whether ``parts_folder`` keeps a readable manifest: without one nothing in it can be resumed (a folder
    being deleted, whose manifest goes first; a damaged or unreadable one)."""
    return bool(read_manifest(parts_folder))


def discards_nothing(parts_folder: Path) -> bool:
    """Whether a run that discards ``parts_folder`` (``resumes_from`` False) loses nothing with it: it has no
    readable manifest and holds no block or samples file, nor anything of the user's, only what a killed run leaves
    (temporary files, spilled block inputs), or nothing. Block files without their manifest (a deletion cut short, a
    damaged manifest) are not the run's to delete unasked: the wizard lists the folder, to delete."""
    if not_a_folder(parts_folder) or not parts_folder.is_dir() or has_manifest(parts_folder):
        return False
    try:  # with a file of the user's in it, a run refuses it (``check_parts_folder``): it was offered as free
        return all(_goes_with_the_folder(p) and not _KEPT_FILE.fullmatch(p.name) for p in parts_folder.iterdir())
    except OSError:
        return False


def kept_words(parts: Path, resume: bool = True) -> str:
    """What a run that stopped keeps in ``parts`` for the next one, as the end of a sentence ("" when nothing: the
    hint of ``disk_full_said`` then does not send the user to resume). ``resume`` False: the run was asked to start
    over (``QuantizeConfig.resume``), and the same command again would start over again instead of resuming: said."""
    kept = kept_in(parts)
    if not kept:
        return ""
    them = "it" if kept.startswith("1 finished block ") else "them"
    again = "" if resume else ", unless it is given --no-resume again"
    return f"; {kept}, and a run with the same settings resumes from {them}{again}"


def work_words(manifest: dict) -> str:
    """The finished work a parts folder's ``manifest`` records, in words: its blocks, else its samples."""
    done = len(manifest.get("done", {}))
    return ("the finished block" if done == 1 else f"the {done} finished blocks") if done else "the calibration samples"


def work_kept(parts_folder: Path) -> str:
    """What the parts folder ``parts_folder`` keeps for a run that resumes from it, as its manifest records it, in
    words ("the calibration samples and 2 finished blocks"); "" when nothing (no readable manifest). A run stopped
    once its samples were recorded but before its first block was finished was said to keep "the blocks finished so
    far", of which there were none."""
    manifest = read_manifest(parts_folder)
    done = len(manifest.get("done", {}))
    blocks = f"{done} finished block{'' if done == 1 else 's'}" if done else ""
    samples = "the calibration samples" if _samples_kept(parts_folder, manifest) else ""
    return " and ".join(w for w in (samples, blocks) if w)


def kept_in(parts_folder: Path) -> str:
    """``work_kept`` as a clause: "the calibration samples and 2 finished blocks are kept in P"; "" when nothing.
    The one wording of what a stopped run keeps, for the engine's messages and its callers' notes alike."""
    kept = work_kept(parts_folder)
    if not kept:
        return ""
    are = "is" if kept == "1 finished block" else "are"  # without its samples (a manifest write the disk refused)
    return f"{kept} {are} kept in {parts_folder}"


def _samples_kept(parts: Path, manifest: dict) -> bool:
    """Whether the parts folder ``parts`` keeps samples its ``manifest`` records: samples written before a manifest
    write the disk refused are recorded again by the next run, not resumed from."""
    return isinstance(manifest.get("samples"), dict) and (parts / SAMPLES).is_file()


def blocks_kept(parts_folder: Path) -> int:
    """How many finished blocks the parts folder ``parts_folder`` (``parts_dir(out)``) keeps for a resume, as its
    manifest says (0 without a readable one)."""
    return len(read_manifest(parts_folder).get("done", {}))
