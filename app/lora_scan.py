"""A LoRA folder read on a thread of its own (``FolderScan``, ``read_folder``, run by
``LoraFolderScan.scan_folder``), and its words: the files it skipped as no usable FLUX.1 LoRA (``Skipped``), counted
by kind on the panel and listed with why under "Skipped files…" (``skipped_details``), and what went wrong with the
folder (``nothing_added``, ``scan_trouble``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from app.engine_errors import EngineError
from app.lora_header import NOT_LORA, UNREADABLE, UNUSABLE, FileRead, read_file
from app.wording import counted, were
from gpu.errors import named_few
from gpu.lora.folder import MAX_DEPTH, FolderListing, list_lora_files

log = logging.getLogger(__name__)


@dataclass
class FolderScan:
    """A folder's LoRA files being read on a thread of their own (``LoraFolderScan.scan_folder``). The thread fills
    in ``listing``, then ``reads`` (each file's ``named_path`` and ``FileRead``), or ``error`` (the folder cannot be
    listed) or ``broke`` (why the reading broke off), in ``read_folder``; ``LoraFolderScan`` then hands it to the
    Qt thread."""

    folder: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    listing: FolderListing | None = None
    reads: list[tuple[Path, FileRead]] = field(default_factory=list)
    error: OSError | None = None
    broke: str = ""


def read_folder(scan: FolderScan, progress: Callable[[int, int], None]) -> None:
    """On the scan's thread: the folder listed, then each file's stamp and header read into ``scan``, ``progress``
    told (files read, files listed) before each, until ``scan.cancel`` is set. Whatever breaks the reading off ends
    it, noted in ``scan``: an error here left "Reading LoRAs…" on the panel for good."""
    try:
        scan.listing = listing = list_lora_files(scan.folder, scan.cancel.is_set)
        for path in listing.files:
            if scan.cancel.is_set():
                return
            progress(len(scan.reads), len(listing.files))
            read = read_file(path)
            scan.reads.append((read.named, read))
    except OSError as exc:  # the folder itself cannot be listed (its files' errors are in their headers)
        scan.error = exc.with_traceback(None)  # its frames hold the scan and the state: a reference cycle
    except Exception as exc:
        log.exception("reading the LoRAs of %s failed", scan.folder)
        scan.broke = str(exc) or type(exc).__name__


def nothing_added(scan: FolderScan) -> EngineError:
    """Why a scanned folder gave no row: it cannot be listed, its reading broke off at once, it holds no LoRA
    file (its pickle files named: a folder of them only added nothing, without a word), or none that is a usable
    FLUX.1 LoRA (what its files are, counted by kind)."""
    folder, listing = scan.folder, scan.listing or FolderListing()
    if scan.error is not None:
        return EngineError("user", f"The folder {folder} cannot be read ({scan.error.strerror or scan.error}).",
                           "Check that you may open it, or pick another folder of LoRAs.")  # fmt: skip
    if scan.broke:
        return EngineError("internal", f"Reading the LoRAs of {folder} broke off ({scan.broke}); none was added.",
                           "Add the folder again; the log file has the details.")  # fmt: skip
    unread = [str(p) for p in listing.unreadable]
    unread_words = f"; {counted(len(unread), 'subfolder')} could not be read: {named_few(unread)}" if unread else ""
    if scan.reads:  # files, none of them a usable FLUX.1 LoRA
        return EngineError(
            "user",
            f"The folder {folder} and its subfolders hold no FLUX.1 LoRA: of their "
            f"{counted(len(scan.reads), '.safetensors file')}, {_skipped_words(skipped_files(scan.reads))}"
            f"{unread_words}.",
            'Pick the folder that holds your FLUX.1 LoRAs ("Skipped files…" in the LoRA panel names each file and '
            "why).",
        )
    pickles = [p.name for p in listing.pickles]
    also = (f" ({named_few(pickles)} {'is a pickle file' if len(pickles) == 1 else 'are pickle files'}, "
            "which are not used: they can run code when opened)") if pickles else ""  # fmt: skip
    also += unread_words  # the LoRAs may be in those
    hint = "Pick the folder that holds your FLUX.1 LoRAs (.safetensors)"
    return EngineError("user", f"The folder {folder} and its subfolders hold no .safetensors LoRA files{also}.",
                       f"{hint}{', and check that you may open those subfolders' if unread else ''}.")  # fmt: skip


class Skipped(NamedTuple):
    """A file of a folder that is no usable FLUX.1 LoRA, so no row was made for it: its ``LoraHeader.kind`` and
    ``problem``."""

    path: Path
    kind: str
    problem: str


def skipped_files(reads: list[tuple[Path, FileRead]]) -> tuple[Skipped, ...]:
    """The files of ``reads`` (a folder's, as read) that are no usable FLUX.1 LoRA."""
    return tuple(Skipped(path, read.header.kind or UNUSABLE, read.header.problem)
                 for path, read in reads if read.header.problem)  # fmt: skip


def _kind_words(kind: str, n: int) -> str:
    """``n`` files of one ``LoraHeader.kind``: "290 LoRAs for Stable Diffusion 1.x/2.x/SDXL", "1 file that is no
    LoRA (a checkpoint, a VAE…)"."""
    one = n == 1
    if kind == UNREADABLE:
        return f"{counted(n, 'file')} that cannot be read or {'is' if one else 'are'} damaged"
    if kind == NOT_LORA:
        examples = "a checkpoint, a VAE" if one else "checkpoints, VAEs"
        return f"{counted(n, 'file')} that {'is' if one else 'are'} no LoRA ({examples}…)"
    if kind == UNUSABLE:
        return f"{counted(n, 'LoRA')} this app cannot apply"
    return f"{counted(n, 'LoRA')} for {kind.split(' (')[0]}"  # another model's: its family, less "(UNet)"


def _by_kind(skipped: tuple[Skipped, ...]) -> dict[str, list[Skipped]]:
    """``skipped`` by kind, the kind of the most files first."""
    kinds: dict[str, list[Skipped]] = {}
    for file in skipped:
        kinds.setdefault(file.kind, []).append(file)
    return dict(sorted(kinds.items(), key=lambda item: -len(item[1])))


def _skipped_words(skipped: tuple[Skipped, ...]) -> str:
    """ "290 LoRAs for Stable Diffusion 1.x/2.x/SDXL, 20 files that are no LoRA (checkpoints, VAEs…)"."""
    return ", ".join(_kind_words(kind, len(files)) for kind, files in _by_kind(skipped).items())


def scan_summary(folder: Path, added: int, listed: int, skipped: tuple[Skipped, ...]) -> str:
    """The panel's words once a scanned folder's rows are added: how many FLUX.1 LoRAs, how many of its files
    were listed already, and how many it skipped, by kind."""
    return " ".join([
        f"Added {counted(added, 'FLUX.1 LoRA')} from {folder}.",
        *([f"{listed} {were(listed)} listed already."] if listed else []),
        *([f"Skipped {counted(len(skipped), 'file')}: {_skipped_words(skipped)}."] if skipped else []),
    ])  # fmt: skip


def skipped_details(folder: Path, skipped: tuple[Skipped, ...]) -> str:
    """Each skipped file of ``folder`` (its path below it) and why, under its kind: what "Skipped files…" shows,
    and the log keeps."""

    def below(path: Path) -> str:
        try:
            return str(path.relative_to(folder))
        except ValueError:  # resolved through a link to outside the folder
            return str(path)

    return "\n\n".join(
        f"{_kind_words(kind, len(files))}:\n" + "\n".join(f"  {below(f.path)}: {f.problem}" for f in files)
        for kind, files in _by_kind(skipped).items()
    )


def scan_trouble(scan: FolderScan) -> EngineError | None:
    """What a scan that added rows could not look into (subfolders that cannot be listed, or too deep), or why
    it broke off: None when it read everything."""
    listing = scan.listing or FolderListing()
    parts = []
    if scan.broke:
        parts.append(f"Reading the LoRAs of {scan.folder} broke off ({scan.broke}); the FLUX.1 LoRAs of the "
                     f"{len(scan.reads)} files read until then were added.")  # fmt: skip
    if listing.unreadable:
        names = [str(p) for p in listing.unreadable]
        parts.append(
            f"{counted(len(names), 'subfolder')} of {scan.folder} could not be read, so no LoRA in "
            f"{'it' if len(names) == 1 else 'them'} was added: {named_few(names)}."
        )
    if listing.too_deep:
        names = [str(p) for p in listing.too_deep]
        parts.append(
            f"Subfolders more than {MAX_DEPTH} levels below {scan.folder} were not looked into: {named_few(names)}."
        )
    if not parts:
        return None
    return EngineError(
        "user",
        "\n\n".join(parts),
        "Check that you may open those folders, or pick the folder of "
        "LoRAs itself (or one below it), then add it again: the LoRAs listed already stay.",
    )
