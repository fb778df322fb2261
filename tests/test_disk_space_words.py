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
