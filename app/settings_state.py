"""The session's settings and their persistence: ``settings.json`` read at start-up, whether this session may write
it, saved ``AUTOSAVE_MS`` after a change and once more on quit, and what a failed save says.

The settings are saved soon after they change, not only on quit: a crash, a power cut or a forced restart lost the
session's LoRA list and prompt. A settings file that could not be read at start-up, or not kept aside before it
would be written over (``SettingsKept``), is never written in that session: its content may be the user's only copy.
A failed autosave (a full disk) is said once until a save succeeds again: a dialog at every pause in typing would be
no help.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine_errors import EngineError
from app.settings import Settings, SettingsKept, load_settings, save_settings
from gpu.errors import UserError

log = logging.getLogger(__name__)

# How long the settings wait after a change before they are saved: a run of keystrokes or a slider's drag is one
# write, and a crash loses at most this much.
AUTOSAVE_MS = 1000
_SAVE_HINT = "Free some disk space, or check that the data folder can be written."  # a settings save that failed
# What each failed save leaves of the session's changes: the autosave's are still in the app, the quit's are gone.
_AUTOSAVE_LOSS = ("are not kept if Nibble Studio is closed by a crash or power cut; it tries again at the next change "
                  "and on quit.")  # fmt: skip
_QUIT_LOSS = "are not kept; the next start uses the settings saved before."


def _not_saved(path: Path, exc: BaseException, loss: str) -> EngineError:
    """The error of a save of ``path`` that failed with ``exc``; ``loss``: what that leaves of the changes."""
    message = (f"Your settings could not be saved in {path}: {exc}. The changes made to the prompt panel, the LoRA "
               f"list and the window layout since the last save {loss}")  # fmt: skip
    return EngineError("user", message, _SAVE_HINT)


class SettingsState(QObject):
    """The settings the session runs on (``settings``) and their saving to ``path``.

    ``notices``: what reading the file at start-up has to tell the user (a file kept aside, one that may not be
    written this session), for the window to show once it is up. ``changed`` starts the autosave; ``error`` says
    a failed autosave (once until a save succeeds again); ``stop`` ends the autosave when the app quits, and
    ``save_last`` writes the settings one last time, returning what to say if it failed."""

    error = Signal(object)  # EngineError: an autosave failed, said once until a save succeeds again

    def __init__(self, path: Path, settings: Settings | None = None, parent: QObject | None = None) -> None:
        """Reads ``path``, unless ``settings`` is given (then runs on those)."""
        super().__init__(parent)
        self.path = Path(path)
        self._gather: Callable[[Settings], None] | None = None
        self.notices: list[EngineError] = []
        # Whether settings.json may be written this session: not when it is there but could not be read, nor kept
        # aside before this version rewrites it, so neither the autosave nor the quit replaces it.
        self.writable = True
        read_notices: list[str] = []
        try:
            self.settings = settings or load_settings(self.path, read_notices)
        except SettingsKept as exc:
            self.settings, self.writable = exc.settings, False
            self.notices.append(EngineError("user", str(exc), exc.hint))
        self.notices += [EngineError("notice", text) for text in read_notices]
        self._stopped = False
        self._failure_said = False  # a failed autosave was said; again only after one succeeded
        self.autosave = QTimer(self)  # the debounce: ``changed`` restarts it, its timeout saves
        self.autosave.setSingleShot(True)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(self.save_now)

    def gather_with(self, gather: Callable[[Settings], None]) -> None:
        """``gather`` fills the settings in with what the app holds now (window layout, prompt panel, LoRA list)
        before each save; until it is given, the settings are saved as they are."""
        self._gather = gather

    def changed(self) -> None:
        """Saves the settings ``AUTOSAVE_MS`` after the last of a run of changes; never after ``stop``, nor in a
        session whose settings file may not be written."""
        if self.writable and not self._stopped:
            self.autosave.start()

    def save_now(self) -> None:
        """The autosave. A failure is logged, and emitted as ``error`` once until a save succeeds again; the next
        change, or the quit, tries again."""
        if not self.writable:
            return
        try:
            self._write()
        except (OSError, UserError) as exc:  # a full disk, a read-only folder, the data folder moved away
            if self._failure_said:
                log.warning("saving the settings failed again: %s", exc)
                return
            log.exception("saving the settings failed")
            self._failure_said = True
            self.error.emit(_not_saved(self.path, exc, _AUTOSAVE_LOSS))
            return
        if self._failure_said:
            log.info("the settings were saved again")
            self._failure_said = False

    def stop(self) -> None:
        """The app quits: no autosave from now on (what changes as it shuts down is saved once, by ``save_last``)."""
        self._stopped = True
        self.autosave.stop()

    def save_last(self) -> EngineError | None:
        """The quit's save (after ``stop``): None when saved, or when the settings may not be written; else what to
        tell the user before the app goes. The last saved file is whole either way (atomic write)."""
        self.stop()
        if not self.writable:
            return None
        try:
            self._write()
        except (OSError, UserError) as exc:
            log.exception("saving the settings on quit failed")
            return _not_saved(self.path, exc, _QUIT_LOSS)
        return None

    def _write(self) -> None:
        """Writes ``settings.json`` as the app is now (atomically: a crash keeps the last one whole)."""
        if self._gather is not None:
            self._gather(self.settings)
        save_settings(self.path, self.settings)
