"""Save as… of a gallery image: a byte-for-byte copy of its PNG (its generation settings come along), made on a thread
of its own (``save_copy``). Its checks (the picture there, a folder or a file of the name there) and its copy ran on
the window's thread: a target on a network share that hangs, or a drive that sleeps, froze the window for the whole
copy. The status bar says "Saving …" meanwhile, and the same words as before once it ended. Saves to other files go
on side by side; a second one to the file a save is writing is refused, said. A quit waits for the saves under way
(``ImageSave.finish``)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PySide6.QtCore import QObject, Signal

from app.background import Lookup, Lookups
from app.data_dir import DataDir, ImagesNotReadable
from app.engine_errors import EngineError, classify
from app.image_files import gallery_file
from gpu.atomic import atomic_write_with
from gpu.errors import UserError
from gpu.generation.png_metadata import png_name_problem

log = logging.getLogger(__name__)
# How long a quit waits for the saves under way (``ImageSave.finish``): a sleeping drive wakes in seconds; one that
# does not answer by then is given up, its target left as it was (the copy is written beside it, then renamed)
QUIT_WAIT_S = 30.0


def put_back(then: str, damaged: bool = False) -> str:
    """The remedy said for a gallery image whose file, at the place its message names, is missing (``damaged``: or
    cannot be read): the picture put back there, then ``then`` (what failed, tried again)."""
    good_copy = " (or replace a damaged file with a good copy)" if damaged else ""
    return f"Put the picture back at that place{good_copy}, then {then}."


def images_away_said(data: DataDir) -> tuple[str, str] | None:
    """Why a gallery image's file cannot be read, where the images folder itself is away (moved, its drive
    unplugged; ``DataDir.images_away``), as (problem, what to do), in the words of the line above the grid: said as
    the picture missing, its remedy (put it back at that place) made a new images folder there. A folder only its
    listing is refused (``ImagesNotReadable``) is in place: a picture not found there is missing. Looks at the disk."""
    away = data.images_away()
    if away is None or isinstance(away, ImagesNotReadable):
        return None
    said = classify(away)
    return f"the images folder holding it is away. {said.message.removesuffix('.')}", said.hint


def png_target(asked: Path) -> tuple[Path, bool]:
    """(the file Save as writes for the name ``asked`` the dialog gave, whether ``.png`` was added to it): added to a
    name without a suffix."""
    return (asked.with_suffix(".png"), True) if not asked.suffix else (asked, False)


@dataclass(frozen=True)
class Saved:
    """How a Save as ended: the picture's file ``source`` copied to ``target`` (``written``), or why not
    (``problem``, ``hint``)."""

    source: Path
    target: Path
    written: Path | None = None
    rewritten: Path | None = None  # the gallery image's file written over, as the gallery names it: its row redrawn
    problem: str = ""
    hint: str = "Pick another folder, or a name ending in .png."

    def error(self) -> EngineError:
        """The refusal, for the user: the file and the reason, and what to do."""
        return EngineError("user", f"The image {self.source.name} could not be saved as {self.target}: "
                                   f"{self.problem}.", self.hint)  # fmt: skip


def save_copy(data: DataDir, source: Path, asked: Path) -> Saved:
    """On the save's thread: the picture in ``source`` copied to the file ``asked`` names (``png_target``), written
    atomically; a file of that name already there is not replaced where ``.png`` was added (refused), and a folder
    of the name is refused as a folder. Looks at the disk: never on the window's thread."""
    target, suffixed = png_target(asked)
    if not source.is_file() and (away := images_away_said(data)) is not None:
        return Saved(source, target, problem=away[0], hint=away[1])
    if not source.is_file():
        # Named in full: the hint is to put it back there, and no other folder or name would help
        return Saved(source, target, problem=f"its file {source} is missing",
                     hint=f"{put_back('save it again')} Its settings can still be reused (Reuse settings).")
    try:
        # Opened first, then kept open: a Delete of the image while its target is judged or written (Save as
        # clicked first, its target on a share that answers slowly) moved the file to the trash under the copy,
        # which failed, said as "No such file or directory" of the target. Copied from the file as it was.
        picture = open(source, "rb")  # noqa: SIM115 - closed by ``_copied_from`` before the copy is published
    except OSError as exc:
        return Saved(source, target, problem=f"its file could not be read ({exc.strerror or exc})",
                     hint=put_back("save it again", damaged=True))  # fmt: skip
    with picture:
        return _copied_to(data, picture, source, target, suffixed)


