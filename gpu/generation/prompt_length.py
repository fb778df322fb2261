"""How much of a prompt the model reads: FLUX encodes it with T5 cut to the model's ``max_sequence_length``
tokens (512 for FLUX.1-dev, 32 for the shipped demo model), silently. ``PromptMeter`` counts a prompt's tokens
with the model's own T5 tokenizer and the very truncation the encoding uses (``t5_encoding``), and names the
end of the prompt the model never sees.

Only T5 is measured: it carries the prompt token by token. CLIP, cut at 77 tokens, gives FLUX only one pooled
vector, and on FLUX.1-dev T5 reads far more (512) than CLIP does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T5_FOLDER = "tokenizer_2"  # FluxPipeline's name for the T5 tokenizer (``tokenizer`` is CLIP's)


def t5_encoding(tokenizer: Any, prompt: str, max_length: int) -> Any:
    """The T5 encoding of ``prompt`` exactly as ``FluxPipeline`` makes it: cut to ``max_length`` tokens (the end
    token takes the last place), padded to ``max_length``. A ``BatchEncoding`` whose ``input_ids`` and
    ``attention_mask`` are ``[1, max_length]`` tensors; ``tokenizer``: a transformers T5 tokenizer."""
    return tokenizer([prompt], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")


@dataclass(frozen=True)
class PromptLength:
    """A prompt measured against a model: ``tokens`` (int) it takes, the end token included; ``limit`` (int), the
    tokens the model reads; ``ignored`` (str), the end of the prompt past the limit as the user wrote it ('' when
    the prompt fits)."""

    tokens: int
    limit: int
    ignored: str = ""

    @property
    def over(self) -> bool:
        """True when the model does not read the whole prompt."""
        return self.tokens > self.limit

    def note(self, label: str, model: str) -> str:
        """The sentence telling the user that the end of the ``label`` ('prompt', 'negative prompt') is not read
        by ``model`` (its name), quoting that end; '' when the prompt fits."""
        if not self.over:
            return ""
        return (f"the {label} is {self.tokens} tokens long; model {model} reads the first {self.limit}, so this "
                f"end of it is ignored: {quoted_start(self.ignored)}")  # fmt: skip


def negative_prompt_used(takes_guidance: bool, guidance: float) -> bool:
    """Whether a job at ``guidance`` uses its negative prompt: always on a model that takes guidance as an input
    (``takes_guidance``: true CFG runs against it on top), else only above 1, where classic CFG runs."""
    return takes_guidance or guidance > 1


def unused_negative_note(model: str, guidance: float) -> str:
    """The sentence telling the user that the negative prompt is not used at ``guidance`` (at most 1) on ``model``
    (its name), a model without a guidance input."""
    return (f"the negative prompt is not used at guidance {guidance:g} on {model}, which guides away from it only "
            "above 1: raise the guidance to use it")


QUOTED_CHARACTERS = 80  # of an ignored end: a 15,000-token prompt's made one 65 KB line on the console and in the log


def quoted_start(text: str, shown: int = QUOTED_CHARACTERS) -> str:
    """``text`` quoted (``repr``) for a one-line message, cut to its first ``shown`` characters followed by
    "… (N more characters)" when longer."""
    if len(text) <= shown:
        return repr(text)
    return f"{text[:shown]!r}… ({len(text) - shown} more characters)"


class PromptMeter:
    """Measures prompts for one model: ``meter(prompt) -> PromptLength``. ``tokenizer``: the model's T5 tokenizer
    (a transformers one, as the pipeline holds it); ``limit``: the model's ``max_sequence_length``."""

    def __init__(self, tokenizer: Any, limit: int) -> None:
        self.tokenizer = tokenizer
        self.limit = int(limit)

    @classmethod
    def from_pipeline(cls, folder: Path, limit: int) -> PromptMeter:
        """The meter of the diffusers pipeline in ``folder`` (for an SVDQ file: its base pipeline), loading only
        its T5 tokenizer, with the class its ``model_index.json`` names (what ``from_pretrained`` of the pipeline
        loads). Raises ``OSError``/``ValueError`` when the tokenizer cannot be read."""
        import transformers

        name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get(T5_FOLDER, [None, None])[1]
        loader = getattr(transformers, name, None) if isinstance(name, str) else None
        tokenizer = (loader or transformers.AutoTokenizer).from_pretrained(folder / T5_FOLDER)
        return cls(tokenizer, limit)

    def __call__(self, prompt: str) -> PromptLength:
        """How long ``prompt`` is for this model and what of it the model ignores."""
        # verbose=False: the whole prompt is counted on purpose; transformers would warn that it is too long.
        whole = self.tokenizer(prompt, verbose=False, return_offsets_mapping=self.tokenizer.is_fast)
        ids = whole["input_ids"]
        if len(ids) <= self.limit:
            return PromptLength(len(ids), self.limit)
        read = t5_encoding(self.tokenizer, prompt, self.limit)["input_ids"][0].tolist()
        kept = 0  # the prompt's tokens the encoding keeps: the common start of both (the end token differs)
        while kept < min(len(ids), len(read)) and ids[kept] == read[kept]:
            kept += 1
        offsets = whole.get("offset_mapping")
        if offsets and offsets[kept][1] > offsets[kept][0]:  # the user's own words, not the vocabulary's <unk>
            ignored = prompt[offsets[kept][0] :]
        else:
            ignored = self.tokenizer.decode(ids[kept:], skip_special_tokens=True)
        return PromptLength(len(ids), self.limit, ignored.strip())
