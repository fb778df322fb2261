"""The prompt history as the panels change it: each submitted prompt recorded, entries forgotten (and brought back
by Ctrl+Z) or all cleared, an entry put back in the prompt box; a database that refuses a change is named rather than
raised out of a slot."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from app.engine_errors import EngineError
from app.generation_state import PromptState
from app.history_model import HistoryModel
from app.store import PromptRecord
from app.wording import counted, hidden_note

log = logging.getLogger(__name__)


class HistoryActions:
    """Changes to ``HistoryModel``: a refused one said by ``say`` (a dialog), or by ``tell`` (the status bar) for a
    prompt that could not be recorded, as its job runs all the same; ``tell`` also says what a removal took and its
    undo brought back."""

    def __init__(self, history: HistoryModel, prompt: PromptState, database: Path,
                 say: Callable[[EngineError], None], tell: Callable[[str], None]) -> None:  # fmt: skip
        """``database``: the gallery database's path, named when it refuses a change."""
        self._history = history
        self._prompt = prompt
        self._database = database
        self._say = say
        self._tell = tell
        # The entries of each removal, the latest last, for Ctrl+Z. In memory only: kept on disk, a prompt the user
        # removed (a password typed into it) would stay in the data folder.
        self._removed: list[list[PromptRecord]] = []

    def record_prompt(self, prompt: str, negative_prompt: str) -> None:
        """A job's prompt and negative prompt added to the history, as the job is submitted with them (a job that
        waited for its LoRA files has the prompt panel's of its click, not of now)."""
        try:
            self._history.add(prompt, negative_prompt)
        except sqlite3.Error as exc:  # e.g. a full disk: the job may still work, and runs; said in passing
            log.exception("recording the prompt in the history failed")
            self._tell(f"The prompt was not added to the prompt history: {self._database} could not be written "
                       f"({exc}). The image is made all the same; check that the data folder can be written and its "
                       "disk is not full.")  # fmt: skip

    def forget_prompts(self, rows: list[int]) -> None:
        """History rows removed, said in the status bar, and kept for ``bring_back_prompts``: Delete is one key
        away from Ctrl+A (select all, to copy), and a stray press forgot the whole history, use counts and all,
        without a word or a way back. A database that cannot be written is named (the rows stay)."""
        removed: list[PromptRecord] = []

        def remove() -> None:
            removed.extend(self._history.remove(rows))

        if not self._change_history(remove, "removing prompts from the history failed") or not removed:
            return
        self._removed.append(removed)
        one = len(removed) == 1
        self._tell(f"{counted(len(removed), 'prompt')} removed from the history (Ctrl+Z in the list brings "
                   f"{'it' if one else 'them'} back).")  # fmt: skip

    def bring_back_prompts(self) -> None:
        """The prompts of the last removal (``forget_prompts``) back in the history, with their use counts; kept
        for another try if the database refuses them."""
        if not self._removed:
            return
        back = self._removed[-1]
        if self._change_history(lambda: self._history.restore(back), "bringing back prompts to the history failed"):
            self._removed.pop()
            # Said, as Undo delete says of the gallery's: brought back out of the search's sight, they seemed lost
            unseen = hidden_note(self._history.hidden(back), len(back), "the search")
            self._tell(f"{counted(len(back), 'prompt')} brought back to the history{unseen}.")

    def clear_history(self) -> None:
        """Every prompt of the history forgotten (Clear, after the panel has asked), those removed before and
        kept for Ctrl+Z too: a prompt the user removed (a password typed into it) does not come back after a
        Clear. As ``forget_prompts``, a database that cannot be written is named and the prompts stay."""
        if self._change_history(self._history.clear, "clearing the history failed"):
            self._removed.clear()

    def _change_history(self, change: Callable[[], None], what: str) -> bool:
        """``change`` made to the history; a database that refuses it is logged (``what``) and said: it was raised
        out of the panel's slot, in the log only, the user seeing nothing happen. Returns whether it was made."""
        try:
            change()
        except sqlite3.Error as exc:
            log.exception(what)
            self._say(EngineError("user", f"The prompt history in {self._database} could not be changed: {exc}.",
                                  "Check that the data folder can be written and its disk is not full, then try "
                                  "again."))  # fmt: skip
            return False
        return True

    def reuse_prompt(self, prompt: str, negative_prompt: str) -> None:
        """A history entry's ``prompt`` and ``negative_prompt`` put in the prompt panel."""
        self._prompt.prompt = prompt
        self._prompt.negative_prompt = negative_prompt
