"""An image's model restored as the file it was made with, not only by its name: the library may give that name to
another file now (the models removed and added again in another order, two files of one name in two folders). The
name alone picked the other file without a word, and new images came out of another model. Hashes are compared
only where they are known without reading the files (models this session used): hashing gigabytes on the window's
thread would freeze it."""

from __future__ import annotations

import json
import struct

from gpu.paths import resources_dir
from tests.app.gui import generate_one, restored_from

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def _other_file(path, comment: str) -> None:
    """The demo INT4 model at ``path`` with one more header entry, ``comment``: the same weights, another file
    (another hash, also than demo-int4's, which an earlier test of the process may have hashed)."""
    raw = DEMO_INT4.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"]["comment"] = comment
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])


def _made_with(qtbot, controller, name: str):
    controller.select_model(name)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == name, timeout=60000)
    return generate_one(qtbot, controller)


def _add(qtbot, controller, path) -> str:
    with qtbot.waitSignal(controller.add_ended, timeout=60000) as ended:
        controller.add_model(path)
    return ended.args[1]


def _restore_notices(notices: list) -> list:
    """The notices of ``notices`` that a restore gave (the read of the dropped file waits on the event loop, where
    the library's own notices of the models just added come meanwhile)."""
    return [n for n in notices if n.message.startswith("Settings restored from")]


def test_an_images_model_is_restored_by_its_hash_where_the_name_is_another_files(qtbot, window, tmp_path):
    controller = window.controller
    notices = []
    controller.error.connect(notices.append)
    dev, schnell = tmp_path / "dev" / "flux-int4.safetensors", tmp_path / "schnell" / "flux-int4.safetensors"
    dev.parent.mkdir()
    schnell.parent.mkdir()
    _other_file(dev, "dev build")
    _other_file(schnell, "schnell build")
    assert [_add(qtbot, controller, dev), _add(qtbot, controller, schnell)] == ["flux-int4", "flux-int4-2"]
    made = _made_with(qtbot, controller, "flux-int4")  # the dev file
    other = _made_with(qtbot, controller, "flux-int4-2")
    assert made.settings["model_hash"] != other.settings["model_hash"]
    said = len(notices)
    restored_from(controller, [controller.data.images / made.path])  # its name's file has its hash: as saved
    assert controller.prompt.model == "flux-int4" and notices[said:] == []

    # Removed and added again in the other order: "flux-int4" is the schnell file now
    for name in ("flux-int4", "flux-int4-2"):
        with qtbot.waitSignal(controller.library_changed, timeout=60000):
            controller.remove_model(name)
    assert [_add(qtbot, controller, schnell), _add(qtbot, controller, dev)] == ["flux-int4", "flux-int4-2"]
    controller.select_model("demo")
    said = len(notices)
    restored_from(controller, [controller.data.images / made.path])
    assert controller.prompt.model == "flux-int4-2"  # the dev file, the one the image was made with
    (notice,) = _restore_notices(notices[said:])
    assert "the image's 'flux-int4' is 'flux-int4-2' here" in notice.message
    assert made.settings["model_hash"] in notice.message

    # The file it was made with is no longer listed: the name's file is selected, and said to be another one
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller.remove_model("flux-int4-2")
    controller.select_model("demo")
    said = len(notices)
    restored_from(controller, [controller.data.images / made.path])
    assert controller.prompt.model == "flux-int4"
    (notice,) = _restore_notices(notices[said:])
    assert "'flux-int4' here is not the file the image was made with" in notice.message
    assert made.settings["model_hash"] in notice.message and other.settings["model_hash"] in notice.message

    said = len(notices)
    restored_from(controller, [controller.data.images / other.path])  # the schnell file's: 'flux-int4-2' then
    assert controller.prompt.model == "flux-int4"
    (notice,) = _restore_notices(notices[said:])
    assert "the image's 'flux-int4-2' is 'flux-int4' here" in notice.message


def test_restoring_an_images_model_again_after_a_chmod_reads_no_file_on_the_windows_thread(qtbot, window, tmp_path,
                                                                                           monkeypatch):  # fmt: skip
    """A chmod (a sync tool fixing permissions, a backup's hard link) moves a model file's change time alone. Each
    restore from an image then read the head of that file on the window's thread to tell it is the same file: the
    engine's cache of hashes keeps the change time it hashed, and the window's thread does not write it. The first
    restore after it still reads the head; the next ones read nothing, the engine's cache left as it was; and a file
    put in its place since (the same size and time) is looked at again, not taken for the one hashed."""
    import os
    import threading

    import gpu.model_hash

    controller = window.controller
    mine = tmp_path / "mine" / "flux-int4.safetensors"
    mine.parent.mkdir()
    _other_file(mine, "my build")
    name = _add(qtbot, controller, mine)
    made = _made_with(qtbot, controller, name)
    reads: list[str] = []  # the files whose head is read on the window's thread
    real = gpu.model_hash.head_digest
    monkeypatch.setattr(gpu.model_hash, "head_digest", lambda path: (
        threading.current_thread() is threading.main_thread() and reads.append(str(path))) or real(path))  # fmt: skip
    mine.chmod(0o600)
    cache = dict(gpu.model_hash._HASHES)

    def restored() -> str:
        controller.select_model("demo")
        restored_from(controller, [controller.data.images / made.path])
        return controller.prompt.model

    assert restored() == name and reads == [str(mine)]  # the first restore after the chmod: its head
    assert restored() == name and restored() == name
    assert reads == [str(mine)]  # was: read again at each restore
    assert gpu.model_hash._HASHES == cache
    times = mine.stat()
    _other_file(mine, "my blind")  # another file in its place, its size and time those of the one hashed
    os.utime(mine, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert mine.stat().st_size == times.st_size
    restored()
    assert reads == [str(mine), str(mine)]
