"""Generation settings in a file of any kind: what the file is, told by its first bytes (its name says little: a
download saved a PNG as ``.jpg``, a site renamed a JPEG ``.png``), then the settings that kind holds: PNG text
chunks (``png_metadata``), or, in JPEG and WebP images, the A1111 ``parameters`` text that AUTOMATIC1111 and Forge
write into the EXIF UserComment (some tools copy it into XMP, or a JPEG or GIF comment), read with the same parser
as the PNG chunk; so is a .txt file, where A1111 and Forge can save that text beside the image instead.

``inspect_image`` never raises and always says why a file has no settings, naming its kind ("it is a BMP image",
"it is a text file, not an image"): whatever is dropped on the app is user input, and silence leaves the user
guessing. A JPEG, WebP or GIF is read as a byte stream, segment by segment, as PNG chunks are: no image is decoded, and
only the parts that may hold settings are read, the image data skipped with seeks (a file is read when dropped, on
the window's thread: a 200 MB render read whole held it up).
"""

from __future__ import annotations

import codecs
import logging
import os
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree

from PIL import Image

from gpu.generation.png_metadata import (
    MAX_TEXT_BYTES,
    NO_PNG_SETTINGS,
    PNG_SIGNATURE,
    UNBUFFERED,
    ImageSettings,
    decode_text,
    has_settings_line,
    inspect_png_file,
    read_parameters,
    too_long,
)