def _copied_to(data: DataDir, picture: BinaryIO, source: Path, target: Path, suffixed: bool) -> Saved:
    """``save_copy``'s target judged (a folder of the name, a file there where ``.png`` was added, a name no PNG may
    have) and, where none refuses it, the open file ``picture`` (``source``'s) copied there."""
    if target.is_dir():
        # Before the suffix's check: its hint (pick that name itself to replace it) was then refused again, a folder
        # being nothing to replace.
        return Saved(source, target, problem=f"{target.name} is a folder there, not a file",
                     hint=f"Pick another name, or open the folder {target.name} in the dialog and save into it.")
    if suffixed and os.path.lexists(target):
        # The dialog asked before replacing the name it gave, not this one: Qt's own dialog and GTK's add no suffix,
        # so "portrait" typed beside portrait.png replaced that picture unasked.
        return Saved(source, target, problem="a file of that name is already there, and it was left as it is",
                     hint=f"Pick another name, or pick {target.name} itself in the dialog to replace it.")
    if problem := png_name_problem(target):
        return Saved(source, target, problem=problem)
    try:
        written = atomic_write_with(target, lambda tmp: _copied_from(picture, tmp))
    except UserError as exc:  # the write failed (atomic_write_with names the target); nothing was replaced
        return Saved(source, target, problem=str(exc).removeprefix(f"cannot write {target}: "),
                     hint=exc.hint or Saved.hint)  # fmt: skip
    return Saved(source, target, written, gallery_file(data, written))


def _copied_from(picture: BinaryIO, tmp: Path) -> None:
    """The bytes of the open file ``picture`` copied to ``tmp``, then ``picture`` closed: before the copy replaces
    its target, which may be that very file (Save as over the image's own file; Windows refuses to replace a file
    open without its leave)."""
    with picture, open(tmp, "wb") as out:
        shutil.copyfileobj(picture, out)


class ImageSave(QObject):
    """Runs the saves Save as asks for (``save``), one thread each; ``tell``: a passing word for the status bar,
    ``say``: a refusal for a dialog, ``rewritten``: a gallery image's file was written over (its row redrawn)."""

    ended = Signal(object)  # Saved, on the Qt thread, once said

    def __init__(self, data: DataDir, tell: Callable[[str], object], say: Callable[[EngineError], object],
                 rewritten: Callable[[Path], object], parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._data = data
        self._tell = tell
        self._say = say
        self._rewritten = rewritten
        self._lookups = Lookups("Gallery", self)
        self._lookups.ended.connect(self._copied)
        self._under_way: dict[Path, tuple[Path, Lookup]] = {}  # target -> (its source, its save), till said

    def save(self, source: Path, asked: Path) -> None:
        """The picture in ``source`` saved at the name ``asked`` on a thread (``save_copy``), "Saving …" said
        meanwhile, its end said as before. Refused at once while another save writes that file: the two copies
        raced, and the last one to end was the file kept."""
        target, _suffixed = png_target(asked)
        if (other := self._under_way.get(target)) is not None:
            self._end(Saved(source, target, problem=f"the image {other[0].name} is still being saved there",
                            hint="Wait till the status bar says it was saved, then save again."))  # fmt: skip
            return
        lookup = self._lookups.start("saving an image", lambda: save_copy(self._data, source, asked))
        self._under_way[target] = (source, lookup)
        self._tell(f"Saving the image {source.name} as {target}…")

    def writes(self, path: Path) -> bool:
        """Whether a save under way writes the file ``path`` (as a name: no look at the disk, the window's thread
        asks)."""
        return any(os.path.normcase(os.path.abspath(target)) == os.path.normcase(os.path.abspath(path))
                   for target in self._under_way)  # fmt: skip

    @property
    def saving(self) -> bool:
        """Whether a save is under way."""
        return bool(self._under_way)

    def finish(self, timeout: float | None = None) -> None:
        """The app quits: the saves under way waited for, ``timeout`` seconds in all at most (``QUIT_WAIT_S``), and
        logged (a dialog would hold the quit); one not ended by then is logged as not saved, its target left as it
        was."""
        timeout = QUIT_WAIT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for target, (source, lookup) in self._under_way.items():
            if not lookup.wait(max(0.0, deadline - time.monotonic())):
                log.warning("the image %s was still being saved as %s after %.0f s at the quit: not saved, the file "
                            "there left as it was", source, target, timeout)  # fmt: skip
            elif (saved := _saved_by(lookup, source, target)).written is None:
                log.warning("as the app quit: %s", saved.error().message)
        self._under_way.clear()  # their ends, handed to this thread later, are dropped (``_copied``)

    def _copied(self, lookup: Lookup) -> None:
        """On the Qt thread: a save ended; said, unless the quit took it (``finish``)."""
        target = next((t for t, (_source, each) in self._under_way.items() if each is lookup), None)
        if target is not None:
            source, _lookup = self._under_way.pop(target)
            self._end(_saved_by(lookup, source, target))

    def _end(self, saved: Saved) -> None:
        """``saved`` said: the file written (a gallery image's redrawn), or why not."""
        if saved.written is None:
            self._say(saved.error())
        else:
            if saved.rewritten is not None:
                self._rewritten(saved.rewritten)
            self._tell(f"The image {saved.source.name} was saved as {saved.written}.")  # else: no sign
        self.ended.emit(saved)


def _saved_by(lookup: Lookup, source: Path, target: Path) -> Saved:
    """How the save ``lookup`` of ``source`` to ``target`` ended: its ``Saved``, or an error it raised in words."""
    if lookup.error is None:
        return lookup.result
    return Saved(source, target, problem=f"it could not be copied ({lookup.error})")
