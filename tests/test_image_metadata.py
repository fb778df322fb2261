"""Settings in files of any kind: A1111/Forge JPEG and WebP (EXIF UserComment, XMP), a file's kind told by its
content rather than its name, and why a file that is no image (or holds no settings) has none.

Only PNGs were read: a Forge JPEG had "no settings", a real PNG named .jpg was never looked at, and a text or
model file dropped by mistake was "not a PNG image"."""

from __future__ import annotations

import struct
from typing import BinaryIO

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from gpu.generation import image_metadata
from gpu.generation.image_metadata import inspect_image, read_settings
from gpu.generation.png_metadata import ImageSettings, write_png
from tests.test_png_metadata import CountingFile, sparse_chunk

TEXT = (
    "a fox in snow, café 🦊\nNegative prompt: blurry\n"
    "Steps: 24, Sampler: Euler a, CFG scale: 6.5, Seed: 77, Size: 512x768"
)
EXPECTED = {"prompt": "a fox in snow, café 🦊", "negative_prompt": "blurry", "steps": 24, "sampler": "Euler a",
            "guidance": 6.5, "seed": 77, "width": 512, "height": 768, "lora_refs": []}  # fmt: skip
# (``lora_refs`` []: A1111 text without <lora:…> tags is an image made without LoRAs)
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment><rdf:Alt>'
       '<rdf:li xml:lang="x-default">{}</rdf:li></rdf:Alt></exif:UserComment></rdf:Description></rdf:RDF>'
       "</x:xmpmeta>")  # fmt: skip


def a1111_image(path, comment: bytes | None = None, fmt: str = "JPEG", xmp: str | None = None):
    """An image as A1111/Forge save it: ``comment`` the raw EXIF UserComment (piexif's "UNICODE\\0" and UTF-16
    big-endian for them); ``xmp`` a text put in an XMP exif:UserComment instead."""
    exif = Image.Exif()
    if comment is not None:
        exif.get_ifd(0x8769)[0x9286] = comment
    extra = {"xmp": XMP.format(xmp).encode()} if xmp is not None else {}
    Image.new("RGB", (8, 8), "teal").save(path, format=fmt, exif=exif, **extra)
    return path


def test_a1111_and_forge_jpeg_and_webp_are_read_from_their_exif_or_xmp(tmp_path):
    unicode_be = b"UNICODE\0" + TEXT.encode("utf-16-be")
    files = {
        "forge.jpg": a1111_image(tmp_path / "forge.jpg", unicode_be),
        "forge.webp": a1111_image(tmp_path / "forge.webp", unicode_be, "WEBP"),
        "le.jpeg": a1111_image(tmp_path / "le.jpeg", b"UNICODE\0" + TEXT.encode("utf-16-le")),
        "bom.jpg": a1111_image(tmp_path / "bom.jpg", b"UNICODE\0" + TEXT.encode("utf-16")),
        "ascii.jpg": a1111_image(tmp_path / "ascii.jpg", b"ASCII\0\0\0" + TEXT.encode()),
        "xmp.webp": a1111_image(tmp_path / "xmp.webp", fmt="WEBP", xmp=TEXT.replace("\n", "&#10;")),
        "renamed.png": a1111_image(tmp_path / "renamed.png", unicode_be),  # a JPEG named .png, settings intact
        "png.jpg": write_png(tmp_path / "png.jpg", Image.new("RGB", (8, 8)), EXPECTED),  # a PNG named .jpg
    }
    for name, path in files.items():
        assert inspect_image(path) == ImageSettings(EXPECTED, []), name
    # a value the parser leaves out is said, as for a PNG's text chunk
    odd = a1111_image(tmp_path / "odd.jpg", b"UNICODE\0" + "a fox\nSteps: many, Seed: 3".encode("utf-16-be"))
    assert inspect_image(odd) == ImageSettings({"prompt": "a fox", "negative_prompt": "", "seed": 3, "lora_refs": []},
                                               ["its Steps 'many' is not a whole number"])  # fmt: skip


