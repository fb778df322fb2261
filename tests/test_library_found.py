"""The library's side of the models folder's search (``gpu.library_found``) and of a checksum verified once
(``gpu.checkpoint.verified``): what is found, what a removal leaves out and for how long, and that a file the
quantizer has just verified is added without reading it again, but only while it is that very file."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from header_files import edit_svdq_meta

import gpu
import gpu.checkpoint.format as checkpoint_format
from gpu.checkpoint.verified import forget_verified, verify_checkpoint_once
from gpu.errors import ModelLoadError
from gpu.library import ModelLibrary
from gpu.library_found import add_found_models, found_models, left_out
from gpu.paths import resources_dir

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


@pytest.fixture(autouse=True)
def _no_verification_remembered():
    forget_verified()
    yield
    forget_verified()


def _copy(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(DEMO_INT4, folder / name))


def _failing_for(monkeypatch, module: object, name: str, path: Path, err: Exception) -> Callable:
    """Makes the check ``module.name`` raise ``err`` for the file at ``path`` (and check any other as before);
    returns the check as it was."""
    check = getattr(module, name)

    def failing(checked):
        if Path(checked) == path:
            raise err
        return check(checked)

    monkeypatch.setattr(module, name, failing)
    return check


def _count_full_reads(monkeypatch) -> list[Path]:
    """The files ``verify_checkpoint`` reads whole from now on."""
    reads: list[Path] = []
    verify = checkpoint_format.verify_checkpoint

    def counted(path):
        reads.append(Path(path))
        return verify(path)

    monkeypatch.setattr(checkpoint_format, "verify_checkpoint", counted)
    return reads


def test_a_file_just_verified_is_added_without_reading_it_again_but_only_while_unchanged(tmp_path, monkeypatch):
    reads = _count_full_reads(monkeypatch)
    model = _copy(tmp_path / "models", "flux-int4.safetensors")
    verify_checkpoint_once(model)  # as the quantizer checks its output
    library = ModelLibrary(tmp_path / "data")
    assert library.add(model).name == "flux-int4"
    assert reads == [model]  # the add took the quantizer's verification

    # The same bytes' size and times, one byte changed: a write changes the file's change time, which no tool
    # sets back, so the changed file is read whole again and refused.
    changed = _copy(tmp_path / "models", "changed-int4.safetensors")
    verify_checkpoint_once(changed)
    st = os.stat(changed)
    data = bytearray(changed.read_bytes())
    data[-100] ^= 0xFF
    with changed.open("r+b") as f:
        f.write(data)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(changed).st_size == st.st_size and os.stat(changed).st_mtime_ns == st.st_mtime_ns
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        library.add(changed)
    assert reads == [model, changed, changed]

    # Another file renamed over a verified one's path is another file: read whole as well
    replaced = _copy(tmp_path / "models", "replaced-int4.safetensors")
    verify_checkpoint_once(replaced)
    os.replace(_copy(tmp_path / "other", "new.safetensors"), replaced)
    library.add(replaced)
    assert reads == [model, changed, changed, replaced, replaced]


def _listed_on_a_drive(tmp_path: Path, drive: Path) -> tuple[ModelLibrary, Path, Path]:
    """A library in ``tmp_path / "data"`` whose models folder links to ``drive`` (an external drive's folder), with
    the model ``flux-int4`` kept there listed; (the library, the model's file on the drive, the models folder)."""
    models = tmp_path / "data" / "models"
    model = _copy(drive, "flux-int4.safetensors")
    models.parent.mkdir()
    models.symlink_to(drive)  # the data folder's models folder kept on the external drive
    library = ModelLibrary(tmp_path / "data")
    library.add(models / "flux-int4.safetensors")
    return library, model, models


def _unmount(mount: Path) -> Path:
    """The drive mounted at ``mount`` unmounted: the mount point stays, an empty folder; returns where its files
    are meanwhile. Moved with its folder, the file keeps its change time, as a drive mounted again gives it back."""
    offline = mount.rename(mount.with_name(f"{mount.name}-offline"))
    mount.mkdir()
    return offline


def _mount_again(mount: Path, offline: Path) -> None:
    """The drive ``_unmount`` unmounted from ``mount`` mounted there again."""
    mount.rmdir()
    offline.rename(mount)


def test_found_models_are_whole_unlisted_svdq_files_not_left_out(tmp_path):
    models = tmp_path / "models"
    listed = _copy(models, "listed-int4.safetensors")
    found = _copy(models, "found-int4.safetensors")
    _copy(models / "run-int4.safetensors.parts", "block-0000.safetensors")  # a stopped run's blocks
    _copy(models / ".run-int4.safetensors.x1y2.tmp", "new.safetensors")  # a write cut short
    _copy(models, ".hidden-int4.safetensors")
    (models / "notes.txt").write_text("no model")
    library = ModelLibrary(tmp_path / "data")
    library.add(listed)
    assert found_models(models, [e.path for e in library.entries()], library.file) == [found]
    assert found_models(tmp_path / "no-such-folder", [], library.file) == []


def _removed_model(tmp_path: Path) -> tuple[Path, Path, ModelLibrary]:
    """(the models folder, a model file in it, the library): the model added, then removed by the user (Remove keeps
    its file), and left out of the models folder's search as it should be."""
    models = tmp_path / "models"
    model = _copy(models, "flux-int4.safetensors")
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    library.remove("flux-int4")
    assert found_models(models, [], library.file) == []
    return models, model, library


def test_a_removal_leaves_the_file_out_until_it_is_another_file_or_added_again(tmp_path):
    models, model, library = _removed_model(tmp_path)
    library.add(_copy(models, "other-int4.safetensors"))  # the removal survives other changes to the list
    assert found_models(models, [e.path for e in library.entries()], library.file) == []
    assert [e.name for e in add_found_models(library, models, [e.path for e in library.entries()])] == []

    library.add(model)  # added again by the user: no longer left out
    assert "unlisted" not in json.loads(library.file.read_text())
    library.remove("flux-int4")
    listed = [e.path for e in library.entries()]
    assert found_models(models, listed, library.file) == []
    # A new run that writes the same name after the file was deleted wrote another model: found
    model.unlink()
    shutil.copyfile(DEMO_INT4, model)
    os.utime(model, ns=(1, 1))
    assert found_models(models, listed, library.file) == [model]


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_removal_in_a_models_folder_whose_drive_is_unplugged_outlives_the_saves_made_meanwhile(tmp_path):
    """A record held only while its file could be looked at: a library saved while the models folder's drive was
    unplugged (another model added) dropped the removal of a model there, and the next start with the drive back
    added the model the user had removed."""
    drive = tmp_path / "usb" / "models"
    library, model, models = _listed_on_a_drive(tmp_path, drive)
    library.remove("flux-int4")
    drive.parent.rename(tmp_path / "unplugged")
    library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))  # saved while the drive is away
    assert [r["path"] for r in json.loads(library.file.read_text())["unlisted"]] == [str(model)]
    (tmp_path / "unplugged").rename(drive.parent)  # plugged in again: the removal still holds
    listed = [e.path for e in library.entries()]
    assert found_models(models, listed, library.file) == [] and left_out(library.file, model) == "removed"
    (drive / model.name).unlink()  # gone from a folder that is there: forgotten at the next save
    library.add(_copy(tmp_path / "elsewhere", "third-int4.safetensors"))
    assert "unlisted" not in json.loads(library.file.read_text())


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_model_removed_while_its_drive_is_unplugged_stays_removed_once_the_drive_is_back(tmp_path):
    """Its file could not be looked at, so no record was written, and the model the user removed was found and
    added again at the first start with the drive back. Recorded by its path alone, it holds for the file found
    there then, whose size and time it takes at the next save; a file written there later is another."""
    drive = tmp_path / "usb" / "models"
    library, model, models = _listed_on_a_drive(tmp_path, drive)
    drive.parent.rename(tmp_path / "unplugged")
    library.remove("flux-int4")  # removed while it is listed as missing
    library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))  # saved while the drive is away
    (record,) = json.loads(library.file.read_text())["unlisted"]
    assert {k: record[k] for k in ("path", "why")} == {"path": str(model), "why": "removed"} and "size" not in record
    (tmp_path / "unplugged").rename(drive.parent)  # plugged in again
    listed = [e.path for e in library.entries()]
    assert found_models(models, listed, library.file) == [] and left_out(library.file, model) == "removed"
    library.add(_copy(tmp_path / "elsewhere", "third-int4.safetensors"))  # the next save stamps it
    (record,) = json.loads(library.file.read_text())["unlisted"]
    assert (record["size"], record["mtime_ns"]) == (model.stat().st_size, model.stat().st_mtime_ns)
    assert found_models(models, [e.path for e in library.entries()], library.file) == []
    os.utime(model, ns=(1, 1))  # another file written under that name since: found
    assert found_models(models, [e.path for e in library.entries()], library.file) == [models / model.name]


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_removal_on_a_drive_unmounted_from_its_mount_point_outlives_the_saves_made_meanwhile(tmp_path):
    """A models folder linked to an fstab mount point is an empty folder while the drive is unmounted: the folder
    being there, the removal's file was taken for gone and its record dropped at the next save. The record names
    the device of the file's folder; a folder on another device now is the drive away."""
    mount = tmp_path / "mnt" / "usb"
    library, model, models = _listed_on_a_drive(tmp_path, mount)
    library.remove("flux-int4")
    data = json.loads(library.file.read_text())
    assert data["unlisted"][0]["dev"] == mount.stat().st_dev
    data["unlisted"][0]["dev"] += 1  # made while the drive was mounted there: another device than the folder's now
    library.file.write_text(json.dumps(data))
    offline = _unmount(mount)
    library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))  # saved while the drive is away
    assert [r["path"] for r in json.loads(library.file.read_text())["unlisted"]] == [str(model)]
    _mount_again(mount, offline)
    assert found_models(models, [e.path for e in library.entries()], library.file) == []


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_model_removed_while_its_drive_is_unmounted_from_its_mount_point_stays_removed(tmp_path):
    """Removed while the mount point was an empty folder, the model was taken for deleted: no record was written,
    and the next start with the drive mounted again added the model the user had removed. Its path is recorded;
    the drive's own folder mounted again without the file (another device) forgets it."""
    mount = tmp_path / "mnt" / "usb"
    library, model, models = _listed_on_a_drive(tmp_path, mount)
    offline = _unmount(mount)
    library.remove("flux-int4")  # removed while it is listed as missing
    library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))  # saved while the drive is unmounted
    (record,) = json.loads(library.file.read_text())["unlisted"]
    assert (record["path"], record["why"], record["missing_dev"]) == (str(model), "removed", mount.stat().st_dev)
    _mount_again(mount, offline)
    listed = [e.path for e in library.entries()]
    assert found_models(models, listed, library.file) == [] and left_out(library.file, model) == "removed"
    model.unlink()  # the drive's own folder (another device than the empty mount point's), without the file: gone
    data = json.loads(library.file.read_text())
    data["unlisted"][0]["missing_dev"] += 1
    library.file.write_text(json.dumps(data))
    library.add(_copy(tmp_path / "elsewhere", "third-int4.safetensors"))
    assert "unlisted" not in json.loads(library.file.read_text())


