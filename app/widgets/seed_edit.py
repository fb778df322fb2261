"""The prompt panel's seed field: any seed the engine takes, always shown whole."""

from __future__ import annotations

from app.generation_state import FIELD_RANGES, RANDOM_SEED_MAX, SEED_MAX, SEED_MIN
from app.widgets.integer_edit import IntegerEdit

_FRAME = 16  # the field's frame and text margins, beside its text


class SeedEdit(IntegerEdit):
    """The seed field (0 to 2^63-1, beyond a QSpinBox), as wide as a whole random seed, and as the longest seed
    while it holds a longer one (ComfyUI's and the command line's run to 19 digits): one cut short showed only its
    last digits, another number, and two seeds differing in their first digits looked the same. Wider only then:
    always that wide, it made the prompt dock wider at the usual window size, or put Random and Lock below it
    there. A ``WrapGrid`` holding it puts them below where the longer field leaves no room beside it."""

    def __init__(self) -> None:
        super().__init__(SEED_MIN, SEED_MAX)
        self.setToolTip(FIELD_RANGES["seed"][1])
        self.textChanged.connect(self._fit)
        self._fit(self.text())

    def _fit(self, text: str) -> None:
        """The minimum width for ``text``: the random seeds' (a narrow dock cut their first digits off), or the
        longest seed's (every digit is as wide as the others in the fonts a desktop uses)."""
        widest = str(RANDOM_SEED_MAX) if len(text) <= len(str(RANDOM_SEED_MAX)) else str(SEED_MAX)
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance(widest) + _FRAME)
