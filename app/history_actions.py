"""The prompt history as the panels change it: each submitted prompt recorded, entries forgotten or all cleared,
an entry put back in the prompt box; a database that refuses a change is named rather than raised out of a slot."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from app.engine_errors import EngineError
from app.generation_state import PromptState
from app.history_model import HistoryModel

log = logging.getLogger(__name__)


class HistoryActions:
    """Changes to ``HistoryModel``: a refused one said by ``say`` (a dialog), or by ``tell`` (the status bar) for a
    prompt that could not be recorded, as its job runs all the same."""

    def __init__(self, history: HistoryModel, prompt: PromptState, database: Path,
                 say: Callable[[EngineError], None], tell: Callable[[str], None]) -> None:  # fmt: skip
        """``database``: the gallery database's path, named when it refuses a change."""
        self._history = history
        self._prompt = prompt
        self._database = database
        self._say = say
        self._tell = tell

    def record_prompt(self) -> None:
        """The prompt panel's prompt and negative prompt added to the history, as a job is submitted with them."""
        try:
            self._history.add(self._prompt.prompt, self._prompt.negative_prompt)
        except sqlite3.Error as exc:  # e.g. a full disk: the job may still work, and runs; said in passing
            log.exception("recording the prompt in the history failed")
            self._tell(f"The prompt was not added to the prompt history: {self._database} could not be written "
                       f"({exc}). The image is made all the same; check that the data folder can be written and its "
                       "disk is not full.")  # fmt: skip

    def forget_prompts(self, rows: list[int]) -> None:
        """History rows removed; a database that cannot be written is named (the rows stay)."""
        self._change_history(lambda: self._history.remove(rows), "removing prompts from the history failed")

    def clear_history(self) -> None:
        """Every prompt of the history forgotten (Clear, after the panel has asked); as ``forget_prompts``, a
        database that cannot be written is named and the prompts stay."""
        self._change_history(self._history.clear, "clearing the history failed")

    def _change_history(self, change: Callable[[], None], what: str) -> None:
        """``change`` made to the history; a database that refuses it is logged (``what``) and said: it was raised
        out of the panel's slot, in the log only, the user seeing nothing happen."""
        try:
            change()
        except sqlite3.Error as exc:
            log.exception(what)
            self._say(EngineError("user", f"The prompt history in {self._database} could not be changed: {exc}.",
                                  "Check that the data folder can be written and its disk is not full, then try "
                                  "again."))  # fmt: skip

    def reuse_prompt(self, prompt: str, negative_prompt: str) -> None:
        """A history entry's ``prompt`` and ``negative_prompt`` put in the prompt panel."""
        self._prompt.prompt = prompt
        self._prompt.negative_prompt = negative_prompt
