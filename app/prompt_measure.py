"""The prompts measured on every edit: the selected model's prompt meter, as the engine sends it once it has read
the model's T5 tokenizer, and the counts it gives shown by a ``PromptLengthState`` under the prompt box and one
under the negative prompt's (T5 reads it to the same limit, when the job uses it)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject

from app.generation_state import PromptState
from app.prompt_length_state import PromptLengthState
from gpu.generation.prompt_length import PromptMeter

log = logging.getLogger(__name__)


class PromptMeasure(QObject):
    """Measures ``prompt``'s prompt into ``length`` and its negative prompt into ``negative_length`` with the meter
    of the model it selects. A QObject, so that the engine thread's ``prompt_meter_ready`` is delivered on the
    thread it lives on (its parent's, the Qt thread)."""

    def __init__(self, prompt: PromptState, length: PromptLengthState, negative_length: PromptLengthState,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._prompt = prompt
        self._length = length
        self._negative_length = negative_length
        self._meter: tuple[str, PromptMeter | None] = ("", None)  # (model, its meter), as the engine sent them last
        self._unmeasured: PromptMeter | None = None  # the last meter that failed on a prompt (logged once: measure)

    def on_meter(self, model: str, meter: PromptMeter | None) -> None:
        """A model's prompt meter, loaded after its facts were shown (see EngineWorker.describe)."""
        self._meter = (model, meter)
        self.measure()

    @property
    def meter(self) -> PromptMeter | None:
        """The selected model's ``gpu.generation.prompt_length.PromptMeter``; None until the engine has loaded it
        (or when its tokenizer cannot be read). Never another model's: its limit may differ."""
        model, meter = self._meter
        return meter if model == self._prompt.model else None

    def measure(self, *_: object) -> None:
        """The prompt's and the negative prompt's token counts, measured with the selected model's meter
        (sub-millisecond each: on every edit, here on the GUI thread; the engine thread loaded its tokenizer)."""
        meter = self.meter
        for prompt, shown in ((self._prompt.prompt, self._length), (self._prompt.negative_prompt,
                                                                    self._negative_length)):  # fmt: skip
            try:
                length = meter(prompt) if meter is not None else None
            except Exception as exc:  # noqa: BLE001 - tokenizers raise bare Exception (TypeError: a lone surrogate)
                # Raised out of the prompt's signal it broke the edit that emitted it; the count is unknown instead,
                # and generating says what is wrong with the text. Logged once per meter: this runs at every
                # keystroke.
                if self._unmeasured is not meter:
                    log.warning("the prompt's tokens could not be counted: %s", exc)
                    self._unmeasured = meter
                length = None
            shown.show(length, prompt)
