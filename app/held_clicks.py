"""Generate clicked while the LoRA copy check (``LoraTwins``) still reads the files of the rows switched on, on its
thread (or the header of a file just added is read, ``LoraAdds``, or the files of an image restored, whose LoRAs are
switched on once read: ``LoraHashSearch.restoring``): the job was queued, and its engine refused a
pair of copies only once the model had loaded (a minute for FLUX.1), in words of its own. The click now waits for
the read ("Checking LoRA files…"), never reading a file on the window's thread, and is then taken as a click after
it is: the job queued, or refused as the panel refuses a pair of copies. The job is the prompt panel's as it was at
the click (built then, as a queued job is: a prompt typed meanwhile is the next one's), with the LoRAs switched on
when the read ends (what the check judged, marked in the panel then). Cancel (Esc) with no job running, or Cancel
all, drops the click; so does another image restored before the LoRA files of the one clicked for were read
(``REPLACED``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from PySide6.QtCore import QObject, Qt

from app.engine_errors import EngineError
from app.generation_state import JobState
from app.lora_state import LoraState, ModelJudge
from gpu.generation.request import GenerationRequest

CHECKING = "Checking LoRA files… the job is queued once they are read"  # one click held (``checking_words``)
CANCELLED = "Cancelled before the LoRA files were read: no job was queued"
# Said when another image took the place of the one whose LoRA files the clicks waited for (``LoraHashSearch.replaced``)
REPLACED = ("Generate cancelled: another image's settings were restored before the LoRA files of the image you "
            "clicked Generate for were read, so no job was queued (it would have mixed the two images). Click "
            "Generate again.")  # fmt: skip
# What Esc says of one click held (``going_on_words``)
GOING_ON = ("The Generate waiting for the LoRA files goes on: its job is queued once they are read (Shift+Esc "
            "cancels it too)")  # fmt: skip


def checking_words(clicks: int) -> str:
    """The status line while ``clicks`` Generate clicks wait for the LoRA files: each is a job once they are read
    (two clicks held said "the job is queued", as if the second were lost)."""
    return CHECKING if clicks == 1 else f"Checking LoRA files… the {clicks} jobs are queued once they are read"


def going_on_words(clicks: int) -> str:
    """What Esc says of the ``clicks`` Generate clicks held as it stops the running job: they go on, each a job once
    the files are read (two held said "The Generate … goes on: its job is queued", as if one were)."""
    return GOING_ON if clicks == 1 else (f"The {clicks} Generate clicks waiting for the LoRA files go on: their jobs "
                                         "are queued once they are read (Shift+Esc cancels them too)")  # fmt: skip


class HeldClick(NamedTuple):
    """A Generate click held for the LoRA files: its ``request`` (the prompt panel as it was at the click), the
    seed field before the click moved it to the request's (a refused click leaves it as it was), and the request's
    model as the LoRA rows were judged against it at the click (another may be selected by the release)."""

    request: GenerationRequest
    seed_before: int
    judge: ModelJudge


def refused_clicks_error(errors: list[EngineError]) -> EngineError:
    """Why the clicks held that were refused as the files were read queued no job (each refused for ``errors``):
    said once, counted where several were, each reason once."""
    if len(errors) == 1:
        return errors[0]
    said = list(dict.fromkeys(e.message for e in errors))
    hints = " ".join(dict.fromkeys(e.hint for e in errors if e.hint))
    first = f"{said[0][:1].lower()}{said[0][1:]}"
    return EngineError("user", " ".join([f"No job was queued for {len(errors)} Generate clicks that waited for the "
                                         f"LoRA files: {first}", *said[1:]]), hints)  # fmt: skip


class HeldClicks(QObject):
    """The Generate clicks waiting for the reads of the LoRA files of ``rows`` (the copy check's, or of files just
    added: ``LoraState.reading``), each as the request it made; ``release`` is given them when the reads end
    (queued, or refused). The status line (``job``) says they wait while no job runs (from the end of the last one,
    ``queue_ended``); ``tell`` says it in passing while one does (its line is the running job's);
    ``idle`` says whether none is queued or running."""

    def __init__(self, rows: LoraState, job: JobState, release: Callable[[list[HeldClick]], None],
                 tell: Callable[[str], None], idle: Callable[[], bool],
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._rows = rows
        self._job = job
        self._release = release
        self._tell = tell
        self._idle = idle
        self._held: list[HeldClick] = []
        self._line_before = ""  # the status line that ours replaced: shown again if no job comes of the clicks
        self._said = ""  # the status line that says the clicks held wait, as last set here
        rows.twins.read.connect(self._read_ended)
        rows.adds.read.connect(self._read_ended)  # files just added, read
        rows.hash_search.read.connect(self._read_ended)  # the files of an image restored, read: its rows switched on
        rows.hash_search.replaced.connect(self._replaced)
        # A row whose file is read switched off or removed: the clicks wait for it no more. Queued: a read's end
        # (``LoraAdds``) says the files it refused before the clicks are released, as when ``read`` releases them.
        for changed in (rows.changed, rows.edited):
            changed.connect(self._read_ended, Qt.ConnectionType.QueuedConnection)

    def hold(self, click: HeldClick) -> None:
        """A click, held till the LoRA files are read; said on the status line (or in passing)."""
        self._held.append(click)
        self._job.checking = True
        if self._idle():
            self._say_checking()
        else:
            self._tell(checking_words(len(self._held)))

    def queue_ended(self) -> None:
        """A job ended (``JobQueue.ended``): with none left, the status line says the clicks held wait, where it said
        the job's end ("Done: 1 image") while they waited, nothing saying so."""
        if self._held and self._idle():
            self._say_checking()

    def _say_checking(self) -> None:
        """The status line says the clicks wait; the line it replaces is kept, to show again if no job comes of them
        (the line it replaced as it was set: a running job's step line, kept at a click while it ran, came back
        after the job had ended)."""
        if self._job.status != self._said:
            self._line_before = self._job.status
        self._said = checking_words(len(self._held))
        self._job.status = self._said

    @property
    def requests(self) -> list[GenerationRequest]:
        """The requests of the clicks held, in the order they were clicked (what a quit would cancel)."""
        return [click.request for click in self._held]

    def drop(self, words: str = CANCELLED) -> bool:
        """Cancel: the clicks held are dropped, and said to be (``words``: why, where not the user's Cancel);
        whether there were any."""
        if not self._held:
            return False
        self._held = []
        self._job.checking = False
        if self._idle():
            self._job.status = words
        else:
            self._tell(words)
        return True

    def _replaced(self) -> None:
        """The image whose LoRA files the clicks waited for was replaced by another (dropped, reused) before they were
        read: each click is that image's prompt and seed, and ran with the other's LoRAs, an image made as neither
        was. Dropped, and said to be."""
        self.drop(REPLACED)

    def going_on(self) -> None:
        """Esc stopped the running job: the clicks held go on, as the queued jobs do, and are said to (in passing:
        the line is the running job's "Cancelling…"); the job that began after the read came unannounced."""
        if self._held:
            self._tell(going_on_words(len(self._held)))

    def _read_ended(self, *_changed: object) -> None:
        """The read ended (or the rows changed: ``_changed``, what a signal of theirs gives), none needed after it:
        the clicks held released (queued or refused); the status line as it was before them where none was queued
        (refused: the dialog says why), unless ``release`` held them again (rows changed meanwhile, their files to
        be read)."""
        if not self._held or self._rows.reading:
            return
        held, self._held = self._held, []
        self._job.checking = False
        self._release(held)
        if not self._held and self._job.status == self._said:
            self._job.status = self._line_before
