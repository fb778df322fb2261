"""Observable state of a prompt's length: how many of the selected model's T5 tokens the prompt (or the negative
prompt) takes and, past the model's limit, the end it ignores (``gpu.generation.prompt_length``), shown under its
box. The controller measures with the meter the engine describes the model with; widgets only bind."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.observable import Prop
from gpu.generation.prompt_length import PromptLength

SHOWN_IGNORED = 80  # characters of the ignored end quoted under the prompt box (its start: where the cut is)


class PromptLengthState(QObject):
    text_changed = Signal(object)
    over_changed = Signal(object)

    # "18 / 32 tokens", or that with the ignored end, or why the job does not use the (negative) prompt at all; ""
    # for an empty prompt or an unknown model
    text = Prop("")
    over = Prop(False)  # True: the model ignores the end of the prompt, or all of it (show_unused)

    def show(self, length: PromptLength | None, prompt: str = "") -> None:
        """Shows ``length`` (``PromptLength``) of ``prompt``; None (the model's tokenizer is not known yet, or
        cannot be read) and an empty prompt show nothing."""
        if length is None or not prompt.strip():
            self.over, self.text = False, ""
            return
        count = f"{length.tokens} / {length.limit} tokens"
        self.over = length.over
        if not length.over:
            self.text = count
            return
        ignored = " ".join(length.ignored.split())  # one line, however the user broke it
        if len(ignored) > SHOWN_IGNORED:
            ignored = ignored[: SHOWN_IGNORED - 1].rstrip() + "…"
        self.text = f"{count}: the model ignores the end: '{ignored}'"

    def show_unused(self, note: str) -> None:
        """Shows ``note``, the sentence saying that the job does not use the text at all (a negative prompt at
        guidance 1 on a model without a guidance input), in place of a count: it is not read to any limit."""
        self.over, self.text = True, note
