"""Small pieces of English the app's messages share."""

from __future__ import annotations

NBSP = "\u00a0"  # between a number and its unit: a narrow label wrapped "Time taken: 0.3" and "s" apart


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural when ``n`` is not 1: "1 file", "3 files", "2 other images"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def were(n: int) -> str:
    """"was" for one, "were" for any other count: "1 image was moved", "3 images were moved"."""
    return "was" if n == 1 else "were"


def hidden_note(hidden: int, total: int, by: str) -> str:
    """What an undo that brought ``total`` things back says of the ``hidden`` of them that ``by`` hides (the search,
    the ★ only view): " (hidden by the search)" for all, " (2 hidden by the search)" for some, "" for none."""
    if not hidden:
        return ""
    return f" ({'' if hidden == total else f'{hidden} '}hidden by {by})"


def sentence(text: str, capital: bool = True) -> str:
    """``text`` as a sentence with one full stop (engine messages are CLI one-liners, lowercase and without
    one); its first word capitalised when it is a plain word, never a file name (``my-finetune.safetensors: …``),
    which must stay as it is on disk."""
    text = text.strip()
    if not text:
        return text
    first = text.split(" ", 1)[0]
    if capital and first.isalpha() and first.islower():
        text = text[:1].upper() + text[1:]
    return text + ("" if text.endswith((".", "!", "?")) else ".")


def sentences(text: str) -> str:
    """Each paragraph of ``text`` (a dialog's message may join several, one per file) as a ``sentence``."""
    return "\n\n".join(sentence(part) for part in text.split("\n\n"))


def human_bytes(value: float | None) -> str:
    """A byte count for a field or table cell: "26.1 MiB", from bytes to TiB, with a no-break space (a narrow dock
    never wraps between number and unit), and "–" for None or 0. Not the engine's ``memory_policy.amount``, which
    says sizes in sentences (plans, errors), in GiB or whole MiB: a cell here may hold a few KiB (an unfinished
    quantize run that kept little)."""
    if not value:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f}{NBSP}{unit}" if unit != "B" else f"{int(value)}{NBSP}B"
        value /= 1024
    return "–"


def clamped_note(label: str, takes: str, typed: str, shown: str) -> str:
    """What a field says of a number typed past its limit, set to the limit (``ClampsTyped``): "Steps takes 1 to
    150: the 4096 typed was set to 150."; ``takes``: the values the field takes, in words."""
    return f"{label} takes {takes}: the {typed} typed was set to {shown}."