def test_a_file_without_settings_says_what_it_is_and_why(tmp_path):
    """Each file its kind and its reason, never a bare "no settings"; a camera's comment is not taken for a
    prompt (A1111's settings line is what marks the text as A1111's)."""
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    a1111_image(tmp_path / "camera.jpg", b"ASCII\0\0\0Holiday 2024, beach")
    Image.new("RGB", (8, 8)).save(tmp_path / "anim.gif")
    Image.new("RGB", (8, 8)).save(tmp_path / "flat.bmp")
    Image.new("RGB", (8, 8)).save(tmp_path / "anim.png", format="GIF")
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.jpg", format="PNG")
    (tmp_path / "notes.txt").write_text("a fox in snow — Steps: 20")
    (tmp_path / "notes.md").write_text("a fox in snow\nSteps: 20")  # settings are read from .txt files only
    header = b'{"__metadata__":{}}'
    (tmp_path / "style.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)))
    damaged = bytearray(a1111_image(tmp_path / "damaged.jpg", b"UNICODE\0" + TEXT.encode("utf-16-be")).read_bytes())
    at = damaged.index(b"Exif\0\0") + 6
    damaged[at : at + 8] = b"XX\0*\0\0\0\x08"  # no TIFF byte order: the EXIF cannot be read
    (tmp_path / "damaged.jpg").write_bytes(bytes(damaged))
    expected = {
        "photo.jpg": "it is a JPEG image without generation settings (no A1111 or Forge text in its EXIF, XMP or "
        "comments)",
        "camera.jpg": "its EXIF UserComment 'Holiday 2024, beach' is no A1111 settings text",
        "anim.gif": "it is a GIF image without generation settings (no A1111 or Forge text in its comments)",
        "flat.bmp": "it is a BMP image: settings are read from PNG, JPEG, WebP and GIF images only",
        "anim.png": "it is a GIF image, not a PNG",
        "plain.jpg": "it is a PNG image, not a JPEG",  # a PNG without settings, named .jpg
        "notes.txt": "it is a text file without an A1111 settings line (the last line, 'Steps: …', that A1111 and "
        "Forge write), not an image",
        "notes.md": "it is a text file, not an image",
        "style.safetensors": "it is a safetensors file (a model or LoRA), not an image: models and LoRAs are added "
        "in their panels",
        "folder.jpg": "it is a folder, not an image",
        "noise.bin": "it is not an image (PNG, JPEG, WebP or GIF)",
        "damaged.jpg": "its EXIF data cannot be read (damaged)",
    }
    for name, why in expected.items():
        assert inspect_image(tmp_path / name) == ImageSettings(None, [why]), name
        assert read_settings(tmp_path / name) is None


@pytest.mark.parametrize("comment", [7, IFDRational(1, 2)], ids=["number", "fraction"])
def test_an_exif_user_comment_that_is_no_text_is_named_as_damage(tmp_path, comment):
    """A UserComment stored as a number raised TypeError, as a fraction AttributeError, out of a reader that
    promises never to raise: the app said only "its settings could not be read"."""
    path = a1111_image(tmp_path / "odd.jpg", comment)
    assert inspect_image(path) == ImageSettings(
        None, ["its EXIF UserComment cannot be read (damaged: it holds a number, not text)"])  # fmt: skip


def test_a_reader_fault_is_a_problem_naming_the_files_kind(tmp_path, monkeypatch):
    """Any other fault of a reader (one not found yet, on some program's metadata) is no exception out of
    ``inspect_image``: the file's settings are said to be unreadable, naming its kind."""

    def faulty(f: BinaryIO, kind: str) -> ImageSettings:
        raise KeyError("a fault in the reader")

    monkeypatch.setitem(image_metadata._READERS, "PNG", faulty)
    path = write_png(tmp_path / "x.png", Image.new("RGB", (8, 8)), EXPECTED)
    why = "its PNG metadata cannot be read (the log file has the details)"
    assert inspect_image(path) == ImageSettings(None, [why])


def test_big_jpeg_and_webp_files_are_read_only_where_their_settings_can_be(tmp_path):
    """JPEG and WebP files were read whole at drop time, on the window's thread: a JPEG is read up to its image
    data now, a WebP's chunks walked with seeks past the image data to its EXIF."""
    comment = b"UNICODE\0" + TEXT.encode("utf-16-be")
    jpeg = a1111_image(tmp_path / "forge.jpg", comment).read_bytes()
    with open(tmp_path / "big.jpg", "wb") as f:
        f.write(jpeg)
        sparse_chunk(f, b"", 100 << 20)  # a big JPEG's image data: where it is, the metadata is behind
        f.write(b"\xff\xd9")
    webp = a1111_image(tmp_path / "forge.webp", comment, "WEBP").read_bytes()
    assert webp[12:16] == b"VP8X"  # the extended format: VP8X, the image, then EXIF
    with open(tmp_path / "big.webp", "wb") as f:
        f.write(webp[:30])
        sparse_chunk(f, b"ZZZZ" + struct.pack("<I", 100 << 20), 8 + (100 << 20))  # a chunk the reader knows not
        f.write(webp[30:])
    for name, kind in (("big.jpg", "JPEG"), ("big.webp", "WebP")):
        with CountingFile(tmp_path / name) as f:
            assert image_metadata._READERS[kind](f, kind) == ImageSettings(EXPECTED), name
            assert f.read_bytes < 4000, name


def test_a1111_text_in_a_jpeg_or_gif_comment_is_read(tmp_path):
    """Some tools write A1111's text into a JPEG comment (COM segment) or a GIF comment extension: such files had
    no settings. A comment without the settings line is named, not taken for a prompt; a file cut short in its
    comment is no exception."""
    frames = [Image.new("P", (8, 8), i) for i in range(2)]  # animated: a loop and a frame delay come first
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], loop=0, duration=50,
                   comment=TEXT.encode())  # fmt: skip
    Image.new("RGB", (8, 8)).save(tmp_path / "com.jpg", comment=TEXT.encode())
    for name in ("anim.gif", "com.jpg"):
        assert inspect_image(tmp_path / name) == ImageSettings(EXPECTED), name
    Image.new("RGB", (8, 8)).save(tmp_path / "gimp.gif", comment=b"Created with GIMP")
    assert inspect_image(tmp_path / "gimp.gif") == ImageSettings(
        None, ["its GIF comment 'Created with GIMP' is no A1111 settings text"])  # fmt: skip
    data = (tmp_path / "anim.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: data.index(b"Steps")])
    assert inspect_image(tmp_path / "cut.gif") == ImageSettings(  # read as far as it goes, and no reader fault
        None, ["its GIF comment 'a fox in snow, café 🦊 Negative prompt: blurry' is no A1111 settings text"])


def test_a1111_settings_in_a_txt_file_are_read(tmp_path):
    """A1111 and Forge can write an image's settings as ``<name>.txt`` beside it rather than into it: a .txt file
    dropped was "a text file, not an image". One that ends in A1111's settings line is read as a PNG's text
    (Windows tools' byte order mark and line ends, and UTF-16, included); a big or binary one is not read whole."""
    files = {
        "forge.txt": TEXT.encode(),
        "notepad.txt": ("\ufeff" + TEXT.replace("\n", "\r\n") + "\r\n").encode(),
        "powershell.txt": TEXT.encode("utf-16"),
    }
    words = "a fox,\u3000solo\u00a0\U0001f468\u200d\U0001f469"  # ideographic and no-break spaces, an emoji joiner
    expected_spaced = {**EXPECTED, "prompt": EXPECTED["prompt"].replace("a fox", words)}
    (tmp_path / "spaces.txt").write_bytes(TEXT.replace("a fox", words).encode())
    assert inspect_image(tmp_path / "spaces.txt") == ImageSettings(expected_spaced)  # was "no text that can be read"
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert inspect_image(tmp_path / name) == ImageSettings(EXPECTED), name
    (tmp_path / "bmx.txt").write_text("BMX rider\nSteps: 3, Seed: x")  # "BM": a BMP image by its first bytes
    bmx = ImageSettings(
        {"prompt": "BMX rider", "negative_prompt": "", "steps": 3, "lora_refs": []},
        ["its Seed 'x' is not a whole number"],
    )
    assert inspect_image(tmp_path / "bmx.txt") == bmx
    (tmp_path / "long.txt").write_text("a fox " * 11_000 + "\nSteps: 20")
    (tmp_path / "binary.txt").write_bytes(b"a fox\n" + bytes(range(256)))
    (tmp_path / "latin1.txt").write_bytes("café\nSteps: 20".encode("latin-1"))
    png = write_png(tmp_path / "image.txt", Image.new("RGB", (8, 8)), EXPECTED)  # an image named .txt: read as such
    unreadable = "it is named .txt but holds no text that can be read (no UTF-8 or UTF-16 text: binary data?)"
    expected = {
        "long.txt": "it is a text file of over 64 KB: A1111 settings are read from shorter ones only (A1111 and "
        "Forge write a few KB)",
        "binary.txt": unreadable,
        "latin1.txt": unreadable,
    }
    for name, why in expected.items():
        assert inspect_image(tmp_path / name) == ImageSettings(None, [why]), name
    assert inspect_image(png) == ImageSettings(EXPECTED)


def test_a_webp_whose_exif_size_is_damaged_keeps_its_settings(tmp_path):
    """A WebP whose EXIF chunk claims more bytes than the file has is read as far as it goes (as before the seek
    walk), not named as an EXIF chunk "over 16 MB long" in a file of a few hundred bytes."""
    comment = b"UNICODE\0" + TEXT.encode("utf-16-be")
    data = bytearray(a1111_image(tmp_path / "forge.webp", comment, "WEBP").read_bytes())
    at = data.index(b"EXIF") + 7  # the top byte of the chunk's size
    data[at] ^= 0x01
    (tmp_path / "damaged.webp").write_bytes(bytes(data))
    assert inspect_image(tmp_path / "damaged.webp") == ImageSettings(EXPECTED)
