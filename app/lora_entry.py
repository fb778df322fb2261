"""One row of the LoRA panel (``LoraEntry``): a LoRA file the user added, on or off, its strengths and trigger
words, and what its header said when it was read; and the strengths fitted to what the engine applies."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import NamedTuple

from gpu.lora.fit import TargetShape
from gpu.lora.keys import parts_text
from gpu.lora.metadata import MAX_STRENGTH, LoraRequest


@dataclass
class LoraEntry:
    """A LoRA file in the panel: on or off, at a strength (and a text strength of its own, or the same), with
    editable trigger words, as its header was read (``LoraState`` keeps them in order)."""

    path: Path
    name: str
    enabled: bool = False
    strength: float = 1.0
    trigger_words: str = ""
    info: str = ""  # format / rank line shown under the name
    extra: dict = field(default_factory=dict)
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file when ``info`` was read; None: not there
    # the trigger words the header gave when read: while ``trigger_words`` equals them the user has not edited them
    header_words: str = ""
    text_strength: float | None = None  # of the file's CLIP/T5 parts; None: the same as ``strength``
    text_encoders: tuple[str, ...] = ()  # the text encoders the file changes, by its header (``header_summary``)
    # (stamp, ``content_hashes``) once an image's LoRA hash was looked for among the rows: the file is read whole
    # for them, so once per version of it
    hashes: tuple[tuple[int, int] | None, tuple[str, ...]] | None = None
    # why no job could apply the file as it was last read (``LoraHeader.problem``; "" when it reads), and whether
    # that is because nothing is there
    problem: str = ""
    missing: bool = False
    targets: tuple[TargetShape, ...] = ()  # what a model must take and give to fit it, by the header (``gpu.lora.fit``)
    # why the selected model cannot take the file at its strengths, "does not fit the model 'x': made for …" ("" when
    # it fits, or that is not known yet: ``LoraState.use_model``)
    misfit: str = ""
    # The file ``path`` is (resolved), by which a file is listed once however it was picked. ``path`` keeps the
    # name it was picked by: a Hugging Face cache's snapshots/<rev>/style.safetensors is a link to a blob named by
    # its hash, and resolved, it named the row, and the LoRA in the PNGs, by that hash.
    resolved: Path | None = field(default=None, compare=False)
    # Where another row has its name (two versions in loras/a/ and loras/b/): as much of its folder as tells them
    # apart, shown after its name (``label``); "" for a name of its own. ``LoraState`` sets it as rows come and go.
    folder: str = field(default="", compare=False)
    # Switched on beside a row of the same LoRA (a copy, or one whose metadata alone was edited), which a job would
    # refuse: "the same LoRA as /loras/a/style.safetensors (identical files), …" ("" for none, or not known yet:
    # ``app.lora_twins``)
    twin: str = field(default="", compare=False)
    # Its file just added and its header not read yet, on a thread (``app.lora_adds``): no job takes it meanwhile
    reading: bool = field(default=False, compare=False)

    @property
    def label(self) -> str:
        """The row's name as shown: "style", or "style — a" where loras/b/ has a style too (``folder``)."""
        return f"{self.name} — {self.folder}" if self.folder else self.name

    @property
    def warning(self) -> str:
        """Why a job would refuse the row as it is, as a sentence: "Does not fit the model 'demo': made for ….", or
        "The same LoRA as … (identical files), ….", a row switched on beside it ("" for neither)."""
        said = self.misfit or self.twin
        return f"{said[:1].upper()}{said[1:]}." if said else ""

    @property
    def info_line(self) -> str:
        """The row's line under its name: why a job would refuse it, if so (``warning``), then what the file is (or
        what is wrong with it)."""
        return f"{self.warning}\n{self.info}" if self.warning else self.info

    @property
    def text_parts(self) -> str:
        """The text encoders the file changes, in words ("CLIP text encoder + T5 text encoder"); "" for none."""
        return parts_text(self.text_encoders)

    def request(self) -> LoraRequest:
        """What a generation request carries for it: the text strength only where it has one of its own. Whether
        the file has a CLIP/T5 part for it is the engine's to say (its LoRA manager reads the file as it is when
        the job runs; the header read here may be older)."""
        text = self.text_strength
        return (str(self.path), self.strength) if text is None else (str(self.path), self.strength, text)


STRENGTH_DECIMALS = 6  # of a strength the panel shows (``strength_text``): as used, whatever a program wrote