# (first bytes, kind) of the files told apart by their content; WebP is RIFF....WEBP (``file_kind``).
_MAGIC = ((PNG_SIGNATURE, "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
          (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"))  # fmt: skip
# The kind a file's name claims, to say "it is a JPEG image, not a PNG" when they differ.
_NAMED_KINDS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".webp": "WebP",
                ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}  # fmt: skip
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\0"
# XMP properties that may hold A1111's text: exiftool and image managers copy the EXIF UserComment as
# exif:UserComment; some WebP writers put the text in a "parameters" property or the description.
_XMP_NAMES = ("UserComment", "parameters", "description")
_HEAD = 64  # bytes read to tell a file's kind: enough for a text file's first words too
_MAX_TXT = 64 << 10  # the most of a .txt file read for A1111 settings: theirs are a few KB

log = logging.getLogger(__name__)


def kind_by_name(path: Path | str) -> str | None:
    """The image kind ``path``'s name claims ("JPEG" for ``x.jpg``), None when it names none."""
    return _NAMED_KINDS.get(Path(path).suffix.lower())


def file_kind(head: bytes) -> str | None:
    """The image kind of a file starting with ``head`` ("PNG", "JPEG", "WebP", "GIF"...), None for no image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def read_settings(path: Path | str) -> dict[str, Any] | None:
    """Generation settings stored in an image (``inspect_image``); None when it carries none."""
    return inspect_image(path).settings


def inspect_image(path: Path | str) -> ImageSettings:
    """The settings a file carries, with why it has none or what was left out (phrases about the file). Never
    raises. A file whose name claims another kind and that has no settings is said to be misnamed first: that
    it was converted (and its settings dropped) or renamed is the likely story."""
    path = Path(path)
    try:
        if path.is_dir():  # inside: a name too long for the system raises here, not only at open
            return ImageSettings(None, ["it is a folder, not an image"])
        with open(path, "rb", buffering=UNBUFFERED) as f:
            head = f.read(_HEAD)
            kind = file_kind(head)
            # a prompt starting "BM" ("BMX rider") would be a BMP image by its first bytes
            if path.suffix.lower() == ".txt" and head and (kind is None or _text_of(head, final=False)):
                return _inspect_text_file(f)
            if kind is None:
                return ImageSettings(None, [_not_an_image(head)])
            found = _read(f, kind, path)
    except OSError as exc:
        return ImageSettings(None, [f"it cannot be read ({exc.strerror or exc})"])
    named = kind_by_name(path)
    if found.settings is None and named not in (None, kind):  # said first; "none in it" then adds nothing
        plain = (NO_PNG_SETTINGS, _not_read(kind), _no_embedded_settings(kind) if kind in _HOLDERS else "")
        found.problems = [f"it is a {kind} image, not a {named}"] + [p for p in found.problems if p not in plain]
    return found


def _read(f: BinaryIO, kind: str, path: Path) -> ImageSettings:
    """The settings of ``path``, open as ``f``, by the reader of its ``kind``. Readers seek to the parts that may
    hold settings and read only those: a 200 MB render, read whole at drop time, held up the window."""
    read = _READERS.get(kind)
    if read is None:
        return ImageSettings(None, [_not_read(kind)])
    try:
        return read(f, kind)
    except OSError:
        raise
    except Exception:  # a reader bug on some program's metadata costs that file its settings, never the caller
        log.warning("the %s metadata of %s could not be read; taken as none", kind, path, exc_info=True)
        return ImageSettings(None, [f"its {kind} metadata cannot be read (the log file has the details)"])


def _not_an_image(head: bytes) -> str:
    """Why a file starting with ``head`` (no image kind known) is not read: what it seems to be instead."""
    if not head:
        return "the file is empty (0 bytes)"
    if len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 1 << 32:
        return "it is a safetensors file (a model or LoRA), not an image: models and LoRAs are added in their panels"
    if _text_of(head, final=False):
        return "it is a text file, not an image"
    return "it is not an image (PNG, JPEG, WebP or GIF)"


def _text_of(raw: bytes, final: bool = True) -> str | None:
    """The text of ``raw`` when it is UTF-8 (or UTF-16 with its byte order mark, as Windows tools write it) holding
    no control characters but tabs and line ends: None for anything else. ``final``: False for a file's first bytes,
    whose end may cut a character in two (decoded as far as it goes)."""
    encoding = "utf-16" if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(raw, final=final)
    except UnicodeDecodeError:
        return None
    # Control characters only: str.isprintable() also refused the no-break and ideographic spaces and the emoji
    # joiner that prompts hold, which restore from a PNG.
    return text if text and not any(unicodedata.category(c) == "Cc" and c not in "\t\r\n" for c in text) else None


def _inspect_text_file(f: BinaryIO) -> ImageSettings:
    """A .txt file: A1111 and Forge write an image's ``parameters`` text beside it, as ``<name>.txt``, when it is
    not to go into the image. Its settings are read as a PNG's chunk, when it ends in A1111's settings line (any
    other text file has none). Read only up to ``_MAX_TXT``: a big or binary file named .txt is not read whole."""
    f.seek(0)
    raw = f.read(_MAX_TXT + 1)
    if len(raw) > _MAX_TXT:
        return ImageSettings(None, [f"it is a text file of over {_MAX_TXT >> 10} KB: A1111 settings are read from "
                                    "shorter ones only (A1111 and Forge write a few KB)"])  # fmt: skip
    text = _text_of(raw)
    if text is None:
        return ImageSettings(None, ["it is named .txt but holds no text that can be read (no UTF-8 or UTF-16 text: "
                                    "binary data?)"])  # fmt: skip
    if not has_settings_line(text):
        return ImageSettings(None, ["it is a text file without an A1111 settings line (the last line, 'Steps: …', "
                                    "that A1111 and Forge write), not an image"])  # fmt: skip
    return ImageSettings(*read_parameters(text))


def _not_read(kind: str) -> str:
    return f"it is a {kind} image: settings are read from PNG, JPEG, WebP and GIF images only"


def _no_embedded_settings(kind: str) -> str:
    return f"it is a {kind} image without generation settings (no A1111 or Forge text in its {_HOLDERS[kind]})"


@dataclass
class _Embedded:
    """What a JPEG, WebP or GIF file holds that may be A1111's text, as found (EXIF payloads, XMP packets, comments),
    and the damage met on the way, as phrases about the file."""

    exif: list[bytes] = field(default_factory=list)
    xmp: list[bytes] = field(default_factory=list)
    comments: list[bytes] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)


def _inspect_embedded(f: BinaryIO, kind: str) -> ImageSettings:
    """A JPEG, WebP or GIF file: the first EXIF UserComment, XMP property or comment that holds A1111 text ending in
    its settings line (comments last: any program writes there); each other one found, and damaged EXIF data, is
    named when none does."""
    found = _WALKERS[kind](f)
    problems = found.damage
    texts: list[tuple[str, str]] = []
    for payload in found.exif:
        try:
            comment = Image.Exif()
            comment.load(payload)
            value = comment.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
        except Exception:  # Pillow's TIFF reader raises many kinds on damaged data; one kind of file, one reason
            problems.append("its EXIF data cannot be read (damaged)")
            continue
        if isinstance(value, (bytes, str)):
            if value:
                texts.append(("EXIF UserComment", _user_comment(value)))
        elif value is not None:  # a number or a fraction where the standard has text: no tool writes that
            problems.append("its EXIF UserComment cannot be read (damaged: it holds a number, not text)")
    for payload in found.xmp:
        xmp = _xmp_texts(payload)
        if xmp is None:
            problems.append("its XMP data cannot be read (damaged)")
        texts += [("XMP", text) for text in xmp or []]
    texts += [(f"{kind} comment", decode_text(comment, "utf-8").rstrip("\0")) for comment in found.comments]
    for where, text in texts:
        if has_settings_line(text):
            settings, left_out = read_parameters(text)
            return ImageSettings(settings, problems + left_out)
        if text.strip():
            short = " ".join(text.split())
            problems.append(f"its {where} '{short[:60]}{'…' if len(short) > 60 else ''}' is no A1111 settings text")
    return ImageSettings(None, problems or [_no_embedded_settings(kind)])


def _jpeg_segments(f: BinaryIO) -> _Embedded:
    """The APP1 (EXIF, XMP) and COM segments of the JPEG file ``f``, up to the start of the image data (SOS): what
    follows is the compressed image, read whole for nothing (a comment after it is not worth that)."""
    found = _Embedded()
    f.seek(2)
    while len(marker := f.read(2)) == 2 and marker[0] == 0xFF:
        if marker[1] == 0xFF:  # a fill byte: the marker starts at the next one
            f.seek(-1, os.SEEK_CUR)
            continue
        if marker[1] in (0x01, 0xD8) or 0xD0 <= marker[1] <= 0xD7:  # markers without a length
            continue
        if marker[1] in (0xD9, 0xDA) or len(raw := f.read(2)) < 2:  # end of image, start of scan; cut short
            break
        length = struct.unpack(">H", raw)[0] - 2  # a segment is at most 64 KB: read whole when it is one of ours
        if length < 0:  # damaged: where the next segment starts is unknown
            break
        if marker[1] not in (0xE1, 0xFE):
            f.seek(length, os.SEEK_CUR)
            continue
        body = f.read(length)
        if marker[1] == 0xFE:
            found.comments.append(body)
        elif body.startswith(b"Exif\0\0"):
            found.exif.append(body)
        elif body.startswith(_XMP_JPEG):
            found.xmp.append(body[len(_XMP_JPEG) :])
    return found


def _webp_chunks(f: BinaryIO) -> _Embedded:
    """The EXIF and XMP RIFF chunks of the WebP file ``f``, the others (the image data) skipped with a seek."""
    found = _Embedded()
    file_size = f.seek(0, os.SEEK_END)
    f.seek(12)
    while len(head := f.read(8)) == 8:
        kind, (size,), start = head[:4], struct.unpack("<I", head[4:]), f.tell()
        if kind in (b"EXIF", b"XMP ") and size > MAX_TEXT_BYTES and start + size <= file_size:
            found.damage.append(too_long(f"its {kind.decode().strip()} chunk"))
        elif kind in (b"EXIF", b"XMP "):  # one cut short (or whose size is damaged) is read as far as it goes
            (found.exif if kind == b"EXIF" else found.xmp).append(f.read(min(size, MAX_TEXT_BYTES)))
        f.seek(start + size + (size & 1))  # chunks are padded to an even size
    return found


def _gif_blocks(f: BinaryIO) -> _Embedded:
    """The comment extensions of the GIF file ``f`` before its first image (where Pillow, ImageMagick and gifsicle
    write them): past it, each of the image's data blocks of 255 bytes at most is a read to skip, as in a JPEG
    after SOS. An extension's data is a chain of such blocks, ended by an empty one."""
    found = _Embedded()
    f.seek(10)  # after the signature, width and height
    flags = f.read(3)  # whether a colour table follows, and its size; background colour; aspect ratio
    if len(flags) == 3 and flags[0] & 0x80:
        f.seek(3 << ((flags[0] & 7) + 1), os.SEEK_CUR)
    while f.read(1) == b"\x21":  # an extension; an image (0x2C), the end (0x3B) or damage end the walk
        comment = f.read(1) == b"\xfe"
        data = bytearray()
        while (size := f.read(1)) and size[0]:
            if comment and len(data) + size[0] > MAX_TEXT_BYTES:
                found.damage.append(too_long("its comment"))
                comment = False
            if comment:
                data += f.read(size[0])
            else:
                f.seek(size[0], os.SEEK_CUR)
        if comment:
            found.comments.append(bytes(data))
    return found


# The EXIF UserComment's 8-byte prefix names its character code (EXIF 2.3, table 9).
_COMMENT_CODES = {b"ASCII\0\0\0": "utf-8", b"JIS\0\0\0\0\0": "shift_jis", b"\0" * 8: "utf-8"}


def _user_comment(value: bytes | str) -> str:
    """The text of an EXIF UserComment. A1111 and Forge write "UNICODE\\0" and UTF-16 big-endian (piexif's
    way); other tools write it little-endian, as their EXIF's byte order: told by where the zero bytes of
    Latin text fall."""
    if isinstance(value, str):  # written as an ASCII field, against the standard: Pillow gives text
        return value.rstrip("\0")
    prefix, body = value[:8], value[8:]
    if prefix == b"UNICODE\0":
        if body[:2] in (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE):
            encoding = "utf-16"
        else:
            encoding = "utf-16-be" if body[0::2].count(0) >= body[1::2].count(0) else "utf-16-le"
        text = body[: len(body) & ~1].decode(encoding, errors="replace")
    elif prefix in _COMMENT_CODES:
        text = decode_text(body, _COMMENT_CODES[prefix])
    else:  # no prefix at all (some tools): the whole value is the text
        text = decode_text(value, "utf-8")
    return text.rstrip("\0")


def _xmp_texts(packet: bytes) -> list[str] | None:
    """The texts of the XMP properties that may hold A1111's text (``_XMP_NAMES``), in document order; None when
    the packet is no XML. A document type is refused unread: its entities could expand to gigabytes."""
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        root = ElementTree.fromstring(packet.strip(b"\0 \t\r\n"))
    except ElementTree.ParseError:
        return None
    texts = []
    for element in root.iter():
        if element.tag.rpartition("}")[2] in _XMP_NAMES:
            texts.append("".join(element.itertext()).strip())
        texts += [value for name, value in element.attrib.items() if name.rpartition("}")[2] in _XMP_NAMES]
    return texts


_READERS: dict[str, Callable[[BinaryIO, str], ImageSettings]] = {
    "PNG": lambda f, _kind: inspect_png_file(f),
    **dict.fromkeys(("JPEG", "WebP", "GIF"), _inspect_embedded),
}
_WALKERS = {"JPEG": _jpeg_segments, "WebP": _webp_chunks, "GIF": _gif_blocks}
# Where each kind's A1111 text may be (``_no_embedded_settings``).
_HOLDERS = {"JPEG": "EXIF, XMP or comments", "WebP": "EXIF or XMP data", "GIF": "comments"}
