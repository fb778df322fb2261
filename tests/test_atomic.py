"""The atomic writer's folders: a failed write into a folder tree it created takes the tree back."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import gpu.atomic
import gpu.output_folders
import gpu.output_names
from gpu.atomic import atomic_path, atomic_write_bytes, atomic_write_new, claim_free_name
from gpu.errors import OutputError


def _disk_full(*_args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_removes_the_empty_folders_it_created(tmp_path: Path, monkeypatch) -> None:
    """A write that failed (the writer raised, or the disk was full) left the new folders made for its target
    behind, empty. They are removed again; folders that were there before stay."""
    kept = tmp_path / "kept"
    kept.mkdir()
    target = kept / "new" / "deeper" / "out.png"
    with pytest.raises(ValueError, match="the writer failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("the writer failed")
    assert sorted(tmp_path.rglob("*")) == [kept]

    monkeypatch.setattr(gpu.atomic, "replace_file", _disk_full)  # fails after the writer finished
    with pytest.raises(OutputError, match="out.png: No space left on device"):
        atomic_write_bytes(target, b"whole")
    assert sorted(tmp_path.rglob("*")) == [kept]


def test_a_created_folder_that_holds_a_file_is_kept(tmp_path: Path) -> None:
    """Only empty folders go: one that received a file during the write (another writer's) stays, with its
    ancestors; a successful write keeps the folders it made."""
    target = tmp_path / "new" / "deeper" / "out.png"
    with pytest.raises(ValueError), atomic_path(target):
        (tmp_path / "new" / "other.png").write_bytes(b"another writer's")
        raise ValueError
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["new", "new/other.png"]

    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and sorted(target.parent.iterdir()) == [target]


def test_a_folder_where_files_can_be_made_but_not_removed_is_refused_naming_the_folder(tmp_path, monkeypatch):
    """Some network shares and ACLs let a file be created but not deleted; the check then said nothing useful
    (a bare error about its own probe file) or, worse, passed on to fail at the first replaced file."""

    def no_delete(path: object) -> None:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(gpu.output_folders.os, "unlink", no_delete)
    with pytest.raises(OSError) as refused:
        gpu.output_folders.check_folder_writable(tmp_path)
    assert refused.value.filename == str(tmp_path)
    assert refused.value.strerror.startswith("a file can be created in it but not removed (.write-test-")


def _another_writer_first(name: Path, data: bytes = b"another run's image") -> Callable[[Path], None]:
    """A writer that, before writing its own file, lets another process's file appear at ``name``: between any
    check of the name and the publish, as a second ``main.py generate`` in the same folder can."""

    def write(tmp: Path) -> None:
        name.write_bytes(data)
        tmp.write_bytes(b"ours")

    return write


def _no_hard_links(*_args: object, **_kwargs: object) -> None:
    raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))  # what Linux's vfat and exfat say


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_a_new_file_never_replaces_one_that_arrives_while_it_is_written(tmp_path: Path, monkeypatch,
                                                                      hard_links: bool) -> None:  # fmt: skip
    """``os.replace`` published onto whatever arrived at the name since it was found free: one of two runs'
    images was lost without a word. The name is now claimed by the publishing step; where the file system has no
    hard links (FAT/exFAT drives, some network shares), by an empty file made exclusively."""
    if not hard_links:
        monkeypatch.setattr(gpu.atomic.os, "link", _no_hard_links)
    target = tmp_path / "nibble-0.png"
    written = atomic_write_new(target, _another_writer_first(target))
    assert written == tmp_path / "nibble-0-2.png" and written.read_bytes() == b"ours"
    assert target.read_bytes() == b"another run's image"
    assert stat.S_IMODE(written.stat().st_mode) == gpu.atomic._NEW_FILE_MODE  # not the other file's mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nibble-0-2.png", "nibble-0.png"]  # no scratch left

    assert atomic_write_new(tmp_path / "free.png", lambda tmp: tmp.write_bytes(b"x")) == tmp_path / "free.png"
    taken = atomic_write_new(tmp_path / "free.png", lambda tmp: tmp.write_bytes(b"y"), first=1,
                             taken=lambda p: p.name == "free-1.png")  # e.g. a name in the app's trash
    assert taken == tmp_path / "free-2.png" and (tmp_path / "free.png").read_bytes() == b"x"


def test_a_folder_at_the_name_is_skipped_like_a_file(tmp_path: Path) -> None:
    """A folder named like the output (``nibble-7.png/``, left from sorting files by hand) was refused as "a
    folder; give a file name" once the image was made (the CLI had generated it for nothing); it is a name taken."""
    (tmp_path / "nibble-7.png").mkdir()
    written = atomic_write_new(tmp_path / "nibble-7.png", lambda tmp: tmp.write_bytes(b"ours"))
    assert written == tmp_path / "nibble-7-2.png" and written.read_bytes() == b"ours"


def test_a_failed_claim_leaves_no_empty_file_at_the_name(tmp_path: Path, monkeypatch) -> None:
    """Without hard links the name is held by an empty file until the image replaces it: a failure then must not
    leave that empty file behind as if it were an image."""
    monkeypatch.setattr(gpu.atomic.os, "link", _no_hard_links)
    monkeypatch.setattr(gpu.atomic.os, "replace", _disk_full)
    with pytest.raises(OutputError, match="nibble-0.png: No space left on device"):
        atomic_write_new(tmp_path / "nibble-0.png", lambda tmp: tmp.write_bytes(b"ours"))
    assert list(tmp_path.iterdir()) == []


def test_on_windows_the_name_is_claimed_by_a_rename_that_refuses_an_existing_file(tmp_path: Path,
                                                                                 monkeypatch) -> None:  # fmt: skip
    """Windows' rename fails on an existing name (FileExistsError): the next name is tried. A rename refused
    while another program (antivirus) briefly holds the new file is tried again, as ``replace_file`` is."""
    refusals = [PermissionError(errno.EACCES, "in use")]
    refusals[0].winerror = 32  # type: ignore[attr-defined]  # a sharing violation
    rename = os.rename

    def windows_rename(src: Path, dst: Path) -> None:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        if refusals:
            raise refusals.pop()
        rename(src, dst)

    (tmp_path / "a.png").write_bytes(b"earlier")
    src = tmp_path / "new.png"
    src.write_bytes(b"ours")
    monkeypatch.setattr(gpu.atomic.os, "rename", windows_rename)
    slept: list[float] = []
    claimed = claim_free_name(src, tmp_path / "a.png", windows=True, sleep=slept.append)
    assert claimed == tmp_path / "a-2.png" and claimed.read_bytes() == b"ours" and len(slept) == 1
    assert (tmp_path / "a.png").read_bytes() == b"earlier" and not src.exists()


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows, whose loops say other words")
def test_a_loop_of_links_above_a_folder_to_make_is_said_as_one(tmp_path: Path, monkeypatch) -> None:
    """``missing_folders`` takes a link that leads nowhere for a missing folder, and mkdir then says "File exists":
    an output or data folder under a loop of links was refused with that, where mkdir(parents=True) had said "Too
    many levels of symbolic links" (on Python 3.13, whose Path.resolve no longer raises on a loop, the data
    folder's check came to it too)."""
    import gpu.paths
    from gpu.output_lock import output_lock

    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    target = loop / "sub" / "m.safetensors"
    looping = os.strerror(errno.ELOOP)  # "Too many levels of symbolic links"
    with pytest.raises(OutputError, match=f"^{re.escape(f'cannot write {target}: {looping}')}$"):
        with output_lock(target, "quantize run"):
            pass
    image = loop / "a.png"
    with pytest.raises(OutputError, match=f"^{re.escape(f'cannot write {image}: {looping}')}$"):
        atomic_write_bytes(image, b"x")
    with pytest.raises(OSError) as raised:
        gpu.output_folders.make_folders(gpu.output_folders.missing_folders(loop / "sub"))
    assert raised.value.errno == errno.ELOOP and raised.value.filename == str(loop)
    assert gpu.output_folders.folder_problem(loop / "sub", raised.value) == f"{loop}: a symbolic link loop"
    for data in (loop / "data", loop):  # the data folder under the loop, and the loop itself
        monkeypatch.setenv("NIBBLE_DATA_DIR", str(data))
        with pytest.raises(OSError) as raised:
            gpu.paths.user_data_dir()
        assert raised.value.errno == errno.ELOOP
        assert gpu.output_folders.folder_problem(data, raised.value).endswith("a symbolic link loop")
    assert sorted(tmp_path.iterdir()) == [loop]


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_link_that_leads_nowhere_above_a_folder_to_make_is_named_with_its_target(tmp_path: Path,
                                                                                 monkeypatch) -> None:  # fmt: skip
    """A link to a folder that is not there (an unplugged drive) above an output or data folder was refused as
    "File exists", after the work for an output. It is named, with its target, before anything is written, and
    its target is never made."""
    import gpu.paths
    from gpu.output_lock import output_lock

    link, gone = tmp_path / "drive", tmp_path / "unplugged"
    os.symlink(gone, link)
    why = f"{link} is a link to {gone}, which is not there: the drive it is on may be unplugged or unmounted"
    target = link / "sub" / "m.safetensors"
    for refused in (pytest.raises(OutputError, gpu.output_names.check_output_path, target),
                    pytest.raises(OutputError, atomic_write_bytes, target, b"x")):  # fmt: skip
        assert str(refused.value).startswith(f"cannot write {target}: {why}"), refused.value
        assert refused.value.hint.startswith("plug in or mount the drive the link leads to")
    with pytest.raises(OutputError, match=f"^{re.escape(f'cannot write {target}: {why}')}"):
        with output_lock(target, "quantize run"):
            pass
    with pytest.raises(FileNotFoundError) as raised:
        gpu.output_folders.make_folders(gpu.output_folders.missing_folders(link / "sub"))
    assert raised.value.filename == str(link) and raised.value.strerror.startswith(why)
    assert gpu.output_folders.folder_problem(link / "sub", raised.value) == raised.value.strerror
    for data in (link / "data", link):  # the data folder under the link, and the link itself
        monkeypatch.setenv("NIBBLE_DATA_DIR", str(data))
        with pytest.raises(FileNotFoundError, match=re.escape(why)):
            gpu.paths.user_data_dir()
    assert sorted(tmp_path.iterdir()) == [link]  # nothing made, the link's target least of all


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_chain_of_links_and_a_relative_link_that_lead_nowhere_say_where(tmp_path: Path) -> None:
    """A link to a link that leads nowhere was said as "first is a link to second, which is not there", second
    being there (a link); a relative target raw ("a link to ../elsewhere/gone"), which said nothing of where. The
    target is joined onto the link's folder, and a chain is followed to where it ends."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "second").symlink_to(home / "unplugged")
    (home / "first").symlink_to("second")
    (home / "rel").symlink_to("../elsewhere/gone")
    said = {}
    for top in ("first", "rel"):
        with pytest.raises(OutputError) as refused:
            gpu.output_names.check_output_path(home / top / "sub" / "a.png")
        said[top] = str(refused.value).split(": the drive")[0]
    assert said == {"first": f"cannot write {home / 'first/sub/a.png'}: {home / 'first'} is a link to "
                             f"{home / 'second'}, which leads on to {home / 'unplugged'}, which is not there",
                    "rel": f"cannot write {home / 'rel/sub/a.png'}: {home / 'rel'} is a link to "
                           f"{tmp_path / 'elsewhere' / 'gone'}, which is not there"}  # fmt: skip


def test_the_folders_made_above_one_that_could_not_be_made_are_taken_back(tmp_path: Path) -> None:
    """``remove_empty_folders`` stopped at the first folder of its list that was never made: a lock on
    a/b/<300 characters>/c/m.safetensors (a name too long to make) left a and a/b behind. One that is not there
    is passed over; one that holds a file still stops it, and its ancestors stay."""
    from gpu.output_lock import output_lock

    target = tmp_path / "a" / "b" / ("x" * 300) / "c" / "m.safetensors"
    with pytest.raises(OutputError, match=f"^{re.escape(f'cannot write {target}: ')}"):
        with output_lock(target, "quantize run"):
            pass
    assert sorted(tmp_path.iterdir()) == []

    made = gpu.output_folders.missing_folders(tmp_path / "p" / "q" / "never" / "r")
    gpu.output_folders.make_folders(made[2:])  # p and p/q: the two deeper ones were never made
    (tmp_path / "p" / "kept").write_bytes(b"mine")
    gpu.output_folders.remove_empty_folders(made)
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "p", tmp_path / "p" / "kept"]


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need a privilege on Windows")
def test_a_user_file_that_is_a_link_is_written_where_it_points_and_stays_a_link(tmp_path: Path) -> None:
    """settings.json linked from a dotfiles folder became a plain file at the first autosave (the rename replaced
    the link), and the dotfiles copy was never updated again. Written through, the link stays; the app's settings
    are saved so, and so is a chain of links."""
    from app.settings import Settings, load_settings, save_settings

    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "settings.json"
    real.write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    hop = tmp_path / "hop.json"
    hop.symlink_to(real)
    link = data / "settings.json"
    link.symlink_to(hop)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and hop.is_symlink() and real.read_bytes() == b"new"
    settings = Settings()
    settings.preview_every = 7
    save_settings(link, settings)
    assert link.is_symlink() and load_settings(real).preview_every == 7
    assert sorted(p.name for p in data.iterdir()) == ["settings.json"]  # no scratch folder left beside the link
