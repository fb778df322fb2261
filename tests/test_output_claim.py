"""An output's name claimed as it is chosen (``gpu.output_lock.claim_first_free``): the engine's lock on it, taken in
the same step as the choice and held by the run (``quantize_model(claim=...)``). Chosen first and locked only once
the run started, two choosers took one free name, and two runs wrote one output and one parts folder.

Claims in one process exclude each other as those of two processes do (a lock per open file), so each case here
is two claims in this process, one after the other: no thread, no timing."""

from __future__ import annotations

import errno
import itertools
import os
import re
from pathlib import Path

import pytest

from gpu.errors import OutputBusy, OutputError
from gpu.output_lock import MAX_BUSY_NAMES, claim_first, claim_first_free, claim_output, lock_path, output_lock
from gpu.paths import numbered_paths
from gpu.quantizer import QuantizeConfig, quantize_model


def _busy(path: Path) -> str:
    """The start of the refusal of a second claim on ``path`` while this process holds it."""
    return f"^{re.escape(str(path))} is being written by another quantize run \\(process {os.getpid()}\\)"


def test_a_claimed_name_is_skipped_by_the_next_chooser_and_refused_to_a_second_claim(tmp_path):
    out = tmp_path / "models" / "m.safetensors"
    first = claim_first_free(out, Path.exists, "quantize run")
    assert first.target == out and first.held and lock_path(out).is_file()
    second = claim_first_free(out, Path.exists, "quantize run")  # another wizard, before either run made a file
    assert second.target == tmp_path / "models" / "m-2.safetensors"
    with pytest.raises(OutputBusy, match=_busy(out)) as refused:  # a run given that name (main.py quantize --out)
        claim_output(out, "quantize run")
    assert refused.value.hint == "wait for it to finish, or choose another output file"
    first.release()
    first.release()  # once only: the second does nothing (the worker's, after the wizard's cancel)
    assert not first.held and not lock_path(out).exists()
    with claim_first_free(out, Path.exists, "quantize run") as again:  # free again
        assert again.target == out
    second.release()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == []


def test_a_name_written_while_the_chooser_took_its_lock_is_not_taken(tmp_path):
    """A run that held the name until just after the chooser looked (its model written, its lock let go): the name
    is looked at again once held, and the next one taken."""
    out = tmp_path / "m.safetensors"
    looked: list[Path] = []

    def taken(path: Path) -> bool:
        looked.append(path)
        if looked == [out]:  # free as looked at; the other run's model lands before the claim
            out.write_bytes(b"the other run's model")
            return False
        return path.exists()

    with claim_first_free(out, taken, "quantize run") as claim:
        assert claim.target == tmp_path / "m-2.safetensors"
        assert looked == [out, out, claim.target, claim.target]
        with claim_output(out, "quantize run"):  # the first name's lock was let go of
            pass


def test_a_run_holds_its_chooser_s_claim_and_a_run_without_it_is_refused_first(tmp_path):
    """The run given the claim works under it (and leaves it held, for its caller to release); a run on the same
    output without it is refused before it reads anything."""
    out = tmp_path / "m.safetensors"
    missing = tmp_path / "no-such-model"
    with claim_first_free(out, Path.exists, "quantize run") as claim:
        with pytest.raises(OutputBusy, match=_busy(out)):
            quantize_model(missing, out, QuantizeConfig())
        with pytest.raises(Exception) as past_the_lock:
            quantize_model(missing, out, QuantizeConfig(), claim=claim)
        assert not isinstance(past_the_lock.value, OutputBusy) and "no-such-model" in str(past_the_lock.value)
        assert claim.held
        with pytest.raises(ValueError, match="is no lock on"), output_lock(tmp_path / "other.safetensors",
                                                                          claim=claim):  # fmt: skip
            pass
    with pytest.raises(ValueError, match=r"\(released\) is no lock on"), output_lock(out, claim=claim):
        pass


def test_a_claim_whose_pid_could_not_be_written_lets_its_lock_go(tmp_path, monkeypatch):
    """The pid is written once the lock is taken: a full disk there kept the lock file open and locked until the
    app quit, and the next claim of the name was refused as "another quantize run (process unknown)" (a chooser
    went on to ``-2``)."""
    out = tmp_path / "models" / "m.safetensors"
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if lock_path(out).exists() and os.path.samestat(os.fstat(fd), os.stat(lock_path(out))):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match=re.escape(os.strerror(errno.ENOSPC))):
        claim_output(out, "quantize run")
    monkeypatch.setattr(os, "write", real_write)
    with claim_first_free(out, Path.exists, "quantize run") as again:
        assert again.target == out
    assert not (tmp_path / "models").exists()  # no lock file is left, nor the folder made for it


