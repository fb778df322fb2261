"""Text the gallery database can hold: a lone surrogate made U+FFFD, the replacement character.

Python text may hold a lone surrogate, which no UTF-8 (the database's text, a PNG's iTXt chunk) holds: JSON's
"\\ud83d" (half an emoji, as JavaScript front ends write it into a PNG's settings) reads as one, and so does a byte of a
file name that is not UTF-8 (U+DC80-U+DCFF). SQLite refuses it with UnicodeEncodeError: an image whose settings held
one was not added to the gallery, and an upgrade that computed a key from such a row refused the start. The store
makes every text that enters it so (``app.store``), and so does Reuse for the prompts it puts in the prompt box.
No Qt here: the store uses it.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` (text, or settings: dicts and lists of them) with each lone surrogate in its text made U+FFFD;
    what holds none is given back as it is."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    return value