def test_a_model_removed_after_its_file_was_deleted_leaves_out_no_file_written_there_later(tmp_path):
    """Its folder there, nothing tells a file deleted from an empty mount point: the removal is kept, but a file
    written at that path after it is another model (a quantize run whose add was lost), found."""
    models = tmp_path / "models"
    model = _copy(models, "flux-int4.safetensors")
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    model.unlink()
    library.remove("flux-int4")
    library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))
    assert [r["path"] for r in json.loads(library.file.read_text())["unlisted"]] == [str(model)]
    _next_tick()
    shutil.copyfile(DEMO_INT4, model)
    record_time = json.loads(library.file.read_text())["unlisted"][0]["at_ns"]
    os.utime(model, ns=(record_time + 10**9, record_time + 10**9))  # written a second after the removal
    assert found_models(models, [e.path for e in library.entries()], library.file) == [model]
    # Put there after the removal with an older modification time (a backup restored with cp -p, touch -r): it was
    # taken for the file removed and stayed out; its change time, which no copy keeps, says it was put there since
    os.utime(model, ns=(record_time - 10**9, record_time - 10**9))
    assert found_models(models, [e.path for e in library.entries()], library.file) == [model]


def _next_tick() -> None:
    """Waits out a tick of the file system's clock, which stamps change times coarsely (a few milliseconds): a file
    written in the same tick as what came before could not be told later."""
    time.sleep(0.05)


