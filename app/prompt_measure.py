"""The prompts measured on every edit: the selected model's prompt meter, as the engine sends it once it has read
the model's T5 tokenizer, and the counts it gives shown by a ``PromptLengthState`` under the prompt box and one
under the negative prompt's (T5 reads it to the same limit, when the job uses it: when it does not, that is shown
instead)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject

from app.generation_state import PromptState
from app.prompt_length_state import PromptLengthState
from gpu.generation.prompt_length import PromptLength, PromptMeter, negative_prompt_used, unused_negative_note

log = logging.getLogger(__name__)


class PromptMeasure(QObject):
    """Measures ``prompt``'s prompt into ``length`` and its negative prompt into ``negative_length`` with the meter
    of the model it selects, each when its own text changes (a keystroke in one box re-tokenized both: 40 ms with a
    long negative prompt), both when the model or its meter does. A QObject, so that the engine thread's
    ``prompt_meter_ready`` is delivered on the thread it lives on (its parent's, the Qt thread)."""

    def __init__(self, prompt: PromptState, length: PromptLengthState, negative_length: PromptLengthState,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._prompt = prompt
        self._length = length
        self._negative_length = negative_length
        # (model, its meter, whether guidance is an input of it), as the engine sent them last
        self._meter: tuple[str, PromptMeter | None, bool] = ("", None, True)
        self._unmeasured: PromptMeter | None = None  # the last meter that failed on a prompt (logged once: _measured)
        # per box: (meter, text, its length) measured last; a guidance change shows the negative prompt's again
        self._last: dict[PromptLengthState, tuple[PromptMeter | None, str, PromptLength | None]] = {}

    def on_meter(self, model: str, meter: PromptMeter | None, takes_guidance: bool = True) -> None:
        """A model's prompt meter, loaded after its facts were shown (see EngineWorker.describe), and whether
        guidance is an input of the model (else its negative prompt is used only above guidance 1)."""
        self._meter = (model, meter, takes_guidance)
        self.measure()

    @property
    def meter(self) -> PromptMeter | None:
        """The selected model's ``gpu.generation.prompt_length.PromptMeter``; None until the engine has loaded it
        (or when its tokenizer cannot be read). Never another model's: its limit may differ."""
        model, meter, _ = self._meter
        return meter if model == self._prompt.model else None

    def measure(self, *_: object) -> None:
        """The prompt's and the negative prompt's token counts, measured with the selected model's meter (the
        model or its meter changed)."""
        self.measure_prompt()
        self.measure_negative()

    def measure_prompt(self, *_: object) -> None:
        """The prompt's token count, measured with the selected model's meter (sub-millisecond for a prompt of
        the model's length: on every edit, here on the GUI thread; the engine thread loaded its tokenizer)."""
        self._length.show(self._measured(self._prompt.prompt, self._length), self._prompt.prompt)

    def measure_negative(self, *_: object) -> None:
        """The negative prompt's token count, as ``measure_prompt``'s; on a model without a guidance input at a
        guidance of at most 1, where the job does not use the negative prompt, that instead (the engine's words)."""
        model, _, takes_guidance = self._meter
        text, guidance = self._prompt.negative_prompt, float(self._prompt.guidance)
        if self.meter is not None and text.strip() and not negative_prompt_used(takes_guidance, guidance):
            self._negative_length.show_unused(unused_negative_note(model, guidance))
            return
        self._negative_length.show(self._measured(text, self._negative_length), text)

    def _measured(self, text: str, shown: PromptLengthState) -> PromptLength | None:
        """``text`` measured with the selected model's meter; None without one, for a blank text, or when the meter
        fails on ``text``. The box's last answer when neither changed since (a guidance change, the same model
        described again)."""
        meter = self.meter
        if meter is None or not text.strip():  # shown as nothing: not worth tokenizing
            return None
        last = self._last.get(shown)
        if last is not None and last[0] is meter and last[1] == text:
            return last[2]
        try:
            length = meter(text)
        except Exception as exc:  # noqa: BLE001 - tokenizers raise bare Exception (TypeError: a lone surrogate)
            # Raised out of the prompt's signal it broke the edit that emitted it; the count is unknown instead,
            # and generating says what is wrong with the text. Logged once per meter: this runs at every
            # keystroke.
            if self._unmeasured is not meter:
                log.warning("the prompt's tokens could not be counted: %s", exc)
                self._unmeasured = meter
            length = None
        self._last[shown] = (meter, text, length)
        return length
