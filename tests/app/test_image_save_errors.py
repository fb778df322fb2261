"""An image that cannot be saved (a drive failing, unplugged): the error named a hidden temporary file
(``…/.deecbc02.euge_oy7.tmp/new.png: Input/output error``) instead of the image, because the exclusive publish
(``gpu.atomic.atomic_write_new``) was handed ``write_png``, atomic itself, which wrote into a scratch folder inside
the first one; every image was also fsynced twice. The app's save (``EngineWorker._save``) and ``main.py
generate``'s (``main.save_new_image``) write the PNG plainly into the publish's scratch file (``encode_png``)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

import main
from app.data_dir import DataDir
from app.engine_errors import classify
from app.engine_worker import EngineWorker
from gpu.errors import OutputError
from gpu.generation.request import GeneratedImage

SETTINGS = {"seed": 7, "prompt": "a red square"}


class _FailingDrive:
    """Stands in for the generated PIL image on a drive that fails every write (EIO)."""

    def save(self, fp, **_kwargs) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def _app_save(folder: Path, image) -> Path:
    worker = EngineWorker(DataDir(folder / "data").create())
    return worker._save(SimpleNamespace(image=image, settings=dict(SETTINGS)), 0).path


def _cli_save(folder: Path, image) -> Path:
    os.chdir(folder)  # generate without --out saves into the current folder (the test's own: monkeypatch.chdir)
    return main.save_new_image(GeneratedImage(image, dict(SETTINGS)))


EIO = re.escape(os.strerror(errno.EIO))
# (saver, the error's message, "TMP" for the test's folder): the app's names the image in its day's folder and
# says it was not saved (``image_not_saved``); the command line's is the engine's own
SAVERS = [(_app_save, rf"The image \d{{6}}-7-0\.png cannot be saved in TMP/data/images/\d{{4}}-\d\d-\d\d: {EIO}\. "
                      r"The picture just generated was not saved\."),
          (_cli_save, rf"cannot write (TMP/)?nibble-7\.png: {EIO}")]  # relative, as generate was given it


@pytest.mark.parametrize(("save", "said"), SAVERS, ids=["app", "cli"])
def test_an_image_that_cannot_be_written_is_named_in_the_error(qapp, tmp_path, monkeypatch, save, said):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError) as raised:
        save(tmp_path, _FailingDrive())
    # was: …/.deecbc02.euge_oy7.tmp/new.png
    assert re.fullmatch(said.replace("TMP", re.escape(str(tmp_path))), str(raised.value)), str(raised.value)
    assert classify(raised.value).message == str(raised.value)  # as the user is told it
    assert [p for p in tmp_path.rglob("*") if p.is_file() or p.suffix == ".tmp"] == []  # no temp file or folder


@pytest.mark.parametrize("save", [s for s, _ in SAVERS], ids=["app", "cli"])
def test_an_image_is_fsynced_once(qapp, tmp_path, monkeypatch, save):
    monkeypatch.chdir(tmp_path)
    synced: list[int] = []
    fsync = os.fsync

    def counted(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # a file's data, not a folder's entries
            synced.append(fd)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", counted)
    written = save(tmp_path, Image.new("RGB", (8, 8), (200, 0, 0)))
    assert len(synced) == 1  # was: 2, write_png's own atomic write inside the publish's
    with Image.open(written) as saved:
        assert saved.size == (8, 8) and "nibble" in saved.text


class _Refusing:
    """Stands in for the generated PIL image; its save raises ``error``."""

    def __init__(self, error: OSError) -> None:
        self.error = error

    def save(self, fp, **_kwargs) -> None:
        raise self.error


def _held_by_another_program() -> OSError:
    err = PermissionError(errno.EACCES, "The process cannot access the file because it is being used by another "
                                        "process")  # fmt: skip
    err.winerror = 32  # type: ignore[attr-defined]  # a sharing violation, as Windows reports an antivirus's hold
    return err


def _link_to_unplugged_drive(folder: Path) -> OSError:
    from gpu.output_folders import LinkLeadsNowhere

    (link := folder / "images-link").symlink_to(folder / "usb" / "images")
    return LinkLeadsNowhere(link)


@pytest.mark.parametrize(("refusal", "reason", "hint"), [
    # the cause's own reason and remedy (was: the OS's words, and "Check that the folder can be written …")
    (lambda _: _held_by_another_program(), "the file is open in another program", "close the program that has it"),
    (_link_to_unplugged_drive, "TMP/images-link is a link to ", "plug in or mount the drive"),
    # the folder or its disk: the app's remedy, not the command line's "choose a folder you can write to"
    (lambda _: PermissionError(errno.EACCES, os.strerror(errno.EACCES)), os.strerror(errno.EACCES),
     "Check that the folder can be written"),
    (lambda _: OSError(errno.EIO, os.strerror(errno.EIO)), os.strerror(errno.EIO), "Check that the folder can be"),
], ids=["held", "link", "permission", "io"])  # fmt: skip
def test_an_image_not_saved_keeps_its_causes_reason_and_remedy(qapp, tmp_path, refusal, reason, hint):
    with pytest.raises(OutputError) as raised:
        _app_save(tmp_path, _Refusing(refusal(tmp_path)))
    message = str(raised.value)
    assert message.startswith("The image ") and message.endswith(". The picture just generated was not saved.")
    assert f"cannot be saved in {tmp_path / 'data' / 'images'}" in message
    assert f": {reason}".replace("TMP", str(tmp_path)) in message, message
    assert raised.value.hint.startswith(hint), raised.value.hint