def test_locks_that_refuse_every_name_end_the_choice(tmp_path, monkeypatch):
    """A drive whose locks refuse every name (Windows answered any error of its byte locks as "locked") made the
    chooser walk numbered names without end, a lock file made for each. It gives up after ``MAX_BUSY_NAMES`` names
    with the last refusal, and takes back the lock files and folders it made for them."""
    import gpu.output_lock

    monkeypatch.setattr(gpu.output_lock, "_try_lock", lambda fd: False)
    out = tmp_path / "models" / "m.safetensors"
    names = list(itertools.islice(numbered_paths(out), 3 * MAX_BUSY_NAMES))  # finite: the old chooser's end
    with pytest.raises(OutputBusy, match=f"^{re.escape(str(names[MAX_BUSY_NAMES - 1]))} is being written"):
        claim_first(names, Path.exists, "quantize run")
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_claims_of_one_process_exclude_each_other_on_a_file_system_without_locks(tmp_path, monkeypatch):
    """Where flock answers ENOLCK (some network mounts) the lock runs unguarded: two claims of one app both got
    the same name, and one's release removed the other's lock file. Claims of one process exclude each other
    whatever the file system."""
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "m.safetensors"
    with claim_first_free(out, Path.exists, "quantize run") as first:
        with pytest.raises(OutputBusy, match=_busy(out)):
            claim_output(out, "quantize run")
        second = claim_first_free(out, Path.exists, "quantize run")
        assert second.target == tmp_path / "m-2.safetensors"
    assert first.target == out and lock_path(second.target).is_file()  # the first's release left it
    second.release()
    assert sorted(tmp_path.iterdir()) == []


def test_a_claim_whose_name_cannot_be_looked_at_again_is_let_go_of(tmp_path):
    """``taken`` is asked again once the name is held; one that raised there (a name that cannot be looked at)
    left the claim held until the garbage collector let it go."""
    out = tmp_path / "m.safetensors"
    asked: list[Path] = []

    def taken(path: Path) -> bool:
        asked.append(path)
        if len(asked) == 2:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return False

    with pytest.raises(PermissionError) as refused:  # kept, as the wizard keeps its naming's error
        claim_first_free(out, taken, "quantize run")
    assert isinstance(refused.value, PermissionError) and not lock_path(out).exists()
    with claim_output(out, "quantize run"):  # not refused as held
        pass


def test_a_claim_whose_lock_file_did_not_close_is_let_go_of_all_the_same(tmp_path, monkeypatch):
    """Closing the lock file may fail (EIO on a network mount): the release says so, and the name is free for
    the process's next claim (the file is closed all the same)."""
    import gpu.output_lock

    out = tmp_path / "m.safetensors"
    claim = claim_output(out, "quantize run")
    real_close = os.close

    def failing_close(fd: int) -> None:
        real_close(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(gpu.output_lock.os, "close", failing_close)
    with pytest.raises(OSError):
        claim.release()
    monkeypatch.setattr(gpu.output_lock.os, "close", real_close)
    assert not claim.held
    with claim_output(out, "quantize run"):
        pass


def test_a_claim_of_a_relative_name_through_a_chdir_frees_the_name_on_release(tmp_path, monkeypatch):
    """The claim worked out its entry in the process's set twice: as it entered it, and again once its lock was
    taken; another thread's chdir in between (the lock's file opened meanwhile) made the release discard another
    entry, and every later claim of the name in this process was refused as held by this very process."""
    import gpu.output_lock as output_lock

    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    acquire = output_lock._acquire

    def acquire_then_chdir(*args, **kwargs):  # another thread of the process changes folder meanwhile
        fd = acquire(*args, **kwargs)
        os.chdir(elsewhere)
        return fd

    monkeypatch.chdir(first)
    monkeypatch.setattr(output_lock, "_acquire", acquire_then_chdir)
    claim = claim_output(Path("m.safetensors"), "quantize run")
    monkeypatch.setattr(output_lock, "_acquire", acquire)
    os.chdir(first)
    claim.release()
    claim_output(Path("m.safetensors"), "quantize run").release()  # refused as "process <this pid>" before


def test_a_claim_of_a_relative_name_lets_go_of_its_own_lock_after_a_chdir(tmp_path, monkeypatch):
    """A claim kept its lock file's and folders' relative paths: released after a chdir, it removed the lock file
    another claim held in the new current folder (and its folder), and left its own behind."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    mine = claim_output(Path("out/m.safetensors"), "quantize run")
    monkeypatch.chdir(second)
    other = claim_output(Path("out/m.safetensors"), "quantize run")
    mine.release()
    assert lock_path(second / "out" / "m.safetensors").is_file() and other.held
    assert not (first / "out").exists()  # its lock file gone, and the folder it made
    other.release()
    assert not (second / "out").exists()
