"""An upscale in A1111/Forge's Extras tab: it keeps the chunks of the picture it was given (an A1111 image's
``parameters``, a ComfyUI image's ``prompt`` graph and ``workflow``) and says what it did in its ``postprocessing``
and ``extras`` chunks ("Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+"). The settings those chunks
give make the picture before it; both readers say it after what else made the image (``png_metadata`` reads it
from the chunk)."""

from __future__ import annotations

from dataclasses import dataclass

from gpu.generation.passes_said import NOT_TOLD, Side, pixels, ratio, resized_by, resized_to


@dataclass(frozen=True)
class ExtrasUpscale:
    """What the Extras tab did, as its chunk says: ``words``, its fields in words ("Extras: Postprocess upscale by 4,
    Postprocess upscaler R-ESRGAN 4x+"); ``by``, its "Scale by" factor; ``to``, its "Scale to" width and height;
    ``crop``, the size it cropped that to; ``side``, its Max side length (each None where the chunk has none)."""

    words: str
    by: float | None
    to: tuple[int, int] | None
    crop: tuple[int, int] | None
    side: float | None

    def size(self, before: tuple[int, int] | None) -> tuple[Side, Side]:
        """The size it made as factors of the picture it was given (``before``, in pixels), as its Upscale script
        makes it (scripts/postprocessing_upscale.py): cropped to ``crop``; "Scale to" ``to``, by the larger of its
        sides' factors, the aspect kept; else "Scale by" ``by``, down to where its longest side is ``side``. Any
        size where the file does not tell it."""
        if self.crop is not None:
            return resized_to(*self.crop, before)
        known = before is not None and min(before) > 0
        if self.to is not None:
            if not known:
                return NOT_TOLD
            factor = max(ratio(self.to[0], before[0]), ratio(self.to[1], before[1]))
        elif self.by is None:
            return NOT_TOLD
        elif self.side is None:
            factor = self.by
        elif not known:
            return (0.0, self.by), (0.0, self.by)  # at most ``by``: the picture's longest side not known
        else:
            factor = min(self.by, ratio(self.side, max(before)))
        return (factor, factor), (factor, factor)

    def after(self, what: str, size: tuple[Side, Side], before: tuple[int, int] | None
              ) -> tuple[str, tuple[Side, Side]]:  # fmt: skip
        """A resize of the picture of ``before`` pixels (``what``, in words, "" for none; ``size``, the picture it
        made as factors of that one), then this upscale of what it made: the two in words, and the size they made."""
        words = f"{what}, then {self.words}" if what else self.words
        return words, resized_by(size, self.size(pixels(before, size)))
