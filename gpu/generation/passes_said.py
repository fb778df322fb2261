"""How a restore says what an image had that no setting here makes, the same for every program's image (the readers
of A1111/Forge text, ``png_metadata``, and of ComfyUI graphs, ``comfyui_passes``): restored without a word, the
settings looked complete and made another picture. Phrases about the file, as the readers' other problems are.

A later pass's size beside the first pass's is said as far as the file tells it (``PassSize``), from each side's
size as a factor of the first pass's, known between two bounds (``Side``): a hires fix where it grew, "a different
size" where one side grew and the other shrank, no size at all where the file does not tell (the first pass's size
not read, an upscale model's factor scaled down again)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

Side = tuple[float, float]  # a side of a pass's size as a factor of the first pass's: (at least, at most)
SAME: tuple[Side, Side] = ((1.0, 1.0), (1.0, 1.0))  # (width, height) of the first pass itself
NOT_TOLD: tuple[Side, Side] = ((0.0, math.inf), (0.0, math.inf))  # a size the file does not tell
GROWN: Side = (math.nextafter(1.0, 2.0), math.inf)  # larger, by how much not told (an upscale model's factor)


class PassSize(Enum):
    """How a later pass's size compares with the first pass's, as far as the file tells it (``pass_size``)."""

    LARGER = "larger"  # larger on a side, smaller on none: a hires fix
    DIFFERENT = "different"  # larger on a side, smaller on the other
    NOT_KNOWN = "not known"  # the file does not tell which
    NOT_LARGER = "not larger"  # the same size, or smaller


def pass_size(width: Side, height: Side) -> PassSize:
    """How a pass whose sides are ``width`` and ``height`` (factors of the first pass's, between bounds) compares
    with the first pass: larger, different, not larger, or not known where the bounds allow more than one."""
    (w_least, w_most), (h_least, h_most) = width, height
    if w_least >= 1 and h_least >= 1 and (w_least > 1 or h_least > 1):
        return PassSize.LARGER
    if w_most <= 1 and h_most <= 1:
        return PassSize.NOT_LARGER
    if (w_least > 1 and h_most < 1) or (h_least > 1 and w_most < 1):
        return PassSize.DIFFERENT
    return PassSize.NOT_KNOWN


def passes_size(sizes: Iterable[PassSize]) -> PassSize:
    """How several later passes are said together: larger where one grew, else different where one's shape
    changed, else not known where one's size is not, else not larger."""
    found = set(sizes)
    return next((size for size in PassSize if size in found), PassSize.NOT_LARGER)


def resized_to(width: float, height: float, first: tuple[int, int] | None) -> tuple[Side, Side]:
    """The (width, height) of a picture resized to ``width`` x ``height`` pixels (a side of 0 kept in aspect by the
    other, as A1111's and ComfyUI's resizes keep it) beside the first pass's size ``first``: any size where that is
    not known (None, or a side of 0)."""
    if first is None or min(first) <= 0 or not (width or height):
        return NOT_TOLD
    w = ratio(width, first[0]) if width else ratio(height, first[1])
    h = ratio(height, first[1]) if height else w
    return (w, w), (h, h)


def pixels(first: tuple[int, int] | None, size: tuple[Side, Side]) -> tuple[int, int] | None:
    """The width and height in pixels of a pass of ``size`` (factors of the first pass's ``first``), where both are
    known exactly; None where not (or too large for a float: an untrusted file's numbers)."""
    (w_least, w_most), (h_least, h_most) = size
    if first is None or w_least != w_most or h_least != h_most or not all(
            0 < f < math.inf for f in (w_least, h_least)):  # fmt: skip
        return None
    try:
        return round(first[0] * w_least), round(first[1] * h_least)
    except OverflowError:
        return None


def scaled(size: tuple[Side, Side], by: Side) -> tuple[Side, Side]:
    """``size`` scaled by a factor between the bounds ``by`` (a size of 0 stays 0, whatever the factor)."""
    return resized_by(size, (by, by))


def resized_by(size: tuple[Side, Side], by: tuple[Side, Side]) -> tuple[Side, Side]:
    """``size`` resized by ``by``, a (width, height) of factors between bounds, each side by its own (a resize after
    another, the second's size as factors of the first's picture; a size of 0 stays 0, whatever the factor)."""

    def times(a: float, b: float) -> float:
        return 0.0 if a == 0 or b == 0 else a * b

    (width, height), (by_width, by_height) = size, by
    return ((times(width[0], by_width[0]), times(width[1], by_width[1])),
            (times(height[0], by_height[0]), times(height[1], by_height[1])))  # fmt: skip


def ratio(number: float, by: float) -> float:
    """``number / by`` as a float, for an untrusted file's numbers: one too large for a float is infinite (the
    division raised)."""
    try:
        return number / by
    except OverflowError:
        return math.inf if number > 0 else -math.inf  # (copysign raised too: it makes a float of it)


class Named(NamedTuple):
    """Passes after the first, named as one thing ("its hires fix (…)", "its 2 detailer passes (…)"), and whether
    they are said as several ("are not restored")."""

    text: str
    several: bool


def later_passes(what: str, size: PassSize = PassSize.LARGER, passes: int = 1, again: bool = False) -> Named:
    """Passes after the first that sample the whole picture again: ``what`` names them (A1111's "Hires upscale 2";
    ComfyUI's upscale and sampler nodes), ``size`` how their size compares with the first pass's (a hires fix where
    it is larger or of another shape), ``passes`` how many there are; ``again``: passes of this kind were said
    before others that ran between ("another hires fix": its is the first's)."""
    one = passes == 1
    if size in (PassSize.LARGER, PassSize.DIFFERENT):
        more = ("one more pass" if again else "a second pass") if one else f"{passes} more passes"
        to = "at a different size" if size is PassSize.DIFFERENT else ("at" if one else "up to") + " a larger size"
        return Named(f"{'another' if again else 'its'} hires fix ({what}: {more} {to})", False)
    if size is PassSize.NOT_KNOWN:
        what += _size_not_known(one)
    if one:
        return Named(f"{'another later' if again else 'its second'} pass ({what})", False)
    return Named(f"{f'{passes} more' if again else f'its {passes}'} later passes ({what})", True)


def _size_not_known(one: bool) -> str:
    """The words after passes whose size beside the first pass's the file does not tell (``one``: a single pass)."""
    return f": {'its size' if one else 'their sizes'} beside the first pass's not known"


def detailer_passes(what: str, passes: int = 1, size: PassSize | None = None, again: bool = False) -> Named:
    """Detailers after the first pass (ComfyUI's FaceDetailer, Impact Pack's Detailer nodes: the faces or parts they
    find sampled again, at the picture's size), named by ``what``; ``passes``: how many. Said apart from a hires fix
    (they enlarge nothing). ``size``: how the picture a resize before them made (an upscale model's, an image scale
    of ``what``) compares with the first pass's, None where none changed it; said as a hires fix's is, but for a
    smaller one: without it, an upscale-then-detail image read as one of the first pass's size. ``again``:
    detailers were said before passes of another kind that ran between ("another detailer pass")."""
    one = passes == 1
    if size in (PassSize.LARGER, PassSize.DIFFERENT):
        what += f": at a {size.value} size"
    elif size is PassSize.NOT_KNOWN:
        what += _size_not_known(one)
    if one:
        return Named(f"{'another' if again else 'its'} detailer pass ({what})", False)
    return Named(f"{f'{passes} more' if again else f'its {passes}'} detailer passes ({what})", True)


def not_restored(named: list[Named], first: str, maybe: list[Named] | None = None) -> str:
    """What the passes ``named`` (in the order they ran) did is not restored; ``first``: the size new images have
    (the first pass's). ``maybe``: the passes after those that the file may not have had, the graph saving the
    picture before them too (the file may be that one): "it may have had" them; all of them where ``named`` is []
    (the first pass's picture saved too: its settings whole)."""
    new = f"new images are its first pass, {first}"
    if not maybe:
        return f"{_listed(named)} {_are(named)} not restored: {new}"
    if not named:
        return (f"it may have had {_listed(maybe)}, which {_are(maybe)} not restored (the graph saves its first pass's "
                f"picture too): {new}")  # fmt: skip
    return (f"{_listed(named)} {_are(named)} not restored; it may have had {_listed(maybe)} after "
            f"{'those' if _several(named) else 'that'}, which {_are(maybe)} not restored either (the graph saves the "
            f"picture before {'them' if _several(maybe) else 'it'} too): {new}")  # fmt: skip


def _several(named: list[Named]) -> bool:
    """Whether ``named`` are said as several passes."""
    return len(named) > 1 or any(n.several for n in named)


def _are(named: list[Named]) -> str:
    """The verb of ``named``: "are" for several passes, else "is"."""
    return "are" if _several(named) else "is"


def _listed(named: list[Named]) -> str:
    """``named`` in one phrase, in the order they ran ("A, B and C")."""
    return ", ".join(n.text for n in named[:-1]) + " and " + named[-1].text if len(named) > 1 else named[0].text


# After the ways a picture was resized that gave it back its size (ImageScaleBy 0.5, then an Extras upscale by 2): the
# file is of the size its pass made, but not the picture its settings make
BACK_TO_ITS_SIZE = ": back to the size it was made at"


class Resized(NamedTuple):
    """One way the picture of the last pass was resized before it became the file: ``what`` did it, in words
    (ComfyUI's upscale model and image scale nodes before a save; A1111's Extras upscale), and ``size``, how the
    picture it made compares with the one before it."""

    what: str
    size: PassSize


def _resized_said(ways: list[Resized], saved_before: bool) -> tuple[str, str, bool]:
    """The ``ways`` the picture of the last pass was resized (one for each picture of it the graph saves resized
    otherwise; ``saved_before``: it saves that picture as it is too) in words: "upscale" where each enlarged it,
    else "resize"; the words inside the parentheses ("A; or B; the graph saves both"); and whether the file may be
    another of those pictures, not surely this one."""
    noun = "upscale" if all(way.size is PassSize.LARGER for way in ways) else "resize"
    what = "; or ".join(way.what for way in ways)
    if len(ways) > 1:
        what += f"; the graph saves {'both' if len(ways) == 2 else 'each'}"
        what += ", and the picture before them too" if saved_before else ""
    elif saved_before:
        what += "; the graph saves the picture before that too"
    return noun, what, saved_before or len(ways) > 1


def resize_after_passes(ways: list[Resized], saved_before: bool, passes: int) -> Named:
    """The resize of the picture after the last of ``passes`` later passes, before it was saved (``ways``: each way
    the graph resized it to a picture it saves), named beside those passes; ``saved_before``: the graph saves that
    picture as it is too. Where the graph saves more than one, the file may be any: each is said."""
    noun, what, _maybe = _resized_said(ways, saved_before)
    return Named(f"its {noun} after {'it' if passes == 1 else 'them'} ({what})", False)


def resized_after_its_pass(ways: list[Resized], saved_before: bool, first: str) -> str:
    """An image made in one pass whose picture was resized (upscaled where each of ``ways`` enlarged it) before it
    was saved (``saved_before``: as in ``resize_after_passes``), which no setting here makes: new images are the
    picture before that, of the size ``first``. "may have been" where the file may be another picture the graph
    saves."""
    noun, what, maybe = _resized_said(ways, saved_before)
    return (f"it {'may have been' if maybe else 'was'} {noun}d after its pass ({what}), which is not restored: new "
            f"images are its picture before that, {first}")  # fmt: skip


def extras_after_saved(what: str, size: PassSize) -> str:
    """An upscale in A1111's Extras tab (``what``, its fields in words; ``size``: how the picture it made compares
    with the one it was given) of a graph's picture, said apart where the file may be one of several pictures the
    graph saves: it surely had that upscale, whichever picture it was given."""
    noun = "upscale" if size is PassSize.LARGER else "resize"
    return f"it was {noun}d after the graph saved it ({what}), which is not restored"


def img2img_not_restored(what: str) -> str:
    """An image made from another picture (img2img; ``what``: how the file says so), which no setting here makes."""
    return f"it was made from another picture ({what}), which is not restored: new images start from noise"