def _put_back_with_its_old_time(path: Path, source: Path = DEMO_INT4) -> None:
    """``source`` copied to ``path`` with the size and modification time the file there had (``cp -p`` of a backup
    of it, ``touch -r``): only the change time, which no program can set back, tells the copy."""
    st = path.stat()
    _next_tick()
    shutil.copyfile(source, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_ctime_ns != st.st_ctime_ns


def test_a_good_copy_put_back_over_a_damaged_file_with_its_old_time_is_found(tmp_path):
    """A model found damaged (a bit flipped on the disk: its size and time unchanged) is left out while it is that
    file. Its backup, put back with the time it had (``cp -p``), has the same size and time: it was taken for the
    damaged file, and the good model stayed out for good. It is found, checked and added."""
    models = tmp_path / "models"
    model = _copy(models, "flux-int4.safetensors")
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    with model.open("r+b") as f:  # in place, as a disk's fault does
        f.write(bytes(data))
    library = ModelLibrary(tmp_path / "data")
    assert add_found_models(library, models, []) == [] and left_out(library.file, model) == "damaged"
    assert add_found_models(library, models, []) == []  # the same damaged file: left out still
    _put_back_with_its_old_time(model)
    assert [e.name for e in add_found_models(library, models, [])] == ["flux-int4"]


@pytest.mark.parametrize("saved_meanwhile", [False, True])
def test_a_removed_models_file_deleted_then_put_back_with_its_old_time(tmp_path, saved_meanwhile):
    """A file of a model removed is left out while it is that very model. Deleted, then put back from a backup with
    its old time: it is the model removed, and stays out, as long as no save of the library came in between; a save
    forgets a record whose file is gone, and the file put back after it is found (a record held for a gone file
    would leave out any model written at that name later). Another file written there is found either way."""
    models = tmp_path / "models"
    model = _copy(models, "flux-int4.safetensors")
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    library.remove("flux-int4")
    listed = [e.path for e in library.entries()]
    assert found_models(models, listed, library.file) == []
    st = model.stat()
    model.unlink()
    _next_tick()
    if saved_meanwhile:
        library.add(_copy(tmp_path / "elsewhere", "other-int4.safetensors"))
        listed = [e.path for e in library.entries()]
    shutil.copyfile(DEMO_INT4, model)
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert found_models(models, listed, library.file) == ([model] if saved_meanwhile else [])
    model.unlink()
    edit_svdq_meta(DEMO_INT4, model, lambda meta: meta["base_model"]["defaults"].update(guidance=4.0))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert found_models(models, listed, library.file) == [model]


def _chmod(model: Path, tmp_path: Path) -> None:
    """``chmod`` (a user making the models folder read-only, ``chmod -R``, a sync tool fixing permissions): the
    file's bytes, size and modification time unchanged, its change time moved."""
    os.chmod(model, 0o444)


def _hard_link(model: Path, tmp_path: Path) -> None:
    """A hard-linking backup (rsnapshot, ``cp -al``) links the file into its snapshot: the link count, and so the
    change time, moves; nothing of the file itself."""
    backup = tmp_path / "snapshot"
    backup.mkdir()
    os.link(model, backup / model.name)


@pytest.mark.skipif(os.name == "nt", reason="POSIX change time")
@pytest.mark.parametrize("touch", [_chmod, _hard_link], ids=["chmod", "hard-link backup"])
def test_a_removed_model_stays_removed_after_its_change_time_alone_moves(tmp_path, touch):
    """Anything that moved the file's change time without touching the file (chmod, a backup's hard link, an
    attribute an indexer sets) made the removal's record stop holding once it compared the change time (F62), and
    the next start added the removed model back, unasked (R62)."""
    models, model, library = _removed_model(tmp_path)
    st = model.stat()
    _next_tick()
    touch(model, tmp_path)
    assert model.stat().st_ctime_ns != st.st_ctime_ns
    assert found_models(models, [], library.file) == []
    assert [e.name for e in add_found_models(library, models, [])] == []
    assert left_out(library.file, model) == "removed"  # and the save kept the record


def test_a_damaged_file_found_is_left_out_and_not_read_again(tmp_path, monkeypatch):
    models = tmp_path / "models"
    damaged = _copy(models, "damaged-int4.safetensors")
    data = bytearray(damaged.read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    library = ModelLibrary(tmp_path / "data")
    reads = _count_full_reads(monkeypatch)
    assert add_found_models(library, models, []) == []
    assert add_found_models(library, models, []) == []
    assert reads == [damaged]  # once: then left out, as damaged
    records = json.loads(library.file.read_text())["unlisted"]
    assert [(r["path"], r["why"]) for r in records] == [(str(damaged), "damaged")]
    assert [e.name for e in library.entries() if not e.builtin] == []


def test_a_file_whose_check_fails_unexpectedly_stops_no_other_file_found(tmp_path, monkeypatch):
    """A model_config with a head width of 0 raised ZeroDivisionError out of the models folder's scan at every start,
    and every finished model sorted after it was never added: it is a damaged file's error (left out), and an error
    no check names yet is that file's alone (logged, and left out with its reason: ``test_a_file_whose_check_fails_
    unexpectedly_is_left_out_while_unchanged``)."""
    import gpu.checkpoint.verified as verified

    models = tmp_path / "models"
    broken = edit_svdq_meta(DEMO_INT4, models / "a-broken-int4.safetensors",
                            lambda meta: meta["model_config"].update(attention_head_dim=0))  # fmt: skip
    odd = _copy(models, "b-odd-int4.safetensors")
    _copy(models, "c-good-int4.safetensors")
    _failing_for(monkeypatch, verified, "verify_checkpoint_once", odd, IndexError("a case no check names"))
    library = ModelLibrary(tmp_path / "data")
    assert [e.name for e in add_found_models(library, models, [])] == ["c-good-int4"]
    records = json.loads(library.file.read_text())["unlisted"]
    assert [(r["path"], r["why"]) for r in records] == [
        (str(broken), "damaged"), (str(odd), "it could not be checked (IndexError: a case no check names)")]


def test_a_file_whose_check_fails_unexpectedly_is_left_out_while_unchanged(tmp_path, monkeypatch, caplog):
    """A file whose check failed with an error no check names was not recorded as left out, unlike a damaged one:
    every start read it whole again (its checksum: minutes for a large model on a slow disk) and logged the same
    traceback. It is left out with its reason while it stays unchanged (the traceback logged once); changed, it is
    checked again. A memory running out is no fault of the file: tried again at the next start."""
    models = tmp_path / "models"
    odd = _copy(models, "odd-int4.safetensors")
    checks: list[Path] = []
    failure: list[Exception] = [MemoryError()]

    def failing(path):
        checks.append(Path(path))
        raise failure[0]

    monkeypatch.setattr(checkpoint_format, "verify_checkpoint", failing)
    library = ModelLibrary(tmp_path / "data")
    assert add_found_models(library, models, []) == []
    assert checks == [odd] and not library.file.exists()  # out of memory: nothing recorded, tried again
    failure[0] = RuntimeError("a case no check names")
    caplog.clear()
    with caplog.at_level("ERROR", logger="gpu.library_found"):
        assert add_found_models(library, models, []) == []  # the next start
    assert checks == [odd, odd]
    assert left_out(library.file, odd) == "it could not be checked (RuntimeError: a case no check names)"
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.exc_info is not None and "RuntimeError: a case no check names" in caplog.text  # the traceback
    assert add_found_models(library, models, []) == []  # the start after: not checked again
    assert checks == [odd, odd]
    with odd.open("ab") as f:  # changed (a new run wrote that name again): checked again
        f.write(b"\0")
    assert add_found_models(library, models, []) == []
    assert checks == [odd, odd, odd]


@pytest.mark.parametrize("recorded", ["by an earlier version", "without a version"])
def test_a_file_left_out_for_an_unexpected_failure_is_checked_again_by_another_version(tmp_path, monkeypatch,
                                                                                       recorded):  # fmt: skip
    """A good model whose check hit a bug of the app was left out for good: its record outlived the update that
    fixed the bug, and the app never shows left-out files. Then it held the app's version number, which stays the
    same over any number of fixes between releases: a fixed engine checked nothing again. The record holds the
    engine's stamp (its version and code) and holds only under it (one written before records held a version is an
    earlier version's); a damaged file's stays."""
    import gpu.version

    models = tmp_path / "models"
    good = _copy(models, "good-int4.safetensors")
    damaged = edit_svdq_meta(DEMO_INT4, models / "damaged-int4.safetensors",
                             lambda meta: meta["model_config"].update(attention_head_dim=0))  # fmt: skip
    bug = RuntimeError("a bug of this version")
    verify = _failing_for(monkeypatch, checkpoint_format, "verify_checkpoint", good, bug)
    library = ModelLibrary(tmp_path / "data")
    assert add_found_models(library, models, []) == []
    assert left_out(library.file, good).startswith("it could not be checked (RuntimeError: a bug of this version")
    assert left_out(library.file, damaged) == "damaged"
    if recorded == "without a version":
        data = json.loads(library.file.read_text())
        for r in data["unlisted"]:
            r.pop("version", None)
        library.file.write_text(json.dumps(data))
    else:  # the fix: other engine code, under the same version number
        monkeypatch.setattr(gpu.version, "engine_stamp", lambda: f"{gpu.version.__version__}+fixed", raising=False)
    monkeypatch.setattr(checkpoint_format, "verify_checkpoint", verify)
    assert left_out(library.file, damaged) == "damaged" and left_out(library.file, good) == ""
    assert [e.name for e in add_found_models(library, models, [])] == ["good-int4"]


@pytest.mark.parametrize("scheduler", [{"class": "FlowMatchHeunDiscreteScheduler", "config": {}},
                                       {"class": "FlowMatchEulerDiscreteScheduler", "config": {"shift": "3"}}])
def test_a_file_whose_recorded_scheduler_is_refused_is_checked_again_by_another_version(tmp_path, monkeypatch,
                                                                                      scheduler):  # fmt: skip
    """A file whose recorded scheduler this version refuses (a class a newer app runs, a setting a diffusers update
    changed) was marked "damaged" for good, though its advice is to update the app: it is left out under this
    version only, as an unexpected failure is, so the update checks it again."""
    import gpu.version

    models = tmp_path / "models"
    refused = edit_svdq_meta(DEMO_INT4, models / "newer-int4.safetensors",
                             lambda meta: meta.update(scheduler=scheduler))  # fmt: skip
    library = ModelLibrary(tmp_path / "data")
    assert add_found_models(library, models, []) == []
    assert left_out(library.file, refused).startswith("it cannot run with this version (newer-int4.safetensors: ")
    # an update: other engine code (its version number may be the same)
    monkeypatch.setattr(gpu.version, "engine_stamp", lambda: f"{gpu.version.__version__}+updated", raising=False)
    assert left_out(library.file, refused) == ""


def test_the_engine_stamp_changes_with_its_code_or_its_frozen_executable(tmp_path, monkeypatch):
    """What a record of an unexpected failure is scoped to (``engine_stamp``) changes with any edit of the engine's
    sources, and in a frozen bundle, where they need not be, with the executable each build writes."""
    from gpu.version import __version__, code_stamp, engine_stamp

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    before = code_stamp(tmp_path)
    (tmp_path / "sub" / "a.py").write_text("x = 2\n")
    assert code_stamp(tmp_path) != before
    assert engine_stamp() == engine_stamp.__wrapped__() == f"{__version__}+{code_stamp(Path(gpu.__file__).parent)}"
    exe = tmp_path / "NibbleStudio"
    exe.write_bytes(b"the bootloader and its archive")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    built = engine_stamp.__wrapped__()
    os.utime(exe, ns=(1, 1))  # another build
    assert built.startswith(f"{__version__}+") and engine_stamp.__wrapped__() != built


def test_the_code_stamp_survives_an_unreadable_file_and_reads_compiled_code_without_sources(tmp_path):
    """An editor's lock link that leads nowhere (Emacs' ``.#name.py``) among the engine's sources made the stamp
    raise, and with it every library save that held a record scoped to it; an install of compiled files only
    (sources stripped) stamped every engine alike, so a fixed one checked nothing again."""
    from gpu.version import code_stamp

    (tmp_path / "a.py").write_text("x = 1\n")
    before = code_stamp(tmp_path)
    (tmp_path / ".#a.py").symlink_to(tmp_path / "nowhere")
    assert code_stamp(tmp_path) == before  # no code: passed over, without raising
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    (compiled / "a.pyc").write_bytes(b"one build")
    one = code_stamp(compiled)
    (compiled / "a.pyc").write_bytes(b"a fixed build")
    assert code_stamp(compiled) != one
    real_is_file = Path.is_file

    def denied(path):  # a folder that can be listed but not entered: is_file raises (as root nothing is denied)
        if path.name == "a.py":
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "is_file", denied)
        assert code_stamp(tmp_path) != ""  # counted by its name, without raising
    part = tmp_path / "part"  # a source kept beside compiled modules: those count too, the caches do not
    (part / "__pycache__").mkdir(parents=True)
    (part / "__init__.py").write_text("")
    (part / "engine.pyc").write_bytes(b"one build")
    one = code_stamp(part)
    (part / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"written by an import")
    assert code_stamp(part) == one
    (part / "engine.pyc").write_bytes(b"a fixed build")
    assert code_stamp(part) != one
    empty = tmp_path / "empty"
    empty.mkdir()
    assert code_stamp(empty) != code_stamp(empty)  # no code found: nothing recorded under it holds again


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"], ids=["utf-8-with-bom", "utf-16"])
def test_a_library_file_saved_with_a_byte_order_mark_is_read_removals_too(tmp_path, encoding):
    """library.json saved from Windows Notepad ("UTF-8 with BOM") or PowerShell 5 was kept aside as damaged: the
    user's models gone from the list, and each model they had removed from the models folder's found again."""
    models = tmp_path / "models"
    kept, removed = _copy(models, "kept-int4.safetensors"), _copy(models, "removed-int4.safetensors")
    library = ModelLibrary(tmp_path / "data")
    library.add(kept)
    library.add(removed)
    library.remove("removed-int4")
    library.file.write_bytes(json.dumps(json.loads(library.file.read_bytes()), indent=2).encode(encoding))
    again = ModelLibrary(tmp_path / "data")
    assert "kept-int4" in [e.name for e in again.entries()] and again.take_notices() == []
    assert not list(library.file.parent.glob("library.json.damaged-*"))
    assert left_out(library.file, removed) == "removed"
    assert found_models(models, [e.path for e in again.entries()], library.file) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX change time")
def test_a_model_removed_before_records_held_its_header_stays_removed_after_a_chmod(tmp_path):
    """An earlier build (F62's, this session) recorded a removal with size, modification and change time, without
    ``head``.
    Such a record is kept as it is at every save (``unlisted_field`` / ``_stamped`` stamp only records of a path
    alone), so ``_still_that_file`` never gets a header digest to stand for its change time: a chmod (or a hard-
    linking backup) still adds the model the user removed back at the next start, the defect R62 fixed for
    records made from now on. A record that still holds could take its file's ``head`` at the next save."""
    models = tmp_path / "models"
    models.mkdir()
    model = Path(shutil.copyfile(DEMO_INT4, models / "flux-int4.safetensors"))
    library = ModelLibrary(tmp_path / "data")
    library.add(model)
    library.remove("flux-int4")
    data = json.loads(library.file.read_text(encoding="utf-8"))
    for record in data["unlisted"]:
        record.pop("head")  # as the previous version wrote it
    library.file.write_text(json.dumps(data), encoding="utf-8")
    library = ModelLibrary(tmp_path / "data")  # an update started: its first start, a save of the library
    library.add(Path(shutil.copyfile(DEMO_INT4, models / "other-int4.safetensors")))
    assert left_out(library.file, model) == "removed"
    time.sleep(0.05)  # a tick of the file system's clock
    os.chmod(model, 0o444)  # the user makes the models folder read-only; a sync tool fixes permissions
    assert found_models(models, [e.path for e in library.entries()], library.file) == []
    assert [e.name for e in add_found_models(library, models, [e.path for e in library.entries()])] == []
