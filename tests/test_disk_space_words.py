"""What a run refused for disk space says (``gpu.streaming.disk_space.check_free_space``): the free space as the
disk has it, and the space the run needs as it is counted."""

from __future__ import annotations

import shutil

import pytest

from gpu.streaming.disk_space import DiskSpaceError, SpaceNeeded, check_free_space

GIB = 2**30


@pytest.mark.parametrize("need, freed, words", [
    (SpaceNeeded(model=3 * GIB, blocks=2 * GIB, samples=GIB, spill=0), 2 * GIB,
     "the run needs about 6.0 GiB there (1.0 GiB of calibration samples + 2.0 GiB of blocks still to quantize + a "
     "3.0 GiB model file; the samples and blocks stay until the model file is written), and 1.0 GiB is free "
     "(+2.0 GiB freed by deleting the old unfinished run, made with other settings)"),
    (SpaceNeeded(model=3 * GIB, blocks=2 * GIB, samples=0, spill=4 * GIB), 0,
     "the run needs about 6.0 GiB there (2.0 GiB of blocks still to quantize + 4.0 GiB of block inputs spilled to "
     "disk under the RAM budget, deleted before the 3.0 GiB model file is written; the blocks stay until the model "
     "file is written), and 1.0 GiB is free"),
    (SpaceNeeded(model=3 * GIB, blocks=0, samples=0, spill=2 * GIB), 0,
     "the run needs about 3.0 GiB there (a 3.0 GiB model file, written once the 2.0 GiB of block inputs spilled to "
     "disk under the RAM budget are deleted), and 1.0 GiB is free"),
])  # fmt: skip
def test_the_refusal_says_the_free_space_there_is_and_adds_up_what_is_needed(tmp_path, monkeypatch, need, freed,
                                                                              words):  # fmt: skip
    """The GiB "free" counted the old parts the run would delete (more than df said), and what was needed did not
    add up: the samples were not named, nor that the spill and the model file count once, as the larger."""
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=GIB))
    with pytest.raises(DiskSpaceError) as refused:
        check_free_space(tmp_path, need, freed)
    assert str(refused.value) == f"not enough free disk space in {tmp_path}: {words}"
    check_free_space(tmp_path, need, need.total - GIB)  # what the deletion frees makes room: no refusal


def test_sizes_below_a_gib_are_said_in_mib(tmp_path, monkeypatch):
    """A tiny model's run said "0.29 GiB" and a nearly full disk "0.00 GiB is free" (free, yet not enough): sizes
    below 1 GiB are said in MiB, as the memory plans say them (one formatter, ``memory_policy.amount``)."""
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=2**20))
    with pytest.raises(DiskSpaceError) as refused:
        check_free_space(tmp_path, SpaceNeeded(model=300 * 2**20, blocks=0, samples=0, spill=0))
    assert str(refused.value) == (f"not enough free disk space in {tmp_path}: the run needs about 300 MiB there "
                                  "(a 300 MiB model file), and 1 MiB is free")  # fmt: skip


@pytest.mark.parametrize(("kept", "resume", "hint"), [
    ("", True, "free some space on that disk, then run again"),
    ("", False, "free some space on that disk, then run again"),
    ("; the finished block is kept in P", True,
     "free some space on that disk, then run again: the run resumes from what is kept"),
    ("; the finished block is kept in P", False,
     "free some space on that disk, then run the same command again without --no-resume: it resumes from what is "
     "kept"),
])  # fmt: skip
def test_a_full_disk_sends_the_user_to_resume_only_from_what_is_kept_and_as_it_resumes(tmp_path, kept, resume, hint):
    """The hint said "run again: the run resumes from what is kept" with nothing kept, and to a run asked to start
    over (--no-resume), whose same command starts over again."""
    import errno

    from gpu.streaming.disk_space import disk_full_said

    said = disk_full_said(tmp_path, lambda: kept) if resume else disk_full_said(tmp_path, lambda: kept, resume=False)
    with pytest.raises(DiskSpaceError) as full, said:
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(full.value).endswith(f"cannot write in {tmp_path}: No space left on device{kept}")
    assert full.value.hint == hint
    assert full.value.kept_said is bool(kept)  # a caller's own note of what is kept would say it again