def strength_text(strength: float) -> str:
    """A strength as the panel shows it: as it is used, to six decimals, two at least ("0.50", "0.333"): 0.333 from
    an image or the command line was shown as 0.33, and the "Text" strength given a value of its own took that. One
    that six decimals would show as 0 but is not ("1e-07", a program's rounding of 0) is shown as such: the LoRA is
    applied at it (only 0 is left out), and "0.00" read as not applied."""
    text = f"{strength:.{STRENGTH_DECIMALS}f}".rstrip("0")
    if strength and not text.strip("-0."):
        return f"{strength:.2g}"
    return text + "0" * (2 - len(text.partition(".")[2]))


def fit_strength(strength: float) -> float:
    """A strength within what the engine applies (a restored or hand-edited value may lie outside): clamped to it.
    Raises ``ValueError`` for one that is no number (inf, NaN), which no LoRA can be applied at, as the engine
    refuses it (``check_strength``): made 2.0 (or 1.0) here, it went on silently (``saved_strengths`` says it)."""
    value = float(strength)
    if not math.isfinite(value):
        raise ValueError(f"a LoRA strength of {value:g} cannot be applied")
    return max(-MAX_STRENGTH, min(MAX_STRENGTH, value))


def fit_text_strength(strength: float | None) -> float | None:
    """``fit_strength`` for a text strength, where None is "the same as the strength"."""
    return None if strength is None else fit_strength(strength)


class SavedStrengths(NamedTuple):
    """A row's strengths as the settings kept them, fitted (``saved_strengths``): ``said``, what was wrong with them
    in words; ``refused``, one of them was no number, and the row is switched off."""

    strength: float
    text_strength: float | None
    said: list[str]
    refused: bool


def saved_strengths(strength: float, text_strength: float | None, enabled: bool) -> SavedStrengths:
    """The strengths a row of ``settings.json`` (any editor may have changed it) gives, as the engine applies them:
    one that is no number (inf, NaN) is refused, the strength 1 or the text strength "the same" in its place, and a
    row that was on (``enabled``) switched off; one beyond ±``MAX_STRENGTH`` is the nearest the engine applies. Each
    said ("the strength inf in your settings, …"), of a row that was off without "switched off"."""
    said: list[str] = []
    fitted = _saved("strength", strength, "at strength 1" if enabled else "it is at strength 1 now", enabled, said)
    text = None if text_strength is None else _saved(
        "text strength", text_strength, "its text strength the same as its strength" if enabled
        else "its text strength is the same as its strength now", enabled, said)  # fmt: skip
    refused = fitted is None or (text_strength is not None and text is None)
    return SavedStrengths(1.0 if fitted is None else fitted, text, said, refused)


def _saved(what: str, value: float, instead: str, enabled: bool, said: list[str]) -> float | None:
    """``value``, a row's ``what`` ("strength", "text strength") in the settings, fitted (``fit_strength``); None
    when it is no number, which is refused (``instead``: what the row takes then, in words; a row that was on,
    ``enabled``, is switched off). Each change said."""
    if not math.isfinite(value):
        then = f"it is switched off, {instead}" if enabled else instead
        said.append(f"the {what} {value:g} in your settings, which is no number a LoRA can be applied at: {then}")
        return None
    fitted = fit_strength(value)
    if fitted != value:
        said.append(f"the {what} {value:g} in your settings, beyond the {-MAX_STRENGTH:g} to {MAX_STRENGTH:g} this "
                    f"app applies: it is used at {fitted:g}")  # fmt: skip
    return fitted


def folders_apart(paths: list[Path]) -> list[str]:
    """For each of ``paths``, "" where its stem (a row's name) is its own, else the fewest of its last folders that
    no other path of that stem ends with ("a" for loras/a/style beside loras/b/style; "x/a" beside y/a/style), or
    its whole name where a folder holds both (``style.safetensors`` beside ``style.SafeTensors``). Counted a depth
    at a time: 2,000 files of one name (diffusers names every LoRA pytorch_lora_weights) each in a folder of its
    own are told apart in one pass over them, not by comparing each with every other."""
    apart = [""] * len(paths)
    by_name: defaultdict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(paths):
        by_name[path.stem].append(index)
    for rows in (rows for rows in by_name.values() if len(rows) > 1):
        depth, pending = 1, rows
        while pending and depth <= max(len(paths[i].parent.parts) for i in pending):
            tails = {i: paths[i].parent.parts[-depth:] for i in rows}
            seen = Counter(tails.values())
            for i in pending:
                if seen[tails[i]] == 1:
                    apart[i] = str(PurePath(*tails[i]))
            pending = [i for i in pending if not apart[i]]
            depth += 1
        for i in pending:
            apart[i] = paths[i].name
    return apart
